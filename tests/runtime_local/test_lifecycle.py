"""stop, crashes, freeze/thaw, pid reuse, and re-adoption after the control plane is killed with SIGKILL."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings
from spaces.runtime.contracts import Handle, Phase
from spaces.runtime.sandbox import proc_stat

from runtime_local.helpers import HELLO_GRADIO, Spaces, get, wait_phase

CRASH = "import sys\nprint('crash-marker: starting', flush=True)\nraise RuntimeError('boom at start')\n"


def test_stop_is_idempotent_and_leaves_nothing(spaces: Spaces, backend: LocalBackend) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}))
    wait_phase(backend, handle, Phase.RUNNING)
    pid = handle.data["pid"]
    backend.stop(handle)
    backend.stop(handle)  # already gone: success
    assert backend.poll(handle).phase == Phase.GONE
    assert proc_stat(pid) is None or proc_stat(pid)[1] != handle.data["starttime"]
    assert all(h.data["instance"] != handle.data["instance"] for h in backend.list({}))
    assert not any(g.exists() for g in backend.cgroups.groups(handle.data["instance"]))


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "cold"])
def test_crash_reports_exit_code_and_log_tail(spaces: Spaces, backend: LocalBackend, zygote: bool) -> None:
    handle = spaces.start(spaces.spec({"app.py": CRASH}), zygote=zygote)
    obs = wait_phase(backend, handle, Phase.EXITED, timeout=60)
    assert obs.exit_code == 1
    assert "crash-marker: starting" in obs.message and "RuntimeError: boom at start" in obs.message
    # exactly as `python app.py` prints it: the absolute path, none of the zygote's own frames
    assert f'File "{handle_workdir(handle, backend)}/app.py", line 3' in obs.message
    assert "zygote.py" not in obs.message and "runpy" not in obs.message
    backend.stop(handle)  # stopping what already exited is fine
    assert backend.poll(handle).phase == Phase.GONE


def handle_workdir(handle: Handle, backend: LocalBackend) -> str:
    return json.loads((backend.instances_dir / f"{handle.data['instance']}.json").read_text())["workdir"]


def test_freeze_and_thaw(spaces: Spaces, backend: LocalBackend) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}))
    wait_phase(backend, handle, Phase.RUNNING)
    backend.freeze(handle)
    assert backend.poll(handle).phase == Phase.FROZEN
    with pytest.raises(httpx.TimeoutException):
        get(handle, timeout=1.5)
    backend.thaw(handle)
    assert backend.poll(handle).phase == Phase.RUNNING
    assert get(handle).status_code == 200


def test_a_reused_pid_is_never_mistaken_for_the_app(spaces: Spaces, backend: LocalBackend) -> None:
    handle = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}))
    wait_phase(backend, handle, Phase.RUNNING)
    # a stale handle of another instance whose pid now belongs to this app
    ghost = Handle("local", handle.ref, "local", {**handle.data, "instance": "ghost", "starttime": 1})
    assert backend.poll(ghost).phase == Phase.GONE
    backend.stop(ghost)
    assert backend.poll(handle).phase == Phase.RUNNING and get(handle).status_code == 200


def test_instances_survive_a_killed_control_plane_and_are_readopted(
        spaces: Spaces, settings: LocalBackendSettings, tmp_path: Path) -> None:
    label = {"test.readopt": tmp_path.name}
    specs = [spaces.spec({"app.py": HELLO_GRADIO}, labels=label), spaces.spec({"app.py": HELLO_GRADIO}, labels=label)]
    raw = []
    for spec, zygote in zip(specs, (True, False)):
        d = dataclasses.asdict(spec)
        d["zygote"] = zygote
        raw.append(d)
    (tmp_path / "settings.json").write_text(settings.model_dump_json())
    (tmp_path / "specs.json").write_text(json.dumps(raw))
    out = tmp_path / "out.json"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("control_plane.py")),
                             str(tmp_path / "settings.json"), str(tmp_path / "specs.json"), str(out)],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    try:
        deadline = time.monotonic() + 180
        while not out.exists():
            assert proc.poll() is None, "the control plane died"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        report = json.loads(out.read_text())
        before = [Handle.from_json(h) for h in report["handles"]]
        assert [h.data["via"] for h in before] == ["zygote", "exec"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the zygote notices its parent is gone and exits; the apps, in their own sessions, live on
    for zpid in report["zygotes"]:
        deadline = time.monotonic() + 10
        while proc_stat(zpid) not in (None,) and proc_stat(zpid)[0] != "Z":
            assert time.monotonic() < deadline, "the orphaned zygote did not exit"
            time.sleep(0.1)
    restarted = LocalBackend(settings)  # a new control plane
    try:
        found = {h.data["instance"]: h for h in restarted.list(label)}
        assert set(found) == {h.data["instance"] for h in before}
        for old in before:
            new = found[old.data["instance"]]
            assert (new.ref, new.data["port"]) == (old.ref, old.data["port"])
            wait_phase(restarted, new, Phase.RUNNING)
            assert get(new).status_code == 200
        for h in found.values():
            restarted.stop(h)
            assert restarted.poll(h).phase == Phase.GONE
        assert restarted.list(label) == []
    finally:
        for h in restarted.list(label):
            restarted.stop(h)
        restarted.close()


def test_warming_the_cgroup_join_writes_to_our_own_group_and_moves_nothing(backend: LocalBackend,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    before = Path("/proc/self/cgroup").read_text()
    with caplog.at_level("DEBUG", logger="spaces.runtime.cgroups"):
        thread = backend.cgroups.warm_join()
        assert thread is not None, "this host's cgroups should show our own group"
        thread.join(10)
    assert not thread.is_alive()
    assert not [r for r in caplog.records if "could not warm" in r.getMessage()]  # the kernel took the write
    assert Path("/proc/self/cgroup").read_text() == before
