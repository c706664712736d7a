"""The Community tab over plain HTTP: a visitor reads a pull request and opens a discussion, the owner merges
(the web side of tests/e2e/test_hf_parity.py's pull request tests)."""

from __future__ import annotations

import re
from pathlib import Path

from harness import unique
from huggingface_hub import CommitOperationAdd


def test_a_visitor_proposes_and_the_owner_merges_on_the_community_tab(web) -> None:  # noqa: ANN001
    owner, visitor, anon = web(), web(), web()
    owner.sign_up()
    visitor.sign_up()
    owner_api, visitor_api = owner.api(), visitor.api()
    repo_id = f"{owner.name}/{unique('cm')}"
    owner_api.create_repo(repo_id, repo_type="space", space_sdk="static")
    owner_api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="greeting.txt", repo_id=repo_id,
                          repo_type="space")
    pr = visitor_api.create_commit(repo_id, repo_type="space", create_pr=True, commit_message="Louder <b>please</b>",
                                   operations=[CommitOperationAdd("greeting.txt", b"HELLO\n")])
    base = f"/spaces/{repo_id}/discussions"
    assert pr.pr_url.endswith(f"{base}/{pr.pr_num}")

    listing = anon.get(base)
    assert listing.status_code == 200 and "Louder &lt;b&gt;please&lt;/b&gt;" in listing.text
    page = anon.get(f"{base}/{pr.pr_num}")
    assert page.status_code == 200 and "+HELLO" in page.text and ">Merge<" not in page.text
    assert anon.get(f"{base}/999").status_code == 404

    # the visitor opens a discussion and comments; he cannot merge
    r = visitor.post(base, {"title": "Typo in README", "description": "see line 3"})
    assert r.status_code == 303
    num = int(re.search(r"/discussions/(\d+)$", r.headers["location"]).group(1))
    visitor.post(f"{base}/{num}/comment", {"comment": "<script>alert(1)</script>"})
    shown = anon.get(f"{base}/{num}").text
    assert "see line 3" in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>alert" not in shown
    assert ">Merge<" not in visitor.get(f"{base}/{pr.pr_num}").text
    visitor.post(f"{base}/{pr.pr_num}/merge", {})
    assert owner_api.get_discussion_details(repo_id, pr.pr_num, repo_type="space").status == "open"
    assert visitor.post(f"{base}/{num}/merge", {}, token=None).status_code in (400, 403)  # no CSRF token

    # the owner merges from the page
    assert ">Merge<" in owner.get(f"{base}/{pr.pr_num}").text
    r = owner.post(f"{base}/{pr.pr_num}/merge", {"comment": "thanks"})
    assert r.status_code == 303
    assert owner_api.get_discussion_details(repo_id, pr.pr_num, repo_type="space").status == "merged"
    assert Path(owner_api.hf_hub_download(repo_id, "greeting.txt", repo_type="space")).read_bytes() == b"HELLO\n"
    owner.post(f"{base}/{num}/close", {})
    assert owner_api.get_discussion_details(repo_id, num, repo_type="space").status == "closed"
