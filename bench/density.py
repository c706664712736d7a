"""Density on the local backend: N idle Gradio apps forked from one zygote vs N cold processes, summed PSS.

    .venv/bin/python bench/density.py [--n 8] [--venv /var/tmp/spaces-test-envs/...]

Each app is started, answers one GET / (so what a first visit loads is resident), then idles 3 s. Memory is the
proportional set size (``/proc/PID/smaps_rollup``: shared pages divided among their sharers) summed over every
app process and its descendants, plus, for the fork design, the zygote itself (it is the cost of the design).
Prints MiB per app, apps per GiB for each design, and the ratio (goal: at least 3x). Needs root.

With memory merging on (``SPACES_LOCAL__MEMORY_MERGE``, the default) the forks are measured once ksmd, at the
kernel's default scan rate, has merged what it will (it prints how long that took); ``--no-merge`` measures the
forks without it. The cold processes are never merged: they are the one-process-per-Space reference.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from wake_local import DEFAULT_VENV, first_200, make_spec  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402


def rollup(pid: int) -> tuple[int, int]:
    """(PSS, USS) of one process in KiB, from ``/proc/PID/smaps_rollup``; (0, 0) when it is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[name] = int(rest.split()[0])
    except OSError:
        return 0, 0
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def pss_kib(pid: int) -> int:
    return rollup(pid)[0]


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(raw[raw.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


KSM = Path("/sys/kernel/mm/ksm")


def wait_merged(timeout: float = 600.0) -> tuple[float, int]:
    """Wait until ksmd has merged what it will: two more full scans, and the last one added under 1%.
    Returns (seconds waited, pages sharing a merged page)."""
    read = lambda name: int((KSM / name).read_text())  # noqa: E731
    t0 = time.monotonic()
    scans, previous = read("full_scans"), -1
    while time.monotonic() - t0 < timeout:
        time.sleep(2)
        now = read("full_scans")
        if now >= scans + 2:
            sharing = read("pages_sharing")
            if previous >= 0 and sharing - previous <= previous / 100:
                break
            scans, previous = now, sharing
    return time.monotonic() - t0, read("pages_sharing")


def run(backend: LocalBackend, root: Path, venv: str, n: int, fork: bool) -> tuple[float, float]:
    """(summed PSS MiB of the apps and their descendants, PSS MiB of the zygote or 0)."""
    backend.settings.zygote = fork
    handles = []
    try:
        with httpx.Client(timeout=5) as client:
            for _ in range(n):
                h = backend.start(make_spec(root, venv))
                first_200(client, h.data["port"])
                handles.append(h)
        time.sleep(3)
        if fork and backend.zygotes.memory_merge:
            waited, sharing = wait_merged()
            print(f"kernel samepage merging: {sharing * 4 / 1024:.0f} MiB of pages merged after {waited:.0f} s "
                  "of ksmd at its default scan rate", flush=True)
        pids = {p for h in handles for p in descendants(int(h.data["pid"]))}
        zygote = 0.0
        if fork:
            z = backend.zygotes.get(venv, "gradio", {})
            assert z.proc is not None
            zygote = pss_kib(z.proc.pid) / 1024
        return sum(pss_kib(p) for p in pids) / 1024, zygote
    finally:
        for h in handles:
            backend.stop(h)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--venv", default=os.environ.get("SPACES_TEST_LOCAL_VENV", DEFAULT_VENV))
    ap.add_argument("--no-merge", action="store_true", help="forks without kernel samepage merging")
    args = ap.parse_args()
    root = Path(f"/var/tmp/spaces-bench-density-{secrets.token_hex(3)}")
    root.mkdir(mode=0o711)
    backend = LocalBackend(LocalBackendSettings(root=root / "backend", cgroup_root="spaces-bench", uid_min=31100,
                                                uid_max=31199, stop_grace_s=2, zygote_wait_s=120,
                                                memory_merge=not args.no_merge))
    try:
        backend.prewarm(Artifact("venv", args.venv, "bench", "b" * 40), "gradio")
        backend.zygotes.get(args.venv, "gradio", {}).wait_ready(120)
        cold = run(backend, root, args.venv, args.n, fork=False)
        fork = run(backend, root, args.venv, args.n, fork=True)
    finally:
        backend.close()
        shutil.rmtree(root, ignore_errors=True)
    (cold, _), (apps, zygote) = cold, fork
    fork_total = apps + zygote
    merged = " with memory merging" if backend.zygotes.memory_merge else " without memory merging"
    print(f"{args.n} idle gradio hello apps, summed PSS; forks{merged}")
    for name, mib in (("cold processes", cold), ("zygote forks + zygote", fork_total), ("zygote forks only", apps)):
        print(f"{name:24} {mib:8.1f} MiB total  {mib / args.n:6.1f} MiB/app  {1024 * args.n / mib:6.1f} apps/GiB")
    print(f"ratio apps/GiB, forks + zygote vs cold: {cold / fork_total:.2f}x (goal >= 3x)")
    print(f"ratio apps/GiB, forks alone vs cold:    {cold / apps:.2f}x (the zygote's {zygote:.0f} MiB is paid once "
          "per environment; it is shared by every Space of that environment)")

if __name__ == "__main__":
    main()
