"""Wake on the local backend: cold start vs zygote fork vs thaw, time to the first HTTP 200, in one run.

    .venv/bin/python bench/wake_local.py [--rounds 20] [--venv /var/tmp/spaces-test-envs/...] [--budget-s 900]
    .venv/bin/python bench/wake_local.py --old-sandbox   # also cold-old and fork-old, interleaved round by round

A Gradio hello app. Each round of *cold* starts the app with ``python app.py`` in its sandbox (no zygote); *fork*
asks the environment's pre-warmed zygote (started once, before timing) to fork it into the same sandbox; *thaw*
freezes a running app through the cgroup freezer and measures thaw + first 200. Every sample is ``start``/``thaw``
call to the first 200 on ``/``, polled every 5 ms. Prints p50/p95 per mode and the ratios against cold (the goal
for wake: p50 at most 0.1x cold). With ``--old-sandbox`` a second backend with ``hide_host=False`` (the sandbox
before it hid the host: no PID namespace, root or disk of its own) runs the same cold start and fork in each round,
right after the first's: the host-hiding sandbox's cost without the noise of runs minutes apart. Needs root; the
venv defaults to the test environment (tests/runtime_local).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchstats import percentile  # noqa: E402

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings  # noqa: E402
from spaces.runtime.contracts import InstanceSpec, Limits  # noqa: E402

DEFAULT_VENV = "/var/tmp/spaces-test-envs/gradio6.31.0-streamlit1.67.0-py3.11"
HELLO = "import gradio as gr\n\ngr.Interface(lambda x: 'Hello ' + x, 'text', 'text').launch()\n"


def first_200(client: httpx.Client, port: int, timeout: float = 120.0) -> None:
    """Poll until ``/`` answers 200. The client is made once, outside the timing: making one loads a CA bundle
    (about 30 ms here), which is no part of a wake."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get(f"http://127.0.0.1:{port}/").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no 200 on port {port} in {timeout}s")
        time.sleep(0.005)


def make_spec(root: Path, venv: str, sdk: str = "gradio", app: str = HELLO) -> InstanceSpec:
    """One bench instance of ``app`` (source of app.py) in a fresh working copy under ``root``."""
    work = root / "work" / secrets.token_hex(4)
    work.mkdir(parents=True)
    os.chmod(work.parent, 0o711)
    (work / "app.py").write_text(app)
    return InstanceSpec(space_id="bench/wake", repo_id="bench/wake", sha="b" * 40, sdk=sdk,
                        artifact=Artifact("venv", venv, "bench", "b" * 40), workdir=str(work), app_file="app.py",
                        port=7860, env={"SPACE_ID": "bench/wake", "SYSTEM": "spaces"},
                        limits=Limits(cpu=2, memory_mb=2048))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--venv", default=os.environ.get("SPACES_TEST_LOCAL_VENV", DEFAULT_VENV))
    ap.add_argument("--budget-s", type=float, default=900.0, help="stop adding rounds after this long")
    ap.add_argument("--old-sandbox", action="store_true", help="also cold-old and fork-old (hide_host=False)")
    args = ap.parse_args()
    root = Path(f"/var/tmp/spaces-bench-wake-{secrets.token_hex(3)}")
    root.mkdir(mode=0o711)
    backend = LocalBackend(LocalBackendSettings(root=root / "backend", cgroup_root="spaces-bench", uid_min=31000,
                                                uid_max=31099, stop_grace_s=2, zygote_wait_s=120))
    backend.prewarm(Artifact("venv", args.venv, "bench", "b" * 40), "gradio")
    backend.zygotes.get(args.venv, "gradio", {}).wait_ready(120)
    backends = {"": backend}
    if args.old_sandbox:
        old = backends["-old"] = LocalBackend(LocalBackendSettings(
            root=root / "backend-old", cgroup_root="spaces-bench-old", uid_min=31100, uid_max=31199, stop_grace_s=2,
            zygote_wait_s=120, hide_host=False))
        old.prewarm(Artifact("venv", args.venv, "bench", "b" * 40), "gradio")
        old.zygotes.get(args.venv, "gradio", {}).wait_ready(120)
    results: dict[str, list[float]] = {"cold": [], "fork": [], "thaw": []}
    if args.old_sandbox:
        results.update({"cold-old": [], "fork-old": []})
    started = time.monotonic()
    client = httpx.Client(timeout=5)
    try:
        for i in range(args.rounds):
            if time.monotonic() - started > args.budget_s:
                print(f"budget reached after {i} rounds", file=sys.stderr)
                break
            for mode, suffix in (("cold", ""), ("fork", ""), *((("cold", "-old"), ("fork", "-old")) if
                                                                args.old_sandbox else ())):
                backend = backends[suffix]
                backend.settings.zygote = mode == "fork"
                t0 = time.perf_counter()
                h = backend.start(make_spec(root, args.venv))
                first_200(client, h.data["port"])
                results[mode + suffix].append(time.perf_counter() - t0)
                assert h.data["via"] == ("zygote" if mode == "fork" else "exec"), h.data["via"]
                if mode == "fork" and not suffix:  # the same instance serves the thaw sample
                    backend.freeze(h)
                    time.sleep(0.2)
                    t0 = time.perf_counter()
                    backend.thaw(h)
                    first_200(client, h.data["port"])
                    results["thaw"].append(time.perf_counter() - t0)
                backend.stop(h)
    finally:
        client.close()
        for b in backends.values():
            for h in b.list({}):
                b.stop(h)
            b.close()
        shutil.rmtree(root, ignore_errors=True)
    cold50 = statistics.median(results["cold"])
    print(f"gradio hello app, local backend, {len(results['cold'])} rounds, cgroups v{backend.cgroups.version}")
    print(f"{'mode':8} {'p50 s':>8} {'p95 s':>8} {'p50/cold':>9} {'p95/p50':>8}")
    for mode, samples in results.items():
        p50, p95 = statistics.median(samples), percentile(samples, 95)
        print(f"{mode:8} {p50:8.3f} {p95:8.3f} {p50 / cold50:9.3f} {p95 / p50:8.2f}")


if __name__ == "__main__":
    main()
