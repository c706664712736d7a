"""The "Use via API" snippets name the running Gradio app's own endpoints and run as written.

Real ``spaces serve``, the gradio template (its endpoint is ``/greet``), the page fetched over HTTP, its code blocks
run with the real ``gradio_client`` and ``curl`` (the Space's ``*.localhost`` name resolves through /etc/hosts
lines added for the test). A sleeping Space's page is rendered without waking it.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import httpx

import platform_kit as kit


def snippet(page: str, block: str) -> str:
    """The text of the page's ``<pre id=block>`` as a reader copies it (tags dropped, entities decoded)."""
    found = re.search(rf'<pre class="snippet" id="{block}">(.*?)</pre>', page, re.S)
    assert found, f"no {block} block on the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def embed_page(platform, repo_id: str) -> str:  # noqa: ANN001
    r = httpx.get(f"{platform.url}/spaces/{repo_id}/embed", timeout=30)
    assert r.status_code == 200, r.text[:500]
    return r.text


def run_as_a_reader(platform, repo_id: str, argv: list[str]) -> str:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_", "SPACES_"))}
    env.update(HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
    with kit.hosts_entries(f"{kit.subdomain(repo_id)}.localhost"):
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"the snippet failed as written:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def test_the_snippets_name_the_apps_endpoint_and_run_as_written(platform, demo) -> None:  # noqa: ANN001
    page = embed_page(platform, demo)
    code = snippet(page, "api-python")
    assert 'result = client.predict(name="Hello!!", api_name="/greet")' in code, code
    assert "/predict" not in code and 'id="api-note"' not in page
    assert "<code>/greet</code>" in page  # the endpoints table
    assert run_as_a_reader(platform, demo, [sys.executable, "-c", code]).strip().endswith("Hello, Hello!!!")
    curl = snippet(page, "api-curl")
    assert "gradio_api/call/greet " in curl
    out = run_as_a_reader(platform, demo, ["bash", "-e", "-o", "pipefail", "-c", curl])
    assert 'data: ["Hello, Hello!!!"]' in out, out
    assert 'client.predict("/greet", { name: "Hello!!" })' in snippet(page, "api-js")


def test_a_sleeping_spaces_page_does_not_wake_it(platform, alice, make_space) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files("gradio"))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    platform.server.cli("sleep", repo_id, "--port", str(platform.port))
    kit.wait_stage(alice.api, repo_id, "SLEEPING", timeout=30)
    asleep = embed_page(platform, repo_id)
    assert 'id="api-note"' in asleep and "This Space is asleep" in asleep
    assert 'api_name="/predict"' in html.unescape(asleep)  # the generic snippet, which says so
    kit.wait_held(lambda: kit.runtime(alice.api, repo_id).stage == "SLEEPING", hold=3, what="still asleep")

    assert kit.app_get(platform.server, repo_id, "/config").status_code == 200  # a visit wakes it
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=60)
    assert 'api_name="/greet"' in html.unescape(embed_page(platform, repo_id))
    platform.server.cli("sleep", repo_id, "--port", str(platform.port))
    kit.wait_stage(alice.api, repo_id, "SLEEPING", timeout=30)
    kept = html.unescape(embed_page(platform, repo_id))  # what the app said while it ran, kept for its revision
    assert 'api_name="/greet"' in kept and 'id="api-note"' not in kept
    kit.wait_held(lambda: kit.runtime(alice.api, repo_id).stage == "SLEEPING", hold=3, what="still asleep")
