"""Model and dataset downloads (not a test): ``hf_hub_download`` of a big file from our hub against nginx serving
the same bytes from disk, in one run, interleaved rounds; the issue's goal is >= 0.5x nginx's throughput.

Starts ``spaces serve`` (the test harness), pushes one random file (``--mb``, default 100) to a model and a
dataset with git, writes the same bytes to a folder nginx serves (one worker, like our one process), then per
round: ``hf_hub_download`` from the model and from the dataset (a fresh cache each time, so every call transfers
the file and checks its ETag), a plain streamed GET (httpx) of the model's ``/resolve`` URL and the same GET from
nginx, then both again with curl (a client that is not the limit: the servers' own throughput). The ratios of
the first rows compare a Python client's downloads from us with the same client's from nginx.

    .venv/bin/python bench/model_download.py                 # 100 MB, 5 rounds, SQLite
    .venv/bin/python bench/model_download.py --mb 20 --rounds 3
    .venv/bin/python bench/model_download.py --lfs           # pushed with git-lfs: served from the object store
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

_HF_HOME = tempfile.mkdtemp(prefix="spaces-bench-hf-home-")
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_IMPLICIT_TOKEN="1")

import httpx  # noqa: E402
from harness import start_server  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402
from proxy import bench_processes, free_port, nginx_conf, start, wait_port  # noqa: E402


def push(url: str, token: str, prefix: str, repo_id: str, blob: Path, work: Path, lfs: bool = False) -> None:
    """The file as one git commit (the API's commit body is bounded; git is how big files arrive); ``lfs``: as
    git-lfs pushes it (a pointer in git, the bytes through the LFS batch API into the object store)."""
    host = url.split("://", 1)[1]
    clone = work / f"clone-{prefix.strip('/') or 'model'}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    subprocess.run(["git", "clone", "-q", f"http://u:{token}@{host}{prefix}/{repo_id}", str(clone)], check=True,
                   env=env)
    if lfs:
        subprocess.run(["git", "-C", str(clone), "lfs", "install", "--local"], check=True, env=env,
                       capture_output=True)
        subprocess.run(["git", "-C", str(clone), "lfs", "track", "*.bin"], check=True, env=env, capture_output=True)
    shutil.copy(blob, clone / "model.bin")
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "commit", "-qm", "weights"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "main"], check=True, env=env, timeout=600)
    shutil.rmtree(clone)


def timed_get(url: str, token: str | None = None) -> tuple[float, int]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    start_t, n = time.perf_counter(), 0
    with httpx.stream("GET", url, headers=headers, timeout=120) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 20):
            n += len(chunk)
    return time.perf_counter() - start_t, n


def timed_curl(url: str, token: str | None = None) -> float:
    """Seconds curl takes to fetch ``url`` to /dev/null: the server's side, with a client that is not the limit."""
    auth = ["-H", f"authorization: Bearer {token}"] if token else []
    out = subprocess.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{time_total}", *auth, url], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return float(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--lfs", action="store_true", help="push with git-lfs: downloads come from the object store")
    args = ap.parse_args()
    if not 1 <= args.mb <= 2000 or not 1 <= args.rounds <= 50:
        ap.error("--mb must be 1..2000 and --rounds 1..50")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    server = start_server(args.database)
    try:
        with bench_processes("spaces-bench-dl-") as (work, procs):
            token = server.token("bench-user")
            api = HfApi(endpoint=server.url, token=token)
            blob = work / "www" / "model.bin"
            blob.parent.mkdir()
            with open(blob, "wb") as f:
                for _ in range(args.mb):
                    f.write(os.urandom(1 << 20))
            digest = hashlib.sha256(blob.read_bytes()).hexdigest()
            repo_id = "bench-user/weights"
            for kind, prefix in (("model", ""), ("dataset", "/datasets")):
                api.create_repo(repo_id, repo_type=kind)
                push(server.url, token, prefix, repo_id, blob, work, lfs=args.lfs)
            if args.lfs:
                assert api.get_paths_info(repo_id, ["model.bin"])[0].lfs is not None, "not stored with LFS"
            port = free_port()
            procs.append(start([nginx, "-c", str(nginx_conf(
                work, f"server {{ listen 127.0.0.1:{port}; root {blob.parent}; sendfile on; }}", "1"))]))
            wait_port(port)

            times: dict[str, list[float]] = {k: [] for k in ("hf_hub_download model", "hf_hub_download dataset",
                                                             "GET /resolve (hub)", "GET from nginx",
                                                             "curl /resolve (hub)", "curl from nginx")}
            for r in range(args.rounds):
                for kind in ("model", "dataset"):
                    cache = work / f"cache-{kind}-{r}"
                    t0 = time.perf_counter()
                    path = api.hf_hub_download(repo_id, "model.bin", repo_type=kind, cache_dir=cache)
                    times[f"hf_hub_download {kind}"].append(time.perf_counter() - t0)
                    if r == 0:
                        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest, "corrupt download"
                    shutil.rmtree(cache)
                elapsed, n = timed_get(f"{server.url}/{repo_id}/resolve/main/model.bin", token)
                assert n == args.mb << 20
                times["GET /resolve (hub)"].append(elapsed)
                elapsed, n = timed_get(f"http://127.0.0.1:{port}/model.bin")
                assert n == args.mb << 20
                times["GET from nginx"].append(elapsed)
                times["curl /resolve (hub)"].append(
                    timed_curl(f"{server.url}/{repo_id}/resolve/main/model.bin", token))
                times["curl from nginx"].append(timed_curl(f"http://127.0.0.1:{port}/model.bin"))

            print(f"\n{args.mb} MB file ({'LFS object' if args.lfs else 'git blob'}), {args.rounds} interleaved "
                  f"rounds (medians), loopback, {os.cpu_count()} cores, {args.database}\n")
            rate = {k: args.mb / statistics.median(v) for k, v in times.items()}
            for k, v in rate.items():
                print(f"  {k:26s} {v:8.0f} MB/s   ({statistics.median(times[k]) * 1000:.0f} ms)")
            ng = rate["GET from nginx"]
            print(f"\nratios to nginx (goal >= 0.5x): hf_hub_download model {rate['hf_hub_download model'] / ng:.2f}x,"
                  f" dataset {rate['hf_hub_download dataset'] / ng:.2f}x, plain GET {rate['GET /resolve (hub)'] / ng:.2f}x;"
                  f" curl {rate['curl /resolve (hub)'] / rate['curl from nginx']:.2f}x curl from nginx")
    finally:
        server.stop()
        shutil.rmtree(_HF_HOME, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
