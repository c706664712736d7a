"""README ``preload_from_hub``: the listed files of a model on this hub are fetched at build time into the Space's
Hugging Face cache, so unchanged ``hf_hub_download`` code finds them with the hub out of reach (``HF_HUB_OFFLINE``
in the app, and a private model the app has no token for). A rebuild takes the model's new revision; what the
owner cannot read, or a file the model lacks, is a BUILD_ERROR that names it."""

from __future__ import annotations

import pytest
from harness import unique

import platform_kit as kit


def _read(platform, repo_id: str, name: str) -> str | None:  # noqa: ANN001
    try:
        return kit.gradio_call(platform.server, repo_id, "read", name)[0]
    except Exception:  # noqa: BLE001 - restarting: asked again
        return None


def _commit(api, model: str, files: dict[str, str], message: str = "upload") -> None:  # noqa: ANN001
    from huggingface_hub import CommitOperationAdd

    api.create_commit(model, [CommitOperationAdd(path, data.encode()) for path, data in files.items()],
                      commit_message=message)


def _files(model: str, *entries: str) -> dict[str, bytes]:
    listed = ", ".join(f"'{e}'" for e in entries)
    return kit.space_files(**{"README.md": kit.readme("gradio", preload_from_hub=f"[{listed}]"),
                              "app.py": kit.app_source("preload_model.py")})


@pytest.mark.timeout(900)  # two builds and three starts of a gradio app on two shared cores
def test_preloaded_model_files_are_read_offline_and_follow_a_rebuild(platform, alice,  # noqa: ANN001
                                                                    make_space) -> None:  # noqa: ANN001
    model = f"alice/{unique('tiny-model')}"
    alice.api.create_repo(model, private=True)
    _commit(alice.api, model, {"weights.txt": "weights v1\n", "config.json": "{}", "other.txt": "not listed"},
               message="v1")
    dataset = f"alice/{unique('tiny-data')}"
    alice.api.create_repo(dataset, repo_type="dataset", private=True)
    alice.api.upload_file(path_or_fileobj=b"a,b\n", path_in_repo="data/train.csv", repo_id=dataset,
                          repo_type="dataset")
    repo_id = make_space(alice, _files(model, f"{model} weights.txt,config.json", f"datasets/{dataset}"),
                         space_variables=[{"key": "MODEL_ID", "value": model}, {"key": "DATASET_ID", "value": dataset}])
    kit.wait_stage(alice.api, repo_id, kit.RUNNING)
    assert _read(platform, repo_id, "weights.txt") == "weights v1\n"
    assert _read(platform, repo_id, "config.json") == "{}"
    assert _read(platform, repo_id, "other.txt") == "failed: LocalEntryNotFoundError"  # not listed, not fetched
    assert _read(platform, repo_id, "dataset:data/train.csv") == "a,b\n"  # a dataset, every file
    assert "preload_from_hub" in kit.logs(alice.api, repo_id, build=True)

    # the model moves on: a restart keeps the built files (a wake never downloads), a factory rebuild takes v2
    _commit(alice.api, model, {"weights.txt": "weights v2\n"}, message="v2")
    alice.api.restart_space(repo_id)
    kit.wait_for(lambda: _read(platform, repo_id, "weights.txt") == "weights v1\n", timeout=180,
                 what="the restarted app still reading the files of its build")
    alice.api.restart_space(repo_id, factory_reboot=True)
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    build_log = kit.logs(alice.api, repo_id, build=True)
    assert f"at {alice.api.model_info(model).sha[:7]}: 2 file(s)" in build_log, build_log  # the new commit's two
    kit.wait_for(lambda: _read(platform, repo_id, "weights.txt") == "weights v2\n", timeout=120,
                 what="the rebuilt app reading the model's new revision")


def test_what_cannot_be_preloaded_is_a_build_error_naming_it(platform, alice, bob, make_space) -> None:  # noqa: ANN001
    model = f"alice/{unique('tiny-model')}"
    alice.api.create_repo(model)
    _commit(alice.api, model, {"weights.txt": "w\n"})
    missing_file = make_space(alice, _files(model, f"{model} nope.bin"))
    runtime = kit.wait_stage(alice.api, missing_file, "BUILD_ERROR")
    assert "nope.bin" in runtime.raw["message"] and model in runtime.raw["message"], runtime.raw

    secret = f"bob/{unique('secret-model')}"
    bob.api.create_repo(secret, private=True)
    _commit(bob.api, secret, {"weights.txt": "bob's\n"})
    not_readable = make_space(alice, _files(secret, secret))
    runtime = kit.wait_stage(alice.api, not_readable, "BUILD_ERROR")
    assert secret in runtime.raw["message"] and "bob's" not in kit.logs(alice.api, not_readable, build=True)

    bad_revision = make_space(alice, _files(model, f"{model} weights.txt v9"))
    runtime = kit.wait_stage(alice.api, bad_revision, "BUILD_ERROR")
    assert "'v9'" in runtime.raw["message"], runtime.raw
