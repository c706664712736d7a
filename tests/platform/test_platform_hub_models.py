"""A Space loads a model from this hub with unchanged code (``hf_hub_download``): every Space gets
``HF_ENDPOINT`` pointing here, and reaches the hub's public port from its sandbox. A private model needs the
owner's opt-in, a secret ``HF_TOKEN`` (as on the Hub); nobody's token is given to an app otherwise."""

from __future__ import annotations

from harness import make_actor, unique

import platform_kit as kit

WEIGHTS = "weights from this hub\n"


def _read(platform, repo_id: str) -> str | None:  # noqa: ANN001
    try:
        return kit.gradio_call(platform.server, repo_id, "read", "x")[0]
    except Exception:  # noqa: BLE001 - restarting: asked again
        return None


def test_a_space_downloads_a_file_of_a_model_on_this_hub(platform, alice, make_space) -> None:  # noqa: ANN001
    model = f"alice/{unique('tiny-model')}"
    alice.api.create_repo(model, private=True)
    alice.api.upload_file(path_or_fileobj=WEIGHTS.encode(), path_in_repo="hello.txt", repo_id=model)
    files = kit.space_files(**{"README.md": kit.readme("gradio", models=f"[{model}]"),
                               "app.py": kit.app_source("hub_model.py")})
    repo_id = make_space(alice, files, space_variables=[{"key": "MODEL_ID", "value": model}])
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    text = kit.logs(alice.api, repo_id, build=False)
    public = platform.server.env.get("SPACES_PUBLIC_URL") or f"http://localhost:{platform.port}"
    assert f"endpoint={public.rstrip('/')} " in text, text[-2000:]  # the hub's public URL
    # private, and the owner gave the app no token: the app sees what any stranger sees
    assert _read(platform, repo_id) == "failed: RepositoryNotFoundError"
    assert alice.api.model_info(model).spaces == [repo_id]

    # the owner's opt-in, as on the Hub: a read token as the secret HF_TOKEN (the Space restarts with it)
    alice.api.add_space_secret(repo_id, "HF_TOKEN", make_actor(platform.server, "alice", role="read").token)
    kit.wait_for(lambda: _read(platform, repo_id) == WEIGHTS, timeout=180,
                 what="the restarted app reading the private model with its HF_TOKEN secret")

    # public: no token needed at all
    alice.api.update_repo_settings(model, private=False)
    alice.api.delete_space_secret(repo_id, "HF_TOKEN")
    alice.api.upload_file(path_or_fileobj=b"v2\n", path_in_repo="hello.txt", repo_id=model)
    alice.api.restart_space(repo_id)
    kit.wait_for(lambda: _read(platform, repo_id) == "v2\n", timeout=180,
                 what="the restarted app reading the public model without a token")
