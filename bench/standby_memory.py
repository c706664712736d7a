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
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from density import descendants  # noqa: E402
from wake_local import DEFAULT_VENV, first_200  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402
from spaces.runtime.contracts import Handle, InstanceSpec, Limits  # noqa: E402

TEMPLATE = ROOT / "templates" / "streamlit" / "app.py"


def rollup(pid: int) -> tuple[int, int]:
    """(PSS, USS) of one process in KiB."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    except OSError:
        return 0, 0
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def measure(handles: list[Handle]) -> tuple[float, float]:
    """(PSS, USS) in MiB per instance, mean over ``handles``."""
    pss = uss = 0
    for h in handles:
        for pid in descendants(int(h.data["pid"])):
            p, u = rollup(pid)
            pss, uss = pss + p, uss + u
    return pss / 1024 / len(handles), uss / 1024 / len(handles)


def spec(root: Path, venv: str) -> InstanceSpec:
    work = root / "work" / secrets.token_hex(4)
    work.mkdir(parents=True)
    os.chmod(work.parent, 0o711)
    (work / "app.py").write_text(TEMPLATE.read_text())
    return InstanceSpec(space_id="bench/standby", repo_id="bench/standby", sha="b" * 40, sdk="streamlit",
                        artifact=Artifact("venv", venv, "bench", "b" * 40), workdir=str(work), app_file="app.py",
                        port=8501, env={"SPACE_ID": "bench/standby", "SYSTEM": "spaces"},
                        limits=Limits(cpu=2, memory_mb=2048))


async def session(port: int) -> None:
    """One Streamlit session: connect, ask for a run, wait until the script finished."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async with websockets.connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"]) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        await ws.send(msg.SerializeToString())
        async with asyncio.timeout(120):
            while ForwardMsg.FromString(await ws.recv()).WhichOneof("type") != "script_finished":
                pass


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
                h = backend.start(spec(root, args.venv))
                assert h.data["via"] == "zygote", h.data
                first_200(client, h.data["port"])
                handles.append(h)
        time.sleep(2)
        standby = measure(handles)
        for h in handles:
            asyncio.run(session(h.data["port"]))
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
