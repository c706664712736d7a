"""The author's walk in a real browser: sign up, create a gradio Space from a template, watch its logs, change
the sleep time, duplicate it, like it, find it by search, delete it. Every page is screenshotted to
``test-artifacts/screenshots/``."""

from __future__ import annotations

import re

import pytest
from harness import Server, unique
from huggingface_hub import HfApi

from pagekit import add_log_lines, set_stage, sign_up

SEED = [
    ("Image Captioner", "🖼️", "Describe any picture in one sentence", "pink", "purple", "gradio"),
    ("Chat With Docs", "💬", "Ask questions about your PDFs", "blue", "indigo", "streamlit"),
    ("Speech to Text", "🎙️", "Whisper transcription in the browser", "green", "blue", "gradio"),
    ("Pixel Art", "🎨", "Turn photos into pixel art", "yellow", "red", "static"),
    ("Stock Dashboard", "📈", "Live charts with Streamlit", "indigo", "purple", "streamlit"),
    ("Hello Docker", "🐳", "A FastAPI app in a container", "gray", "blue", "docker"),
]


def seed_spaces(server: Server) -> str:
    """A few public Spaces with varied cards, made through the real huggingface_hub client."""
    owner = unique("seed")
    api = HfApi(endpoint=server.url, token=server.token(owner))
    for title, emoji, desc, c1, c2, sdk in SEED:
        repo = f"{owner}/{title.lower().replace(' ', '-')}"
        api.create_repo(repo, repo_type="space", space_sdk=sdk)
        readme = (f"---\ntitle: {title}\nemoji: {emoji}\ncolorFrom: {c1}\ncolorTo: {c2}\nsdk: {sdk}\n"
                  f"short_description: {desc}\n---\n\n# {title}\n")
        api.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id=repo, repo_type="space")
    return owner


def test_author_walk(pages_server: Server, new_page, shot) -> None:  # noqa: ANN001
    srv = pages_server
    seed_spaces(srv)
    page = new_page()

    # -- home ----------------------------------------------------------------------------------------------------
    page.goto(srv.url + "/")
    assert page.locator(".card").count() >= len(SEED)
    assert page.locator(".card", has_text="Image Captioner").locator(".badge").count() == 1
    style = page.locator(".card", has_text="Image Captioner").get_attribute("style") or ""
    assert "linear-gradient" in style and "#f472b6" in style  # colorFrom: pink
    shot(page, "01-home")

    # -- sign up -------------------------------------------------------------------------------------------------
    page.goto(srv.url + "/join")
    shot(page, "02-join")
    user = sign_up(page, srv)
    assert page.locator(".flash.success").inner_text().startswith("Welcome")

    # -- new Space from the gradio template -------------------------------------------------------------------------
    shot(page, "03-new-space")
    name = unique("demo")
    page.fill("#name", name)
    options = page.locator("#template option").evaluate_all("els => els.map(e => e.value)")
    if "gradio" not in options:
        pytest.fail(f"the gradio starter template is missing from templates/ (offered: {options})")
    page.select_option("#template", "gradio")
    assert page.locator("input[name=sdk][value=gradio]").is_checked()
    page.click("form[action='/new'] button[type=submit]")
    page.wait_for_url(re.compile(rf"/spaces/{user}/{name}\?new=1$"))
    repo_id = f"{user}/{name}"
    # the git and huggingface_hub instructions name this Space
    assert f"git clone {srv.url}/spaces/{repo_id}" in page.locator("#git-snippet").inner_text()
    assert repo_id in page.locator("#hf-snippet").inner_text()
    assert page.locator("[data-stage-badge]").count() >= 1
    shot(page, "04-space-created")

    # the template's files were committed
    page.click(".tabs >> text=Files")
    page.wait_for_url(re.compile(r"/tree/main$"))
    files = page.locator("table.files td.name a").all_inner_texts()
    assert "app.py" in files and "README.md" in files
    shot(page, "05-files")
    page.click("table.files td.name a:text-is('app.py')")
    page.wait_for_url(re.compile(r"/blob/main/app.py$"))
    assert "gradio" in page.locator("#file-content").inner_text()
    raw = page.locator("#raw-link").get_attribute("href")
    assert raw == f"/spaces/{repo_id}/resolve/main/app.py"
    shot(page, "06-file-view")
    page.goto(f"{srv.url}/spaces/{repo_id}/commits/main")
    assert page.locator("#commit-list tr").count() == 2  # the seeded README, then the template
    shot(page, "07-history")

    # -- logs: the SSE streams connect, show the stage and the stored lines ------------------------------------------
    build_lines = ["Step 1/3: resolving the environment", "Step 2/3: uv pip install gradio", "Step 3/3: done"]
    add_log_lines(srv, repo_id, "build", build_lines)
    page.goto(f"{srv.url}/spaces/{repo_id}/logs")
    # the build log is live while a build runs and done once none is pending (its stream then says it ended)
    page.wait_for_selector("#build-logs[data-state=live], #build-logs[data-state=done]")
    page.wait_for_selector("#run-logs[data-state=live]")
    page.wait_for_selector(f"#build-logs[data-lines='{len(build_lines)}']")
    text = page.locator("#build-logs pre").inner_text()
    assert all(line in text for line in build_lines), text
    badge = page.locator("#logs-stage [data-stage-badge]")
    assert badge.get_attribute("data-stage") in ("BUILDING", "APP_STARTING", "RUNNING", "BUILD_ERROR", "RUNTIME_ERROR")
    assert badge.inner_text().strip()
    shot(page, "08-logs")

    # -- the stage badge follows the runtime live; a running app shows in an iframe on its own origin ----------------
    page.goto(f"{srv.url}/spaces/{repo_id}")
    assert page.locator("#app-frame").count() == 0  # not running yet
    set_stage(srv, repo_id, "RUNNING", "Running on cpu-basic")
    page.wait_for_selector("#app-frame", timeout=20000)  # the page polls the runtime and reloads on the change
    assert page.locator(".space-head [data-stage-badge]").inner_text() == "Running"
    src = page.locator("#app-frame").get_attribute("src") or ""
    subdomain = re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")
    assert src == f"http://{subdomain}.localhost:{srv.port}/", src
    assert not src.startswith(srv.url)  # never a path of the hub's origin
    set_stage(srv, repo_id, "BUILD_ERROR", "pip failed: no matching distribution for gradio==0.0.0")
    page.wait_for_selector(".notice.error", timeout=20000)
    assert "no matching distribution" in page.locator(".notice.error").inner_text()
    assert "Step 2/3" in page.locator("#error-log").inner_text()  # a failed Space shows its log
    shot(page, "08b-build-error")
    set_stage(srv, repo_id, "SLEEPING", "")
    page.reload()
    assert "sleeping" in page.locator("#sleep-notice").inner_text()
    assert page.locator("#app-frame").count() == 1  # opening it wakes it: the iframe request reaches the app
    shot(page, "08c-sleeping")
    set_stage(srv, repo_id, "BUILDING", "queued")

    # -- settings: sleep time -------------------------------------------------------------------------------------
    page.goto(f"{srv.url}/spaces/{repo_id}/settings")
    shot(page, "09-settings")
    page.select_option("#sleep-seconds", "3600")
    page.click("#sleep button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert page.locator("#sleep-current").inner_text() == "1 hour"

    # -- like ------------------------------------------------------------------------------------------------------
    page.goto(f"{srv.url}/spaces/{repo_id}")
    like = page.locator(".like-btn")
    assert like.get_attribute("aria-pressed") == "false"
    like.click()
    page.wait_for_selector(".like-btn[aria-pressed=true]")
    assert page.locator("[data-like-count]").inner_text() == "1"
    page.reload()
    assert page.locator(".like-btn").get_attribute("aria-pressed") == "true"
    assert page.locator("[data-like-count]").inner_text() == "1"

    # -- duplicate -------------------------------------------------------------------------------------------------
    page.click("[data-open-dialog=duplicate-dialog]")
    dialog = page.locator("#duplicate-dialog")
    dialog.wait_for(state="visible")
    copy_name = f"{name}-copy"
    dialog.locator("#dup-name").fill(copy_name)
    dialog.locator("input[name=visibility][value=public]").check()
    shot(page, "10-duplicate-dialog", full_page=False)
    dialog.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/spaces/{user}/{copy_name}$"))
    assert "Duplicated" in page.locator(".flash.success").inner_text()
    shot(page, "11-duplicated")

    # -- search ------------------------------------------------------------------------------------------------------
    page.goto(srv.url + "/")
    page.fill(".topsearch input[name=q]", name)
    page.press(".topsearch input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"/spaces\?q="))
    cards = page.locator(".card")
    assert cards.count() == 2  # the Space and its copy
    assert page.locator(f".card[href='/spaces/{repo_id}']").count() == 1
    shot(page, "12-search")
    page.goto(f"{srv.url}/spaces?q={name}&sort=likes")
    assert page.locator(".card").first.get_attribute("href") == f"/spaces/{repo_id}"  # the liked one first

    # -- delete ------------------------------------------------------------------------------------------------------
    page.goto(f"{srv.url}/spaces/{repo_id}/settings")
    delete = page.locator("#danger button[type=submit]")
    assert delete.is_disabled()  # until the name is typed
    page.fill("#confirm", repo_id)
    assert delete.is_enabled()
    delete.click()
    page.wait_for_url(f"{srv.url}/{user}")
    assert "Deleted" in page.locator(".flash.success").inner_text()
    shot(page, "13-profile-after-delete")
    response = page.goto(f"{srv.url}/spaces/{repo_id}")
    assert response is not None and response.status == 404
    shot(page, "14-not-found")
    assert not page.errors, page.errors  # no JavaScript errors on any page
