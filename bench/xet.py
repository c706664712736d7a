"""Xet uploads and downloads (not a test): the real default client (hf_xet, as huggingface_hub drives it) against
our hub, and curl against nginx accepting (WebDAV PUT) and serving (sendfile) the same bytes, in one run.

Reports: upload and download throughput and their ratios to nginx (goals: download >= 0.5x, upload >= 0.3x, the
Xet upload including the client's chunking and hashing, and the hub's verification of the xorbs and of the
file's sha256, read back from them); the bytes the hub received for a re-upload with 1% of the file changed in ten places
(goal <= 5% of the file; ``spaces_xet_received_bytes_total``); the hub process's peak RSS while a file uploads
(goal <= 256 MiB; sampled every 20 ms from /proc). Both downloads write their file to the same disk; the GET to
/dev/null is printed too, to show what writing the file costs.

    .venv/bin/python bench/xet.py              # 1024 MB, SQLite
    .venv/bin/python bench/xet.py --mb 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

_HF_HOME = tempfile.mkdtemp(prefix="spaces-bench-hf-home-")
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_XET_CACHE=str(Path(_HF_HOME) / "xet"))

import hf_xet  # noqa: E402
import httpx  # noqa: E402
from harness import start_server  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402
from huggingface_hub.utils._xet import get_xet_session  # noqa: E402
from proxy import bench_processes, free_port, nginx_conf, start, wait_port  # noqa: E402

METRICS_TOKEN = "bench-metrics-token"


def rss_tree(pid: int) -> int:
    """Resident bytes of a process and its children."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m[1]) * 1024 if m else 0
        except OSError:
            pass
    return total


def cpu_tree(pid: int) -> float:
    """CPU seconds (user + system) a process and its children have used so far: on a shared machine the
    work done is steadier than the wall time."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (the 14th and 15th fields)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_tree(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def received(url: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
    return sum(float(m[1]) for m in re.finditer(r'^spaces_xet_received_bytes_total\{[^}]*\} (\S+)', text, re.M))


def xet_upload(url: str, token: str, repo_id: str, path: Path):  # noqa: ANN201
    headers = {"authorization": f"Bearer {token}"}
    with get_xet_session().new_upload_commit(token_refresh_url=f"{url}/api/models/{repo_id}/xet-write-token/main",
                                             token_refresh_headers=headers) as commit:
        handle = commit.start_upload_file(str(path), sha256=hf_xet.COMPUTE_SHA256)
    return handle.result().xet_info


def xet_download(url: str, token: str, repo_id: str, info, dest: Path) -> None:  # noqa: ANN001
    headers = {"authorization": f"Bearer {token}"}
    refresh = f"{url}/api/models/{repo_id}/xet-read-token/main"
    tok = httpx.get(refresh, headers=headers).json()
    with get_xet_session().new_file_download_group(
            endpoint=tok["casUrl"], token=tok["accessToken"], token_expiry_unix_secs=tok["exp"],
            token_refresh_url=refresh, token_refresh_headers=headers) as group:
        group.start_download_file(hf_xet.XetFileInfo(info.hash, info.file_size), str(dest))


def commit(url: str, token: str, repo_id: str, path: str, oid: str, size: int) -> None:
    """Commit an object uploaded through Xet by its sha256 (what huggingface_hub sends after the upload)."""
    lines = [{"key": "header", "value": {"summary": "bench", "description": ""}},
             {"key": "lfsFile", "value": {"path": path, "algo": "sha256", "oid": oid, "size": size}}]
    r = httpx.post(f"{url}/api/models/{repo_id}/commit/main", content="".join(json.dumps(x) + "\n" for x in lines),
                   headers={"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"})
    r.raise_for_status()


def write_random(path: Path, mb: int) -> None:
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))


@dataclass
class Run:
    """One of each transfer, on one file: seconds, (client, hub) CPU seconds."""

    ng_up: float
    ng_null: float
    ng_down: float
    up: float
    down: float
    cpu_up: tuple[float, float]
    cpu_down: tuple[float, float]
    received: float
    peak_rss: int
    info: object


def one_run(server, token: str, repo_id: str, blob: Path, port: int, work: Path) -> Run:  # noqa: ANN001
    ng_up = curl("-T", str(blob), f"http://127.0.0.1:{port}/up/model.bin")
    ng_null = curl(f"http://127.0.0.1:{port}/model.bin")
    # the reference for the Xet download writes its file to the same disk (hf_xet cannot write to /dev/null)
    ng_out = work / "nginx-out.bin"
    ng_down = curl(f"http://127.0.0.1:{port}/model.bin", out=str(ng_out))
    ng_out.unlink()
    before = received(server.url)
    with PeakRss(server.proc.pid) as rss:
        t0, c0, h0 = time.perf_counter(), time.process_time(), cpu_tree(server.proc.pid)
        info = xet_upload(server.url, token, repo_id, blob)
        up = time.perf_counter() - t0
        cpu_up = (time.process_time() - c0, cpu_tree(server.proc.pid) - h0)
    got = received(server.url) - before
    out = work / "out.bin"
    t0, c0, h0 = time.perf_counter(), time.process_time(), cpu_tree(server.proc.pid)
    xet_download(server.url, token, repo_id, info, out)
    down = time.perf_counter() - t0
    cpu_down = (time.process_time() - c0, cpu_tree(server.proc.pid) - h0)
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    assert digest.hexdigest() == info.sha256, "corrupt download"
    out.unlink()
    return Run(ng_up, ng_null, ng_down, up, down, cpu_up, cpu_down, got, rss.peak, info)


def curl(*args: str, out: str = "/dev/null") -> float:
    took = subprocess.run(["curl", "-sf", "-o", out, "-w", "%{time_total}", *args], check=True,
                          capture_output=True, text=True, timeout=600).stdout
    return float(took)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3, help="interleaved runs of each transfer (medians reported)")
    args = ap.parse_args()
    if not 1 <= args.mb <= 4096 or not 1 <= args.runs <= 9:
        ap.error("--mb must be 1..4096, --runs 1..9")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    size = args.mb << 20
    server = start_server("sqlite", extra_env={"SPACES_METRICS_TOKEN": METRICS_TOKEN})
    try:
        with bench_processes("spaces-bench-xet-") as (work, procs):
            token = server.token("bench-user")
            repo_id = "bench-user/weights"
            HfApi(endpoint=server.url, token=token).create_repo(repo_id)
            www = work / "www"
            (www / "up").mkdir(parents=True)
            blob = www / "model.bin"
            write_random(blob, args.mb)
            # nginx's workers run as nobody: they write the PUT (and their body temp files) into these folders
            for d in (work, www, www / "up"):
                d.chmod(0o777)
            blob.chmod(0o644)
            port = free_port()
            procs.append(start([nginx, "-c", str(nginx_conf(work, f"""server {{ listen 127.0.0.1:{port}; root {www};
  sendfile on; client_max_body_size 0; location /up/ {{ dav_methods PUT; }} }}""", "1"))]))
            wait_port(port)

            # interleaved runs, each with fresh bytes (the same file again would be deduplicated away): both sides
            # meet the same page cache (on this VM a write into fresh page-cache memory varies 2x from run to run)
            runs: list[Run] = []
            for i in range(args.runs):
                if i:
                    write_random(blob, args.mb)
                runs.append(one_run(server, token, repo_id, blob, port, work))
            info = runs[-1].info
            # a reader without Xet (git-lfs, curl, a client without hf_xet): the committed file through /resolve,
            # whose bytes the hub reads back from the xorbs (nothing else stores them)
            commit(server.url, token, repo_id, "model.bin", info.sha256, size)
            t_plain = curl("-H", f"authorization: Bearer {token}", f"{server.url}/{repo_id}/resolve/main/model.bin")

            with open(blob, "r+b") as f:  # 1% of the file, in ten places
                for i in range(10):
                    f.seek(i * size // 10 + 4321)
                    f.write(os.urandom(size // 1000))
            before = received(server.url)
            t0 = time.perf_counter()
            xet_upload(server.url, token, repo_id, blob)
            t_re = time.perf_counter() - t0
            re_bytes = received(server.url) - before

            mbps = lambda t: args.mb / t  # noqa: E731
            med = {k: statistics.median(getattr(r, k) for r in runs) for k in
                   ("up", "ng_up", "down", "ng_down", "ng_null")}
            print(f"\n{args.mb} MB random file, loopback, {os.cpu_count()} cores, SQLite, median of {len(runs)} "
                  "interleaved runs (each run's figure in brackets)\n")
            for label, k in (("Xet upload (hf_xet -> hub)     ", "up"), ("PUT to nginx (curl)            ", "ng_up"),
                             ("Xet download (hub -> hf_xet)   ", "down"), ("GET from nginx (curl) to a file", "ng_down"),
                             ("GET from nginx to /dev/null    ", "ng_null")):
                each = ", ".join(f"{mbps(getattr(r, k)):.0f}" for r in runs)
                print(f"  {label} {mbps(med[k]):7.0f} MB/s  ({med[k]:.1f} s)  [{each}]")
            print(f"  GET /resolve (no Xet, read back from the xorbs) to /dev/null "
                  f"{mbps(t_plain):5.0f} MB/s  ({t_plain:.1f} s): {med['ng_null'] / t_plain:.2f}x nginx")
            cpu = {k: [statistics.median(getattr(r, k)[side] for r in runs) for side in (0, 1)]
                   for k in ("cpu_up", "cpu_down")}
            print(f"  CPU seconds, upload:   client (hf_xet) {cpu['cpu_up'][0]:.1f}, hub {cpu['cpu_up'][1]:.1f}")
            print(f"  CPU seconds, download: client (hf_xet) {cpu['cpu_down'][0]:.1f}, hub {cpu['cpu_down'][1]:.1f}")
            print(f"  first upload: hub received {runs[0].received / 2**20:.0f} MiB")
            print(f"  1%-changed re-upload: hub received {re_bytes / 2**20:.1f} MiB = {100 * re_bytes / size:.2f}% "
                  f"of the file (goal <= 5%), in {t_re:.1f} s")
            print(f"  hub peak RSS during an upload: {max(r.peak_rss for r in runs) / 2**20:.0f} MiB (goal <= 256 MiB) "
                  f"[{', '.join(f'{r.peak_rss / 2**20:.0f}' for r in runs)}]")
            ratios = [(r.ng_up / r.up, r.ng_down / r.down) for r in runs]
            print(f"\nratios to nginx (medians): upload {med['ng_up'] / med['up']:.2f}x (goal >= 0.3x), download "
                  f"{med['ng_down'] / med['down']:.2f}x (goal >= 0.5x); per run: "
                  + ", ".join(f"{u:.2f}x/{d:.2f}x" for u, d in ratios))
    finally:
        server.stop()
        shutil.rmtree(_HF_HOME, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
