"""Density on the local backend: N idle Gradio apps forked from one zygote vs N cold processes, summed PSS.

    .venv/bin/python bench/density.py [--n 8] [--venv /var/tmp/spaces-test-envs/...]

Each app is started, answers one GET / (so what a first visit loads is resident), then idles 3 s. Memory is the
proportional set size (``/proc/PID/smaps_rollup``: shared pages divided among their sharers) summed over every
app process and its descendants, plus, for the fork design, the zygote itself (it is the cost of the design).
Prints MiB per app, apps per GiB for each design, and the ratio (goal: at least 3x). Needs root.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from wake_local import DEFAULT_VENV, first_200, make_spec  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


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


def run(backend: LocalBackend, root: Path, venv: str, n: int, fork: bool) -> tuple[float, float]:
    """(summed PSS MiB of the apps and their descendants, PSS MiB of the zygote or 0)."""
    backend.settings.zygote = fork
    handles = []
    try:
        for _ in range(n):
            h = backend.start(make_spec(root, venv))
            first_200(h.data["port"])
            handles.append(h)
        time.sleep(3)
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
    args = ap.parse_args()
    root = Path(f"/var/tmp/spaces-bench-density-{secrets.token_hex(3)}")
    root.mkdir(mode=0o711)
    backend = LocalBackend(LocalBackendSettings(root=root / "backend", cgroup_root="spaces-bench", uid_min=31100,
                                                uid_max=31199, stop_grace_s=2, zygote_wait_s=120))
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
    print(f"{args.n} idle gradio hello apps, summed PSS")
    for name, mib in (("cold processes", cold), ("zygote forks + zygote", fork_total), ("zygote forks only", apps)):
        print(f"{name:24} {mib:8.1f} MiB total  {mib / args.n:6.1f} MiB/app  {1024 * args.n / mib:6.1f} apps/GiB")
    print(f"ratio apps/GiB, forks + zygote vs cold: {cold / fork_total:.2f}x (goal >= 3x)")
    print(f"ratio apps/GiB, forks alone vs cold:    {cold / apps:.2f}x (the zygote's {zygote:.0f} MiB is paid once "
          "per environment; it is shared by every Space of that environment)")

if __name__ == "__main__":
    main()
