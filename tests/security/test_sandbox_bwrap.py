"""The sandbox's root against bubblewrap's: one layout (``sandbox.root_ops``), applied by ``zygote.build_root`` on
the wake path and by bubblewrap, the reference, must show a process the same file tree.

``zygote.build_root`` exists because a fork of a pre-warmed interpreter cannot be handed to bubblewrap, which only
execs (see ``spaces/runtime/sandbox.py``); this keeps it honest to the tool it stands in for. Needs root and
bubblewrap (scripts/test installs it); run under ``flock /tmp/spaces-live.lock``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from spaces.runtime import sandbox
from spaces.runtime.zygote_client import ZYGOTE_SCRIPT

from runtime_local.conftest import local_root, venv  # noqa: F401 - fixtures shared with the backend's tests

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("bwrap"), reason="needs root and bubblewrap")

UID = 31998
LOOK = """
import json, os
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return type(e).__name__
paths = ["/", "/etc", "/dev", "/var", "/usr", "/sys", "/sys/devices/system", os.environ["HOME"], os.getcwd(),
         "/run", "/var/tmp", "/home", "/root", "/proc/1", "/etc/passwd", "/etc/shadow", "/etc/resolv.conf"]
seen = {p: listing(p) if os.path.isdir(p) or not os.path.exists(p) else "file" for p in paths}
seen["pids"] = len([p for p in os.listdir("/proc") if p.isdigit()])
print("LOOK " + json.dumps(seen), flush=True)
"""


def test_build_root_shows_what_bubblewrap_shows_for_the_same_layout(local_root: Path, venv: Path) -> None:  # noqa: F811
    base = local_root / f"bwrap-{secrets.token_hex(4)}"
    workdir, home, target, root = base / "work", base / "home", base / "hometarget", base / "root"
    for d in (workdir, home, target, root):
        d.mkdir(parents=True)
    os.chmod(base, 0o711)
    (workdir / "look.py").write_text(LOOK)
    for d in (workdir, home):
        sandbox.own_tree(d, UID, UID)
    ops = sandbox.root_ops(sandbox.RootPlan(str(venv), str(workdir), str(home), str(target), 16, 16))
    env = {"PATH": sandbox.SYSTEM_PATH, "HOME": str(target), "LANG": sandbox.BASIC_LANG}
    argv = [f"{venv}/bin/python", "look.py"]

    log = base / "ours.log"
    req = {"instance": "look", "uid": UID, "gid": UID, "cwd": str(workdir), "log": str(log), "env": env,
           "argv": argv, "cgroup_procs": [], "namespace": {"hide_host": True, "root": str(root), "ops": ops,
                                                           "landlock": sandbox.landlock_abi() >= 6}}
    done = subprocess.run([f"{venv}/bin/python", str(ZYGOTE_SCRIPT), "exec"], input=json.dumps(req).encode(),
                          start_new_session=True, timeout=60)
    assert done.returncode == 0, log.read_text()
    ours = json.loads(log.read_text().split("LOOK ", 1)[1])

    setenv = [a for k, v in env.items() for a in ("--setenv", k, v)]
    bwrap = subprocess.run(["bwrap", "--unshare-pid", "--unshare-ipc", "--die-with-parent", *sandbox.bwrap_args(ops),
                            "--chdir", str(workdir), "--clearenv", *setenv, "--", *argv],
                           capture_output=True, text=True, timeout=60)
    assert bwrap.returncode == 0, bwrap.stderr
    reference = json.loads(bwrap.stdout.split("LOOK ", 1)[1])

    assert ours == reference
    assert ours["/run"] == ours["/home"] == ours["/root"] == ours["/etc/passwd"] == "FileNotFoundError"
    assert ours["/etc/resolv.conf"] == "file" and ours["pids"] <= 2  # its init and itself
