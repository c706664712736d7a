"""Starting real Gradio, Streamlit and static Spaces cold and from the zygote; what the app sees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spaces.runtime.backends.local import LocalBackend
from spaces.runtime.contracts import Phase

from runtime_local.helpers import HELLO_GRADIO, HELLO_STREAMLIT, Spaces, get, wait_phase, written

# writes what a process can observe about itself, after the SDK import (as any app would), then serves
PROBE = """
import json, os, sys
import gradio as gr
json.dump({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv, "orig_argv": sys.orig_argv,
           "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "path0": sys.path[0],
           "umask": os.umask(0o022), "session_leader": os.getsid(0) == os.getpid(), "name": __name__, "file": __file__,
           "tmp": sorted(os.listdir("/tmp")), "home": os.environ.get("HOME"),
           "home_mine": os.stat(os.environ["HOME"]).st_uid == os.getuid(),
           "fds": sorted(os.listdir("/proc/self/fd"))}, open("probe.json", "w"))
gr.Interface(lambda x: x, "text", "text").launch()
"""
BASICS = {"PATH", "HOME", "LANG", "PYTHONUNBUFFERED", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT",
          "CUDA_VISIBLE_DEVICES"}


@pytest.mark.parametrize("zygote", [False, True], ids=["cold", "zygote"])
def test_gradio_app_answers(spaces: Spaces, backend: LocalBackend, zygote: bool) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}), zygote=zygote)
    assert handle.data["via"] == ("zygote" if zygote else "exec")
    obs = wait_phase(backend, handle, Phase.RUNNING)
    assert obs.address == ("127.0.0.1", handle.data["port"])
    assert get(handle).status_code == 200
    assert any("Running on local URL" in line for line in backend.logs(handle))


@pytest.mark.parametrize("zygote", [False, True], ids=["cold", "zygote"])
def test_streamlit_app_answers(spaces: Spaces, backend: LocalBackend, zygote: bool) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_STREAMLIT}, sdk="streamlit"), zygote=zygote)
    assert handle.data["via"] == ("zygote" if zygote else "exec")
    wait_phase(backend, handle, Phase.RUNNING)
    assert get(handle, "/_stcore/health").status_code == 200


def test_environment_is_exactly_the_spaces_and_a_fork_looks_like_a_cold_start(
        spaces: Spaces, backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACES_PLATFORM_CANARY", "platform-secret")
    seen = {}
    for mode in ("cold", "zygote"):
        spec = spaces.spec({"app.py": PROBE}, env={"MY_SECRET": "s3cret", "SYSTEM": "spaces"})
        handle = spaces.start(spec, zygote=mode == "zygote")
        assert handle.data["via"] == ("zygote" if mode == "zygote" else "exec")
        wait_phase(backend, handle, Phase.RUNNING)
        probe = json.loads(written(backend, spec, "probe.json").read_text())
        env = probe["env"]
        assert set(env) == set(spec.env) | BASICS
        assert "SPACES_PLATFORM_CANARY" not in env and "platform-secret" not in json.dumps(probe)
        assert env["MY_SECRET"] == "s3cret" and env["GRADIO_SERVER_PORT"] == str(handle.data["port"])
        assert probe["uid"] == probe["gid"] == handle.data["uid"] and probe["uid"] != 0 and probe["groups"] == []
        assert probe["cwd"] == probe["path0"] == spec.workdir
        assert probe["home_mine"] and probe["name"] == "__main__"
        # the app's process group is the one the backend signals; with its own PID namespace the group's leader is
        # the namespace's init (the app's parent), else the app itself
        assert probe["session_leader"] == (not backend.hide_host)
        # normalise what must differ between two Spaces, then the two must be identical
        probe["uid"] = probe["gid"] = "<UID>"
        text = json.dumps(probe).replace(spec.workdir, "<WORKDIR>").replace(spec.space_id, "<SPACE>")
        text = text.replace(f'"{handle.data["port"]}"', '"<PORT>"')
        seen[mode] = json.loads(text)
    assert seen["zygote"] == seen["cold"]


def test_import_time_variable_falls_back_to_cold_start(spaces: Spaces, backend: LocalBackend) -> None:
    # huggingface_hub (imported by gradio) reads HF_ENDPOINT once at import: a fork could not honour it
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}, env={"HF_ENDPOINT": "http://hub.invalid"}))
    assert handle.data["via"] == "exec"
    wait_phase(backend, handle, Phase.RUNNING)
    assert get(handle).status_code == 200


def test_dead_zygote_is_restarted(spaces: Spaces, backend: LocalBackend, venv: Path) -> None:
    zygote = backend.zygotes.get(str(venv), "gradio", {})
    zygote.wait_ready(120)
    assert zygote.proc is not None
    old_pid = zygote.proc.pid
    zygote.proc.kill()
    zygote.proc.wait()
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}))
    assert handle.data["via"] == "zygote" and zygote.proc.pid != old_pid
    wait_phase(backend, handle, Phase.RUNNING)
    assert get(handle).status_code == 200


def test_static_space_has_no_process(spaces: Spaces, backend: LocalBackend) -> None:
    spec = spaces.spec({"index.html": "<h1>hi</h1>"}, sdk="static")
    handle = spaces.start(spec)
    assert handle.data["static"] == spec.workdir
    assert backend.poll(handle).phase == Phase.RUNNING
    assert any(h.data.get("instance") == handle.data["instance"] for h in backend.list({}))
    backend.stop(handle)
    assert backend.poll(handle).phase == Phase.GONE


def _merge_any(pid: int) -> str | None:
    """'yes'/'no' from /proc/PID/ksm_stat (Linux 6.8+), None when the kernel does not say."""
    try:
        for line in Path(f"/proc/{pid}/ksm_stat").read_text().splitlines():
            if line.startswith("ksm_merge_any:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def test_zygote_forks_are_opted_into_memory_merging_and_cold_starts_are_not(
        spaces: Spaces, backend: LocalBackend) -> None:
    if _merge_any(os.getpid()) is None or not backend.zygotes.memory_merge:
        pytest.skip("this kernel has no process-wide samepage merging (PR_SET_MEMORY_MERGE, /proc/PID/ksm_stat)")
    assert Path("/sys/kernel/mm/ksm/run").read_text().strip() == "1"  # the backend turned ksmd on
    seen = {}
    for mode in ("zygote", "cold"):
        handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}), zygote=mode == "zygote")
        assert handle.data["via"] == ("zygote" if mode == "zygote" else "exec")
        wait_phase(backend, handle, Phase.RUNNING)
        seen[mode] = _merge_any(int(handle.data["pid"]))
    assert seen == {"zygote": "yes", "cold": "no"}
