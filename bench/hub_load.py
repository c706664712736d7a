"""Hub load check (not a test): many real ``huggingface_hub`` clients against one live server on loopback.

Starts ``spaces serve`` (the same harness the end-to-end tests use), creates a Space with a few files, then runs
N client threads, each looping ``HfApi.space_info`` + ``hf_hub_download`` (fresh cache dir per call, so every
download really transfers the file) for a fixed time, and prints requests/s and p50/p99 latency per call type.

    .venv/bin/python bench/hub_load.py                    # 50 clients, 20 s, SQLite
    .venv/bin/python bench/hub_load.py --clients 20 --seconds 10 --database postgres
    .venv/bin/python bench/hub_load.py --url http://127.0.0.1:8000 --token T   # against a running server

Bounded: at most --seconds of load (plus setup) and --max-requests calls in total; loopback only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

_HF_HOME = tempfile.mkdtemp(prefix="spaces-bench-hf-home-")
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_IMPLICIT_TOKEN="1")

from benchstats import percentile  # noqa: E402
from harness import start_server  # noqa: E402
from huggingface_hub import CommitOperationAdd, HfApi  # noqa: E402
from huggingface_hub.utils import logging as hf_logging  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-requests", type=int, default=200_000, help="hard cap on calls across all clients")
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--file-kb", type=int, default=64, help="size of the downloaded file")
    ap.add_argument("--url", help="use a running server instead of starting one (loopback only)")
    ap.add_argument("--token", help="write token for --url")
    args = ap.parse_args()
    if args.clients < 1 or args.clients > 500 or args.seconds <= 0 or args.seconds > 600:
        ap.error("--clients must be 1..500 and --seconds 0..600")
    hf_logging.set_verbosity_error()

    server = None
    if args.url:
        if not any(h in args.url for h in ("://127.0.0.1", "://localhost", "://[::1]")):
            ap.error("--url must be a loopback address")
        if not args.token:
            ap.error("--url needs --token")
        url, token = args.url.rstrip("/"), args.token
    else:
        print(f"starting spaces serve ({args.database}) ...", flush=True)
        server = start_server(args.database)
        url, token = server.url, server.token("bench-user")
    try:
        return run(url, token, args)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(_HF_HOME, ignore_errors=True)


def run(url: str, token: str, args: argparse.Namespace) -> int:
    api = HfApi(endpoint=url, token=token)
    user = api.whoami()["name"]
    repo_id = f"{user}/bench-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=False)
    payload = os.urandom(args.file_kb * 1024)
    api.create_commit(
        repo_id,
        repo_type="space",
        commit_message="bench files",
        operations=[
            CommitOperationAdd("app.py", b"print('bench')\n"),
            CommitOperationAdd("data/payload.bin", payload),
            CommitOperationAdd("data/notes.txt", b"notes\n" * 100),
        ],
    )

    lat: dict[str, list[float]] = {"space_info": [], "hf_hub_download": []}
    errors: dict[str, list[str]] = {"space_info": [], "hf_hub_download": []}
    lock = threading.Lock()
    budget = [args.max_requests]
    stop_at = [0.0]
    start_barrier = threading.Barrier(args.clients + 1)
    scratch = Path(tempfile.mkdtemp(prefix="spaces-bench-dl-"))

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def client(i: int) -> None:
        c = HfApi(endpoint=url, token=token)
        n = 0
        start_barrier.wait()
        while time.monotonic() < stop_at[0] and take():
            t0 = time.perf_counter()
            try:
                info = c.space_info(repo_id)
                assert info.sha
                ok = True
            except Exception as e:  # noqa: BLE001
                ok = False
                with lock:
                    errors["space_info"].append(repr(e)[:200])
            dt = time.perf_counter() - t0
            if ok:
                with lock:
                    lat["space_info"].append(dt)
            if time.monotonic() >= stop_at[0] or not take():
                break
            cache = scratch / f"c{i}-{n}"
            n += 1
            t0 = time.perf_counter()
            try:
                p = c.hf_hub_download(repo_id, "data/payload.bin", repo_type="space", cache_dir=cache)
                assert os.path.getsize(p) == len(payload)
                ok = True
            except Exception as e:  # noqa: BLE001
                ok = False
                with lock:
                    errors["hf_hub_download"].append(repr(e)[:200])
            dt = time.perf_counter() - t0
            shutil.rmtree(cache, ignore_errors=True)
            if ok:
                with lock:
                    lat["hf_hub_download"].append(dt)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    print(f"{args.clients} clients, {args.seconds:g}s, space {repo_id}, file {args.file_kb} KiB ...", flush=True)
    stop_at[0] = time.monotonic() + args.seconds
    t_start = time.monotonic()
    start_barrier.wait()
    for t in threads:
        t.join(args.seconds + 120)
    elapsed = time.monotonic() - t_start
    shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(f"{'call':<18}{'ok':>8}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    print("-" * 74)
    for name, values in lat.items():
        print(
            f"{name:<18}{len(values):>8}{len(errors[name]):>8}{len(values) / elapsed:>10.1f}"
            f"{percentile(values, 50) * 1000:>10.1f}{percentile(values, 99) * 1000:>10.1f}"
            f"{(max(values) if values else float('nan')) * 1000:>10.1f}"
        )
    total = sum(len(v) for v in lat.values())
    print("-" * 74)
    print(f"{'total':<18}{total:>8}{sum(len(e) for e in errors.values()):>8}{total / elapsed:>10.1f}"
          f"   (elapsed {elapsed:.1f}s; each hf_hub_download is a HEAD + GET)")
    if lat["hf_hub_download"]:
        print(f"mean download latency {statistics.mean(lat['hf_hub_download']) * 1000:.1f} ms")
    for name, errs in errors.items():
        if errs:
            print(f"first {name} errors: {errs[:3]}")
    return 1 if any(errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
