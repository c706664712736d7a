"""What a Streamlit standby keeps in memory, against the same app once a visitor has used it (local backend).

    .venv/bin/python bench/standby_memory.py [--n 4] [--venv /var/tmp/spaces-test-envs/...]

A standby (see ``spaces.runtime.reconciler``) is a fresh Streamlit server forked from the environment's zygote,
frozen once it listens: what a Space stopped after its long sleep keeps. This starts ``--n`` instances of the
Streamlit template app that way and measures them listening (the standby), then opens one session on each (the
app's script runs: the template draws a chart) and measures them again: what the stop gives back. Memory is the
proportional set size (``/proc/PID/smaps_rollup``; shared pages divided among their sharers) and the unique set
size (private pages only), summed over each instance's processes. Memory merging is off: its timing is ksmd's.
Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "platform")]

from density import descendants, rollup  # noqa: E402
from test_platform_builder import streamlit_session  # noqa: E402
from wake_local import DEFAULT_VENV, first_200, make_spec  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402
from spaces.runtime.contracts import Handle  # noqa: E402

TEMPLATE = ROOT / "templates" / "streamlit" / "app.py"


def measure(handles: list[Handle]) -> tuple[float, float]:
    """(PSS, USS) in MiB per instance, mean over ``handles``."""
    pss = uss = 0
    for h in handles:
        for pid in descendants(int(h.data["pid"])):
            p, u = rollup(pid)
            pss, uss = pss + p, uss + u
    return pss / 1024 / len(handles), uss / 1024 / len(handles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--venv", default=os.environ.get("SPACES_TEST_LOCAL_VENV", DEFAULT_VENV))
    args = ap.parse_args()
    root = Path(f"/var/tmp/spaces-bench-standby-{secrets.token_hex(3)}")
    root.mkdir(mode=0o711)
    backend = LocalBackend(LocalBackendSettings(root=root / "backend", cgroup_root="spaces-bench-standby",
                                                uid_min=31200, uid_max=31299, stop_grace_s=2, zygote_wait_s=120,
                                                memory_merge=False))
    handles: list[Handle] = []
    try:
        backend.prewarm(Artifact("venv", args.venv, "bench", "b" * 40), "streamlit")
        backend.zygotes.get(args.venv, "streamlit", {}).wait_ready(120)
        with httpx.Client(timeout=5) as client:
            for _ in range(args.n):
                h = backend.start(make_spec(root, args.venv, "streamlit", TEMPLATE.read_text()))
                assert h.data["via"] == "zygote", h.data
                first_200(client, h.data["port"])
                handles.append(h)
        time.sleep(2)
        standby = measure(handles)
        for h in handles:
            port = h.data["port"]
            asyncio.run(streamlit_session(port, f"127.0.0.1:{port}"))  # straight to the app, no proxy
        time.sleep(2)
        used = measure(handles)
    finally:
        for h in handles:
            backend.stop(h)
        backend.close()
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.n} instances of the Streamlit template app forked from one zygote, MiB per instance")
    print(f"{'':28} {'PSS':>8} {'USS':>8}")
    print(f"{'standby (listening, fresh)':28} {standby[0]:8.1f} {standby[1]:8.1f}")
    print(f"{'after one session':28} {used[0]:8.1f} {used[1]:8.1f}")
    print(f"a standby keeps {standby[0] / used[0]:.2f}x the PSS (and {standby[1] / used[1]:.2f}x the USS) of the "
          "used app that its stop gave back")


if __name__ == "__main__":
    main()
