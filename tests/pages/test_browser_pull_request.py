"""A pull request from the web, in the real browser: a visitor (not the owner) proposes a change to one file from
the Community tab (typed in, then an uploaded file), the owner sees the diff and merges it; the change is on main
as huggingface_hub reads it. The same commit path as ``create_pr=True`` (refs/pr/N)."""

from __future__ import annotations

import re
from pathlib import Path

from harness import Server, unique
from huggingface_hub import HfApi

from pagekit import sign_up


def test_a_visitor_opens_a_pull_request_from_the_web_and_the_owner_merges(pages_server: Server, new_page, shot,
                                                                         tmp_path: Path) -> None:  # noqa: ANN001
    owner_page = new_page()
    owner = sign_up(owner_page, pages_server)
    name = unique("prweb")
    owner_page.fill("#name", name)
    owner_page.check("input[name=sdk][value=static]")
    owner_page.click("form[action='/new'] button[type=submit]")
    owner_page.wait_for_url(re.compile(rf"/spaces/{owner}/{name}"))
    repo_id = f"{owner}/{name}"
    base = f"{pages_server.url}/spaces/{repo_id}/discussions"
    anon = HfApi(endpoint=pages_server.url)

    visitor_page = new_page()
    visitor = sign_up(visitor_page, pages_server)
    visitor_page.goto(base)
    form = visitor_page.locator("#new-pull-request form")
    form.locator("input[name=title]").fill("Say hello <b>loudly</b>")
    form.locator("input[name=path]").fill("greeting.txt")
    form.locator("textarea[name=content]").fill("HELLO\n")
    form.locator("textarea[name=description]").fill("from the web")
    form.locator("button[type=submit]").click()
    visitor_page.wait_for_url(re.compile(r"/discussions/\d+$"))
    num = int(visitor_page.url.rsplit("/", 1)[1])
    assert "+HELLO" in visitor_page.content() and ">Merge<" not in visitor_page.content()
    shot(visitor_page, "40-pull-request-from-the-web")
    details = anon.get_discussion_details(repo_id, num, repo_type="space")
    assert details.is_pull_request and details.author == visitor and details.status == "open"
    assert details.git_reference == f"refs/pr/{num}" and details.title == "Say hello <b>loudly</b>"
    assert "greeting.txt" not in anon.list_repo_files(repo_id, repo_type="space")  # main is untouched
    assert anon.list_repo_files(repo_id, repo_type="space", revision=f"refs/pr/{num}").count("greeting.txt") == 1

    # an uploaded file, its name as the path
    upload = tmp_path / "notes.md"
    upload.write_text("# notes\n")
    visitor_page.goto(base)
    visitor_page.locator("#new-pull-request input[type=file]").set_input_files(str(upload))
    visitor_page.locator("#new-pull-request button[type=submit]").click()
    visitor_page.wait_for_url(re.compile(r"/discussions/\d+$"))
    second = int(visitor_page.url.rsplit("/", 1)[1])
    assert anon.get_discussion_details(repo_id, second, repo_type="space").title == "Update notes.md"

    # a path that leaves the repository changes nothing and says why
    visitor_page.goto(base)
    visitor_page.locator("#new-pull-request input[name=path]").fill("../escape.txt")
    visitor_page.locator("#new-pull-request textarea[name=content]").fill("x")
    visitor_page.locator("#new-pull-request button[type=submit]").click()
    visitor_page.wait_for_selector(".flash.error")
    assert len([d for d in anon.get_repo_discussions(repo_id, repo_type="space")]) == 2

    # the owner sees it in the tab and merges it
    owner_page.goto(base)
    assert "Say hello &lt;b&gt;loudly&lt;/b&gt;" in owner_page.content()
    owner_page.goto(f"{base}/{num}")
    owner_page.locator("button:text('Merge')").click()
    owner_page.wait_for_selector(".flash.success")
    shot(owner_page, "41-pull-request-merged")
    assert anon.get_discussion_details(repo_id, num, repo_type="space").status == "merged"
    got = Path(anon.hf_hub_download(repo_id, "greeting.txt", repo_type="space", cache_dir=tmp_path / "c"))
    assert got.read_text() == "HELLO\n"
