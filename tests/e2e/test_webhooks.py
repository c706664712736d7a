"""Webhooks through the real ``huggingface_hub`` (``create_webhook`` ... ``delete_webhook``) against a live
server, with a receiver on loopback: the Hub's payload (checked with the client's own ``WebhookPayload`` model),
the secret header, what is watched (one repo of one type, or an owner), domains, disable/enable, privacy, and
the SSRF guard of a default server."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness import make_actor, start_server, unique, wait_until
from huggingface_hub import WebhookPayload
from huggingface_hub.errors import BadRequestError, HfHubHTTPError

pytestmark = pytest.mark.timeout(180)
DATABASES = [d.strip() for d in os.environ.get("SPACES_TEST_DATABASES", "sqlite,postgres").split(",") if d.strip()]


class Receiver:
    """An HTTP server on loopback that keeps every POST it gets: (headers, JSON body)."""

    def __init__(self) -> None:
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                got.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n: int) -> list[tuple[dict, dict]]:
        wait_until(lambda: len(self.got) >= n, timeout=30, what=f"{n} webhook deliveries")
        return self.got[:n]


@pytest.fixture(scope="module", params=DATABASES)
def hook_server(request):  # noqa: ANN001, ANN201
    srv = start_server(request.param, extra_env={"SPACES_WEBHOOKS_PRIVATE_TARGETS": "1"})
    yield srv
    srv.stop()


def test_webhooks_deliver_the_hubs_payload_for_what_is_watched(hook_server) -> None:  # noqa: ANN001
    rx = Receiver()
    alice, bob = make_actor(hook_server, "alice"), make_actor(hook_server, "bob")
    repo_id = f"alice/{unique('hooked')}"
    alice.api.create_repo(repo_id)
    alice.api.create_repo(repo_id, repo_type="space", space_sdk="static")
    hook = alice.api.create_webhook(url=rx.url, watched=[{"type": "model", "name": repo_id}],
                                    domains=["repo", "discussion"], secret="s3cret")
    assert (hook.url, hook.secret, hook.disabled) == (rx.url, "s3cret", False)
    assert [h.id for h in alice.api.list_webhooks()] == [hook.id]
    assert bob.api.list_webhooks() == []
    with pytest.raises(HfHubHTTPError) as exc:
        bob.api.get_webhook(hook.id)
    assert exc.value.response.status_code == 404

    # a commit to the Space of the same name announces nothing; the model's commit does
    alice.api.upload_file(path_or_fileobj=b"s", path_in_repo="s.txt", repo_id=repo_id, repo_type="space")
    info = alice.api.upload_file(path_or_fileobj=b"m", path_in_repo="m.txt", repo_id=repo_id)
    [(headers, body)] = rx.wait(1)
    payload = WebhookPayload.model_validate(body)  # the client's own model of the Hub's payload
    assert (payload.event.action, payload.event.scope) == ("update", "repo.content")
    assert (payload.repo.type, payload.repo.name, payload.repo.head_sha) == ("model", repo_id, info.oid)
    assert payload.webhook.id == hook.id and payload.webhook.version == 3
    assert headers.get("X-Webhook-Secret") == "s3cret"

    alice.api.create_discussion(repo_id, "Is this the right model?")
    _, body = rx.wait(2)[1]
    payload = WebhookPayload.model_validate(body)
    assert payload.event.scope == "discussion" and payload.discussion.title == "Is this the right model?"

    # only the repo domain now; then disabled (nothing), enabled again (delivered)
    alice.api.update_webhook(hook.id, domains=["repo"])
    alice.api.create_discussion(repo_id, "not announced")
    alice.api.disable_webhook(hook.id)
    alice.api.upload_file(path_or_fileobj=b"quiet", path_in_repo="q.txt", repo_id=repo_id)
    assert alice.api.get_webhook(hook.id).disabled is True
    alice.api.enable_webhook(hook.id)
    alice.api.update_repo_settings(repo_id, private=True)
    _, body = rx.wait(3)[2]
    assert body["event"] == {"action": "update", "scope": "repo.config"} and body["repo"]["private"] is True

    # bob watches alice: her private model is never announced to him, her public Space is
    bob_hook = bob.api.create_webhook(url=rx.url, watched=[{"type": "user", "name": "alice"}], domains=["repo"])
    alice.api.upload_file(path_or_fileobj=b"p", path_in_repo="p.txt", repo_id=repo_id)
    alice.api.upload_file(path_or_fileobj=b"s2", path_in_repo="s2.txt", repo_id=repo_id, repo_type="space")
    got = rx.wait(5)[3:]
    assert sorted((b["webhook"]["id"], b["repo"]["type"]) for _, b in got) == sorted(
        [(hook.id, "model"), (bob_hook.id, "space")])
    alice.api.delete_webhook(hook.id)
    bob.api.delete_webhook(bob_hook.id)
    assert alice.api.list_webhooks() == []
    rx.httpd.shutdown()


def test_a_default_server_refuses_private_targets(server, alice) -> None:  # noqa: ANN001
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x", "ftp://example.com/x", "nope"):
        with pytest.raises(BadRequestError):
            alice.api.create_webhook(url=url, watched=[{"type": "user", "name": "alice"}])
    with pytest.raises(BadRequestError):
        alice.api.create_webhook(url="https://example.com/x", watched=[{"type": "planet", "name": "mars"}])
    assert alice.api.list_webhooks() == []
