"""The Files tab: the folder's README rendered, code highlighted (Pygments), and files uploaded and edited in the
browser, each a commit through the commit endpoint's path that huggingface_hub then reads; over HTTP as a browser
sends it (CSRF token, session cookie), and in Chromium with screenshots at desktop and phone width."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from harness import Server, unique
from huggingface_hub import CommitOperationAdd

from pagekit import Web, sign_up, start_pages_server

README = ("---\ntitle: Files\nsdk: static\n---\n\n# Hello <script>alert(1)</script>\n\nSome **bold** words.\n")
APP = 'def greet(name):\n    """Say hello."""\n    return "Hello " + name  # greet\n'


def make_space(w: Web) -> tuple[str, object]:
    api = w.api()
    repo_id = f"{w.name}/{unique('files')}"
    api.create_repo(repo_id, repo_type="space", space_sdk="static")
    api.create_commit(repo_id, repo_type="space", commit_message="files", operations=[
        CommitOperationAdd("README.md", README.encode()), CommitOperationAdd("app.py", APP.encode()),
        CommitOperationAdd("index.html", b"<p>hi</p>\n")])
    return repo_id, api


def read(api, repo_id: str, path: str) -> str:  # noqa: ANN001
    from huggingface_hub import hf_hub_download

    return open(hf_hub_download(repo_id, path, repo_type="space", endpoint=api.endpoint, token=api.token,
                                force_download=True), encoding="utf-8", newline="").read()


def test_the_folder_readme_is_rendered_and_code_highlighted(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    repo_id, _ = make_space(w)
    tree = w.get(f"/spaces/{repo_id}/tree/main").text
    readme = re.search(r'<article class="panel readme" id="readme"[^>]*>(.*?)</article>', tree, re.S)
    assert readme, tree[-3000:]
    assert "<h1>Hello &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in readme.group(1)  # raw HTML escaped
    assert "<strong>bold</strong>" in readme.group(1) and "sdk:" not in readme.group(1)  # front matter off
    code = w.get(f"/spaces/{repo_id}/blob/main/app.py").text
    assert '<pre class="code highlight" id="file-content">' in code
    assert '<span class="k">def</span>' in code and '<span class="c1"># greet</span>' in code
    assert code.count('<span class="l">') == 3  # one element per line, multi-line tokens split at line ends
    md = w.get(f"/spaces/{repo_id}/blob/main/README.md").text
    assert 'id="file-rendered"' in md and "<strong>bold</strong>" in md and 'id="source-toggle"' in md
    source = w.get(f"/spaces/{repo_id}/blob/main/README.md?plain=1").text
    assert 'id="file-rendered"' not in source and "sdk: static" in source


def test_edit_commits_through_the_api_path_with_csrf(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    repo_id, api = make_space(w)
    page = w.get(f"/spaces/{repo_id}/blob/main/app.py").text
    assert f'href="/spaces/{repo_id}/edit/main/app.py"' in page
    form = w.get(f"/spaces/{repo_id}/edit/main/app.py")
    assert form.status_code == 200 and "return &#34;Hello &#34; + name" in form.text or \
        "return &quot;Hello &quot; + name" in form.text, form.text[-2000:]
    parent = re.search(r'name="parent" value="([0-9a-f]{40})"', form.text).group(1)
    edited = APP.replace("Hello ", "Hi ").replace("\n", "\r\n")  # as a browser sends a textarea
    # without the CSRF token: refused, nothing committed
    r = w.post(f"/spaces/{repo_id}/edit/main/app.py", {"content": edited, "parent": parent}, token=None)
    assert r.status_code == 403 and read(api, repo_id, "app.py") == APP
    r = w.post(f"/spaces/{repo_id}/edit/main/app.py", {"content": edited, "parent": parent, "summary": "Say hi"},
               token=w.csrf(f"/spaces/{repo_id}/edit/main/app.py"))
    assert r.status_code == 303 and r.headers["location"] == f"/spaces/{repo_id}/blob/main/app.py", r.text[:500]
    assert read(api, repo_id, "app.py") == APP.replace("Hello ", "Hi ")  # the file's own LF line ends kept
    commits = api.list_repo_commits(repo_id, repo_type="space")
    assert commits[0].title == "Say hi" and w.name in commits[0].authors
    # an edit started before that commit is refused as a conflict, and the form keeps what was typed
    r = w.post(f"/spaces/{repo_id}/edit/main/app.py", {"content": "stale text", "parent": parent},
               token=w.csrf(f"/spaces/{repo_id}/edit/main/app.py"))
    assert r.status_code == 412 and "stale text" in r.text and "Not committed" in r.text, r.text[-1500:]
    assert read(api, repo_id, "app.py") == APP.replace("Hello ", "Hi ")


def test_upload_commits_files_into_the_folder(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    repo_id, api = make_space(w)
    assert f'href="/spaces/{repo_id}/upload/main"' in w.get(f"/spaces/{repo_id}/tree/main").text
    files = [("files", ("a.txt", b"alpha\n", "text/plain")), ("files", ("b.bin", bytes(range(256)), "application/x"))]
    r = w.post(f"/spaces/{repo_id}/upload/main/data", {"summary": ""}, token=None, files=files)
    assert r.status_code == 403
    r = w.post(f"/spaces/{repo_id}/upload/main/data", {"summary": ""}, files=files,
               token=w.csrf(f"/spaces/{repo_id}/upload/main/data"))
    assert r.status_code == 303 and r.headers["location"] == f"/spaces/{repo_id}/tree/main/data", r.text[:500]
    assert {"data/a.txt", "data/b.bin"} <= set(api.list_repo_files(repo_id, repo_type="space"))
    assert read(api, repo_id, "data/a.txt") == "alpha\n"
    assert api.list_repo_commits(repo_id, repo_type="space")[0].title == "Upload 2 files"
    # b.bin is at a path the seeded .gitattributes tracks (*.bin): stored as an LFS object, as the API stores it
    info = {e.path: e for e in api.get_paths_info(repo_id, ["data/a.txt", "data/b.bin"], repo_type="space")}
    assert info["data/a.txt"].lfs is None
    assert info["data/b.bin"].lfs.sha256 == hashlib.sha256(bytes(range(256))).hexdigest()
    # a name git or the API would refuse is refused here too, and nothing moves
    before = api.list_repo_commits(repo_id, repo_type="space")[0].commit_id
    r = w.post(f"/spaces/{repo_id}/upload/main", {}, files=[("files", (".git", b"x", "text/plain"))],
               token=w.csrf(f"/spaces/{repo_id}/upload/main"))
    assert r.status_code == 303 and api.list_repo_commits(repo_id, repo_type="space")[0].commit_id == before


def test_upload_of_a_large_file_goes_to_lfs_and_gitattributes_tracks_it(tmp_path) -> None:  # noqa: ANN001
    """A file of the LFS threshold (here 256 KiB) or more at a path nothing tracks: an LFS object, and the same
    commit adds its line to .gitattributes, so git-lfs clones check the real file out (as the commit API does,
    and the Hub); a smaller one stays a plain git file."""
    from e2e.test_lfs import lfs_git, remote

    srv = start_pages_server("sqlite", extra_env={"SPACES_LARGE_FILES__LFS_THRESHOLD": str(256 << 10)})
    try:
        w = Web(srv)
        w.sign_up()
        repo_id, api = make_space(w)
        big, small = os.urandom(512 << 10), os.urandom(1000)
        files = [("files", ("big data.dat", big, "x/y")), ("files", ("small.dat", small, "x/y"))]
        r = w.post(f"/spaces/{repo_id}/upload/main", {"summary": "big"}, files=files,
                   token=w.csrf(f"/spaces/{repo_id}/upload/main"))
        assert r.status_code == 303, r.text[:500]
        info = {e.path: e for e in api.get_paths_info(repo_id, ["big data.dat", "small.dat"], repo_type="space")}
        assert info["big data.dat"].lfs.sha256 == hashlib.sha256(big).hexdigest() and info["small.dat"].lfs is None
        attrs = read(api, repo_id, ".gitattributes")
        assert attrs.endswith("\n*tfevents* filter=lfs diff=lfs merge=lfs -text\n"
                              "big[[:space:]]data.dat filter=lfs diff=lfs merge=lfs -text\n"), attrs
        lfs_git("clone", "-q", remote(srv, "space", repo_id, api.token), str(tmp_path / "c"))
        assert (tmp_path / "c" / "big data.dat").read_bytes() == big
        assert (tmp_path / "c" / "small.dat").read_bytes() == small
        assert Path(tmp_path / "c" / "app.py").read_text() == APP
        w.close()
    finally:
        srv.stop()


def test_a_reader_gets_no_edit_or_upload(web) -> None:  # noqa: ANN001
    owner = web()
    owner.sign_up()
    repo_id, api = make_space(owner)
    other = web()
    other.sign_up()
    assert "edit-link" not in other.get(f"/spaces/{repo_id}/blob/main/app.py").text
    assert "upload-link" not in other.get(f"/spaces/{repo_id}/tree/main").text
    assert other.get(f"/spaces/{repo_id}/edit/main/app.py").status_code == 403
    r = other.post(f"/spaces/{repo_id}/edit/main/app.py", {"content": "mine"},
                   token=other.csrf(f"/spaces/{repo_id}/blob/main/app.py"))
    assert r.status_code == 403 and read(api, repo_id, "app.py") == APP


def test_files_tab_in_the_browser(pages_server: Server, new_page, shot, tmp_path) -> None:  # noqa: ANN001
    page = new_page()
    user = sign_up(page, pages_server)
    name = unique("br")
    page.fill("#name", name)
    page.click("form[action='/new'] button[type=submit]")
    page.wait_for_url(re.compile(rf"/spaces/{user}/{name}"))
    base = f"{pages_server.url}/spaces/{user}/{name}"
    (tmp_path / "app.py").write_text(APP)
    page.goto(base + "/tree/main")
    page.click("#upload-link")
    page.set_input_files("#upload-files", str(tmp_path / "app.py"))
    shot(page, "40-upload-form")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert "app.py" in page.locator("table.files").inner_text()
    assert page.locator("#readme").count() == 1  # the README the new Space was created with, rendered
    shot(page, "41-files-with-readme")
    page.goto(base + "/blob/main/app.py")
    assert page.locator("#file-content .k").first.inner_text() == "def"
    shot(page, "42-highlighted")
    page.click("#edit-link")
    page.fill("#edit-content", APP + "print(greet('x'))\n")
    page.fill("#edit-summary", "Print a greeting")
    shot(page, "43-edit")
    page.click("#edit-form button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert "print(greet('x'))" in page.locator("#file-content").inner_text()
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    for path, shot_name in (("/blob/main/app.py", "44-phone-highlighted"), ("/edit/main/app.py", "45-phone-edit"),
                            ("/tree/main", "46-phone-files")):
        phone.goto(base + path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
        shot(phone, shot_name)
