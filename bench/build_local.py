"""Local builder overhead, side by side with plain uv in the same run (ratios, not absolute times).

    .venv/bin/python bench/build_local.py [--rounds 2] [--no-cold-cache]

(a) cold build of the gradio template's environment (a fresh environments root) by LocalEnvBuilder, versus a bare
    ``uv venv && uv pip install --compile-bytecode gradio==6.31.0`` of the same version with the same interpreter.
    With uv's cache warm (the shared cache) and with a cold one (an empty temporary UV_CACHE_DIR per build, so
    both download everything), rounds alternate which side goes first and the best of each is kept. Child CPU
    seconds are printed too: unlike wall time they hardly move with other load on the machine.
    Goal: ours <= 1.2x bare.
(b) rebuild with unchanged dependencies (a code-only push: same plan, new sha -> reuse), by the running builder
    and by a freshly started one, versus ``cp -al`` of that environment (a hard-link copy). Goal: <= 2x.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spaces.builder.detect import plan_checkout  # noqa: E402
from spaces.builder.localconfig import LocalBuildSettings  # noqa: E402
from spaces.builder.localenv import LocalEnvBuilder  # noqa: E402
from spaces.builder.uvrun import find_uv  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="spaces-bench-build-"))


def quiet(phase: str, line: str) -> None:
    pass


CPU: list[tuple[str, float]] = []  # (label, CPU seconds of child processes) per measured build


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn, label: str = "") -> float:
    cpu, start = child_cpu(), time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    if label:
        CPU.append((label, child_cpu() - cpu))
    return wall


def bare(uv: str, python: str, version: str, cache: Path | None) -> float:
    target = Path(tempfile.mkdtemp(dir=WORK, prefix="bare-"))
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", **({"UV_CACHE_DIR": str(cache)} if cache else {})}

    def run() -> None:
        subprocess.run([uv, "venv", "-q", "--python", python, str(target / "env")], check=True, env=env)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(target / "env" / "bin" / "python"),
                        "--compile-bytecode", f"gradio=={version}"], check=True, env=env)
    seconds = timed(run, "bare-" + ("cold" if cache else "warm"))
    shutil.rmtree(target)
    return seconds


def ours(plan, cache: Path | None) -> tuple[float, Path]:
    root = Path(tempfile.mkdtemp(dir=WORK, prefix="ours-"))
    builder = LocalEnvBuilder(LocalBuildSettings(envs_dir=root, uv_cache_dir=cache))
    holder = {}
    seconds = timed(lambda: holder.setdefault("a", builder.build(plan, "a" * 40, quiet)),
                    "ours-" + ("cold" if cache else "warm"))
    return seconds, Path(holder["a"].ref)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-cold-cache", action="store_true")
    args = ap.parse_args()
    plan = plan_checkout(ROOT / "templates" / "gradio")
    uv = find_uv()
    probe = LocalEnvBuilder(LocalBuildSettings(envs_dir=WORK / "probe"))
    python = str(probe._interpreter(plan.python_version)[0].path)
    rows: list[tuple[str, float, float, float]] = []
    try:
        # warm the shared cache once (not measured), so "warm" means warm for both sides
        ours(plan, None)
        CPU.clear()
        # alternate which side goes first: the machine's load and the network drift during a run
        b_warm, o_warm, env = [], [], None
        for i in range(args.rounds):
            if i % 2:
                t, env = ours(plan, None)
                o_warm.append(t)
                b_warm.append(bare(uv, python, plan.sdk_version, None))
            else:
                b_warm.append(bare(uv, python, plan.sdk_version, None))
                t, env = ours(plan, None)
                o_warm.append(t)
        rows.append(("cold build, warm uv cache (best)", min(o_warm), min(b_warm), 1.2))
        if not args.no_cold_cache:
            b_cold, o_cold = [], []
            for i in range(args.rounds):
                def fresh_cache() -> Path:
                    return Path(tempfile.mkdtemp(dir=WORK, prefix="cache-"))
                if i % 2:
                    b_cold.append(bare(uv, python, plan.sdk_version, fresh_cache()))
                    o_cold.append(ours(plan, fresh_cache())[0])
                else:
                    o_cold.append(ours(plan, fresh_cache())[0])
                    b_cold.append(bare(uv, python, plan.sdk_version, fresh_cache()))
            rows.append(("cold build, cold uv cache (best)", min(o_cold), min(b_cold), 1.2))

        # (b) code-only push: same plan, new sha
        builder = LocalEnvBuilder(LocalBuildSettings(envs_dir=env.parent))
        builder.build(plan, "b" * 40, quiet)
        hot = [timed(lambda: builder.build(plan, "c" * 40, quiet)) for _ in range(7)]
        fresh = [timed(lambda: LocalEnvBuilder(LocalBuildSettings(envs_dir=env.parent)).build(plan, "d" * 40, quiet))
                 for _ in range(7)]
        copies = []
        for i in range(5):
            dest = WORK / f"copy-{i}"
            copies.append(timed(lambda: subprocess.run(["cp", "-al", str(env), str(dest)], check=True)))
            shutil.rmtree(dest)
        rows.append(("code-only rebuild, running builder (median)", statistics.median(hot),
                     statistics.median(copies), 2.0))
        rows.append(("code-only rebuild, restarted builder (median)", statistics.median(fresh),
                     statistics.median(copies), 2.0))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

    print(f"\ngradio=={plan.sdk_version}, Python {Path(python).name}, {os.cpu_count()} cores")
    print(f"{'measure':<48}{'ours (s)':>10}{'reference (s)':>15}{'ratio':>8}{'goal':>7}")
    refs = {1.2: "bare uv venv + uv pip install", 2.0: "cp -al of the env"}
    for name, o, r, goal in rows:
        ok = "ok" if o / r <= goal else "MISS"
        print(f"{name:<48}{o:>10.3f}{r:>15.3f}{o / r:>8.2f}{'<=' + str(goal):>7} {ok}  (vs {refs[goal]})")
    # CPU seconds of the uv processes: much less sensitive than wall time to other load on the machine
    for kind in ("warm", "cold"):
        o = [c for label, c in CPU if label == f"ours-{kind}"]
        b = [c for label, c in CPU if label == f"bare-{kind}"]
        if o and b:
            print(f"{'child CPU, ' + kind + ' cache (best)':<48}{min(o):>10.3f}{min(b):>15.3f}{min(o) / min(b):>8.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
