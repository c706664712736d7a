"""The pre-receive hook refuses a push whose hub is gone: receive-pack outlives a hub killed with -9, and one that
had read the whole pack would otherwise move main later, unacknowledged (tests/scaleout kills a hub mid-push)."""

from __future__ import annotations

import os
import subprocess
import sys

from spaces.storage.prereceive import hub_alive, hub_token


def test_a_live_process_is_alive_and_a_dead_or_reused_pid_is_not() -> None:
    assert hub_alive(hub_token())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    token = hub_token(child.pid)
    assert hub_alive(token)
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie, as a hub killed by -9
    assert not hub_alive(token)
    child.wait()
    assert not hub_alive(token)
    pid, _, started = hub_token().partition(":")
    assert not hub_alive(f"{pid}:{int(started) + 1}")  # the same pid, started at another time: another process
    assert not hub_alive("") and not hub_alive("abc:1")


def test_the_hook_refuses_when_the_hub_is_gone(tmp_path) -> None:  # noqa: ANN001
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = hub_token(child.pid)
    child.wait()
    for token, code in ((gone, 1), (hub_token(), 0)):
        run = subprocess.run([sys.executable, "-I", "-m", "spaces.storage.prereceive"], input="", text=True,
                             capture_output=True, cwd=tmp_path,
                             env={**os.environ, "GIT_DIR": str(tmp_path / "r.git"), "SPACES_PUSH_HUB": token})
        assert run.returncode == code, run
        assert ("stopped before it finished" in run.stdout) == (code == 1)
