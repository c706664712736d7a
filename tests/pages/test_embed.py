"""The "Embed this Space" and "Use via API" snippets and the README status badge, over HTTP and in the browser
(screenshots ``60-*``)."""

from __future__ import annotations

import html
import re

import httpx
from harness import Server, unique
from pagekit import sign_up


def test_snippets_name_this_hubs_addresses(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    repo_id = f"{w.name}/{unique('emb')}"
    w.api().create_repo(repo_id, repo_type="space", space_sdk="gradio")
    sub = re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")
    page = html.unescape(w.get(f"/spaces/{repo_id}/embed").text)
    app = re.search(rf'<iframe src="(http://{sub}\.[^"]+/)" frameborder', page)
    assert app, page[page.find('id="embed-iframe"'):][:300]
    assert f'<gradio-app src="{app.group(1)}"></gradio-app>' in page
    assert f'os.environ["HF_ENDPOINT"] = "{pages_server.url}"' in page and f'Client("{repo_id}")' in page
    assert f'Client.connect("{app.group(1)}")' in page
    assert f"curl -s -X POST {app.group(1)}gradio_api/call/predict" in page
    # no app has run: the generic endpoint, and the page says why (the live app's own: tests/platform)
    assert "The app is not running, so its endpoints could not be read" in page
    assert "ticket" not in page, "a snippet must never carry the viewer's app ticket"
    assert f"[![Space status]({pages_server.url}/spaces/{repo_id}/badge.svg)]({pages_server.url}/spaces/{repo_id})" \
        in page
    assert f'href="/spaces/{repo_id}/embed#api"' in w.get(f"/spaces/{repo_id}").text


def test_only_gradio_spaces_get_gradio_snippets(web) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    for sdk in ("streamlit", "static", "docker"):
        repo_id = f"{w.name}/{unique(sdk)}"
        w.api().create_repo(repo_id, repo_type="space", space_sdk=sdk)
        page = w.get(f"/spaces/{repo_id}/embed").text
        assert 'id="api-curl"' in page and "gradio_client" not in page and "gradio_api" not in page, sdk


def test_badge_shows_the_stage_and_keeps_private_spaces_private(web, pages_server: Server) -> None:  # noqa: ANN001
    w = web()
    w.sign_up()
    api = w.api()
    public, private = f"{w.name}/{unique('pub')}", f"{w.name}/{unique('priv')}"
    api.create_repo(public, repo_type="space", space_sdk="gradio")
    api.create_repo(private, repo_type="space", space_sdk="gradio", private=True)
    r = httpx.get(f"{pages_server.url}/spaces/{public}/badge.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "<title>space: no app file</title>" in r.text  # a new Space has only a README
    assert httpx.get(f"{pages_server.url}/spaces/{private}/badge.svg").status_code == 404
    mine = w.get(f"/spaces/{private}/badge.svg")
    assert mine.status_code == 200 and "space: no app file" in mine.text
    page = html.unescape(w.get(f"/spaces/{private}/embed").text)
    assert 'hf_token=os.environ["HF_TOKEN"]' in page and 'Authorization: Bearer $HF_TOKEN' in page


def test_embed_page_in_the_browser(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    page = new_page()
    user = sign_up(page, pages_server)
    page.fill("#name", "embed-demo")
    page.get_by_role("button", name="Create Space").click()
    page.wait_for_url(re.compile(r"/spaces/.+/embed-demo"))
    page.click("#embed-link")
    page.wait_for_url(re.compile(r"/embed#embed$"))
    expect(page.locator("#embed-iframe")).to_contain_text("<iframe src=")
    assert page.evaluate("document.getElementById('badge-preview').naturalWidth") > 40, "the badge image loads"
    shot(page, "60-embed-desktop")
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{pages_server.url}/spaces/{user}/embed-demo/embed#api")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "61-embed-phone")
