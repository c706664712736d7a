"""Push to serving through the whole platform (local backend), in one run, as ratios against a fresh build.

    .venv/bin/python bench/push.py [--rounds 5] [--envs-dir DIR]

One ``spaces serve``; a gradio Space (the template's app with a marker in its title). Three kinds of push, each
timed from the start of the ``create_commit`` call to the first answer of the new revision through the proxy (its
``/config`` has the new title; polled every 20 ms):

* **code-only**: only ``app.py`` changes; the environment is reused, the new instance replaces the old one.
* **fresh build**: ``requirements.txt`` changes (a new environment address: a real install of gradio and ``six``
  from uv's cache, bytecode compiled): the reference.
* **new Space, environment built**: ``create_repo`` + first commit of a new Space whose environment exists.

Prints medians and the ratios against the fresh build. ``--envs-dir`` reuses environments across runs.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "platform")]

import platform_kit as kit  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402


def answered(platform: kit.Platform, repo_id: str, title: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with kit.app_client(platform.server, repo_id, timeout=30) as c:
        while time.monotonic() < deadline:
            try:
                r = c.get("/config")
                if r.status_code == 200 and r.json().get("title") == title:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.02)
    raise TimeoutError(f"{repo_id} never answered with title {title!r}")


def timed_push(platform: kit.Platform, api: HfApi, repo_id: str, files: dict, mark: str, *, new: bool = False) -> float:
    files = {**files, "app.py": kit.app_source("greet.py", MARK=mark)}
    t0 = time.perf_counter()
    if new:
        kit.create_space(api, repo_id, files)
    else:
        kit.upload(api, repo_id, files, f"push {mark}")
    answered(platform, repo_id, f"Greet {mark}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--envs-dir", type=Path, default=None)
    args = ap.parse_args()
    base = kit.new_base("spaces-bench-push-")
    platform = kit.start_platform(base, "push", envs_dir=args.envs_dir or base / "envs")
    try:
        api = HfApi(endpoint=platform.url, token=platform.server.token("bench"))
        readme = {"README.md": kit.readme("gradio")}
        repo_id = "bench/push"
        first = timed_push(platform, api, repo_id, readme, "m0", new=True)
        print(f"first push of the first Space (builds its environment unless --envs-dir has it): {first:.2f} s")
        code, fresh, new = [], [], []
        for i in range(args.rounds):
            code.append(timed_push(platform, api, repo_id, {}, f"c{i}"))
            reqs = {"requirements.txt": f"six\n# {secrets.token_hex(6)}\n"}
            fresh.append(timed_push(platform, api, repo_id, reqs, f"f{i}"))
            code.append(timed_push(platform, api, repo_id, {}, f"d{i}"))
            new.append(timed_push(platform, api, f"bench/new-{i}", readme, f"n{i}", new=True))
            api.delete_repo(f"bench/new-{i}", repo_type="space")
            print(f"  round {i + 1}: code-only {code[-2]:.2f} s / {code[-1]:.2f} s, fresh build {fresh[-1]:.2f} s, "
                  f"new Space {new[-1]:.2f} s", flush=True)
        ref = statistics.median(fresh)
        print("\nkind                           median     min     max   vs fresh build")
        for name, xs in (("code-only push", code), ("fresh build (new requirements)", fresh),
                         ("new Space, environment built", new)):
            print(f"{name:<30} {statistics.median(xs):6.2f} s {min(xs):6.2f}  {max(xs):6.2f}   "
                  f"{statistics.median(xs) / ref:6.3f}x")
    finally:
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
