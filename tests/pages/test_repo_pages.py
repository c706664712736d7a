"""Model and dataset pages in the real browser: the card (README rendered, front matter off, raw HTML escaped),
the Spaces that use the repository, files, a file, history, listings; a private one is a 404 for a stranger."""

from __future__ import annotations

import re

import httpx
import pytest
from harness import Server, unique
from huggingface_hub import HfApi

from pagekit import sign_up

PREFIX = {"model": "", "dataset": "/datasets"}


def _token(page, server: Server) -> str:  # noqa: ANN001
    page.goto(server.url + "/settings/tokens")
    page.fill("#token-name", "t")
    page.select_option("#token-role", "write")
    page.click("form[action='/settings/tokens'] button[type=submit]")
    return page.locator("#new-token").inner_text().strip()


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_card_files_history_and_the_spaces_using_it(pages_server: Server, new_page, shot, kind) -> None:  # noqa: ANN001
    page = new_page()
    user = sign_up(page, pages_server)
    api = HfApi(endpoint=pages_server.url, token=_token(page, pages_server))
    repo_id = f"{user}/{unique('tiny')}"
    api.create_repo(repo_id, repo_type=kind)
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ntags: [tiny]\n---\n# Tiny card\n\nSome *words*.\n\n"
                    b"<script>window.pwned = 1</script>\n", path_in_repo="README.md", repo_id=repo_id,
                    repo_type=kind)
    api.upload_file(path_or_fileobj=b"1,2,3\n", path_in_repo="data/rows.csv", repo_id=repo_id, repo_type=kind)
    space = f"{user}/{unique('uses')}"
    api.create_repo(space, repo_type="space", space_sdk="static")
    key = "models" if kind == "model" else "datasets"
    api.upload_file(path_or_fileobj=f"---\nsdk: static\n{key}: [{repo_id}]\n---\n".encode(), path_in_repo="README.md",
                    repo_id=space, repo_type="space")

    base = f"{pages_server.url}{PREFIX[kind]}/{repo_id}"
    page.goto(base)
    assert page.locator("#readme h1").inner_text() == "Tiny card"
    assert page.locator("#readme em").inner_text() == "words"
    assert "license: mit" not in page.locator("#readme").inner_text()  # the front matter is not the card
    assert "<script>" in page.locator("#readme").inner_text()  # shown as text, never run
    assert page.evaluate("window.pwned") is None
    assert "license: mit" in page.locator("#card-tags").inner_text()
    assert page.locator(f"#used-by a[href='/spaces/{space}']").count() == 1
    shot(page, f"60-{kind}-card")

    page.click("text=Files and versions")
    page.wait_for_url(re.compile(re.escape(f"{PREFIX[kind]}/{repo_id}/tree/main")))
    page.click(f"table.files a[href='{PREFIX[kind]}/{repo_id}/tree/main/data']")
    page.click(f"table.files a[href='{PREFIX[kind]}/{repo_id}/blob/main/data/rows.csv']")
    page.wait_for_url(re.compile(re.escape(f"{PREFIX[kind]}/{repo_id}/blob/main/data/rows.csv")))
    assert "1,2,3" in page.content()
    shot(page, f"61-{kind}-file")
    page.goto(base + "/commits/main")
    assert page.locator("#commit-list tr").count() == 3  # initial commit and two uploads

    # the Community tab: open a discussion from the page; the API sees it on this repository only
    page.click("text=Community")
    page.wait_for_url(re.compile(re.escape(f"{PREFIX[kind]}/{repo_id}/discussions")))
    page.fill("form[action$='/discussions'] input[name=title]", "Where is the tokenizer?")
    page.click("form[action$='/discussions'] button[type=submit]")
    page.wait_for_url(re.compile(re.escape(f"{PREFIX[kind]}/{repo_id}/discussions/1")))
    assert "Where is the tokenizer?" in page.content()
    assert [d.title for d in api.get_repo_discussions(repo_id, repo_type=kind)] == ["Where is the tokenizer?"]
    assert list(api.get_repo_discussions(space, repo_type="space")) == []

    page.goto(f"{pages_server.url}/{kind}s")
    assert page.locator(f"#repo-list a[href='{PREFIX[kind]}/{repo_id}']").count() == 1
    shot(page, f"62-{kind}-list")
    page.goto(f"{pages_server.url}/{user}")
    assert page.locator(f"#profile-{kind}s a[href='{PREFIX[kind]}/{repo_id}']").count() == 1

    # private: a stranger gets the 404 page and no trace of it, here or in the listing
    api.update_repo_settings(repo_id, private=True, repo_type=kind)
    stranger = new_page()
    response = stranger.goto(base)
    assert response is not None and response.status == 404
    assert repo_id not in stranger.content()
    stranger.goto(f"{pages_server.url}/{kind}s")
    assert repo_id not in stranger.content()
    stranger.goto(f"{pages_server.url}/{user}")
    assert repo_id not in stranger.content()
    assert httpx.get(base + "/tree/main").status_code == 404
    # the owner still sees it, and a Space of the same name is another page
    page.goto(base)
    assert page.locator(".chip.private").count() == 1
    assert httpx.get(f"{pages_server.url}/spaces/{repo_id}").status_code == 404
