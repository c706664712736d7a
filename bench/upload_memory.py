"""Server memory under concurrent large commit bodies: anonymous (refused before reading) vs with a write token.

Starts ``spaces serve`` (the end-to-end tests' harness), creates a Space, then sends ``--clients`` concurrent
NDJSON commits of ``--size`` MiB of file data each (huggingface_hub's wire format: one base64 ``file`` line)
to ``/api/spaces/{id}/commit/main``, streamed from a generator so the client holds none of it:

* anonymous: no token. The goal (issue 20) is under 50 MiB of server growth; before the fix four such bodies
  took the server from 105 MiB to 3.1 GiB;
* the reference: the same bodies with a valid write token, which the server must read, decode and commit.

Memory is the server process's peak RSS (VmHWM, reset through /proc/PID/clear_refs before each case, so root)
minus its RSS before the case, and the RSS it keeps 2 s after the case. ``--main DIR`` also runs the anonymous
case against the code in DIR (e.g. ``git worktree add /tmp/spaces-main main``) for the before/after figure.

    .venv/bin/python bench/upload_memory.py [--size 400] [--clients 4] [--skip-auth] [--main DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness import start_server  # noqa: E402

MiB = 1 << 20


def rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def body_parts(size: int, path: str) -> tuple[bytes, bytes, int, int]:
    """(before the content, after it, content length in base64 characters, total length)."""
    head = json.dumps({"key": "header", "value": {"summary": "bench upload", "description": ""}}).encode()
    before = head + b'\n{"key": "file", "value": {"content": "'
    after = b'", "path": "' + path.encode() + b'", "encoding": "base64"}}\n'
    b64_len = 4 * ((size + 2) // 3)
    return before, after, b64_len, len(before) + b64_len + len(after)


def send_commit(port: int, repo: str, size: int, token: str | None, result: list) -> None:
    """One commit over a raw socket: the head, then the body in 256 KiB pieces, stopping when the server has
    answered or closed; ``result`` gets (status or error, MiB sent)."""
    before, after, b64_len, total = body_parts(size, f"big-{threading.get_ident()}.bin")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST /api/spaces/{repo}/commit/main HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            f"Content-Type: application/x-ndjson\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n").encode()
    chunk = base64.b64encode(os.urandom(192 * 1024))  # 256 KiB of base64, repeated
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(600)
        try:
            sock.sendall(head + before)
            left = b64_len
            sock.setblocking(False)
            while left > 0:
                piece = chunk[:left] if left < len(chunk) else chunk
                if left == len(piece) and b64_len % 4:
                    piece = piece[:-(b64_len % 4)] + b"=" * (b64_len % 4)  # valid padding at the end
                view = memoryview(piece)
                while view:
                    try:
                        n = sock.send(view)
                        view = view[n:]
                        sent += n
                    except BlockingIOError:
                        try:
                            got = sock.recv(65536)
                        except BlockingIOError:
                            time.sleep(0.001)
                            continue
                        answer += got
                        raise _Answered() from None
                left -= len(piece)
            sock.setblocking(True)
            sock.sendall(after)
        except _Answered:
            pass
        except OSError as exc:
            result.append((f"send: {exc.__class__.__name__}", sent / MiB))
            return
        sock.setblocking(True)
        try:
            while b"\r\n" not in answer:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except OSError as exc:
            result.append((f"recv: {exc.__class__.__name__}", sent / MiB))
            return
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    result.append((status, sent / MiB))


class _Answered(Exception):
    pass


def run_case(server, repo: str, size: int, clients: int, token: str | None) -> dict:  # noqa: ANN001
    pid = server.proc.pid
    before = rss(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    results: list = []
    threads = [threading.Thread(target=send_commit, args=(server.port, repo, size * MiB, token, results))
               for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    time.sleep(2)
    return {"before": before, "peak": rss(pid, "VmHWM"), "after": rss(pid), "results": results, "s": elapsed}


def report(name: str, r: dict) -> None:
    statuses = ", ".join(f"{s} ({mib:.0f} MiB sent)" for s, mib in r["results"])
    print(f"{name:28} RSS before {r['before'] / MiB:7.1f} MiB  peak +{(r['peak'] - r['before']) / MiB:7.1f} MiB  "
          f"kept +{(r['after'] - r['before']) / MiB:7.1f} MiB  {r['s']:6.1f} s  [{statuses}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400, help="MiB of file data per commit")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--skip-auth", action="store_true", help="skip the reference with a token")
    parser.add_argument("--main", type=Path, help="a checkout of main: also run the anonymous case on it")
    args = parser.parse_args()
    cases = []
    limits = {"SPACES_LIMITS__MAX_COMMIT_BYTES": str(2 * args.size * MiB)}  # the tests' harness sets 1 MiB
    server = start_server("sqlite", extra_env=limits)
    try:
        token = server.token("bench", role="write", name="bench")
        from huggingface_hub import HfApi

        repo = "bench/memory"
        HfApi(endpoint=server.url, token=token).create_repo(repo, repo_type="space", space_sdk="static")
        cases.append(("anonymous", run_case(server, repo, args.size, args.clients, None)))
        if not args.skip_auth:
            cases.append(("write token (reference)", run_case(server, repo, args.size, args.clients, token)))
    finally:
        server.stop()
    if args.main is not None:
        env_path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = f"{args.main}{os.pathsep}{env_path}" if env_path else str(args.main)
        main_server = start_server("sqlite", extra_env=limits)
        try:
            token = main_server.token("bench", role="write", name="bench")
            from huggingface_hub import HfApi

            HfApi(endpoint=main_server.url, token=token).create_repo(repo, repo_type="space", space_sdk="static")
            cases.append(("anonymous, main", run_case(main_server, repo, args.size, args.clients, None)))
        finally:
            main_server.stop()
    print(f"\n{args.clients} concurrent commits of {args.size} MiB each (server process RSS; goal: anonymous "
          "growth < 50 MiB)\n")
    for name, r in cases:
        report(name, r)
    anon = cases[0][1]
    anon_growth = anon["peak"] - anon["before"]
    for name, r in cases[1:]:
        growth = r["peak"] - r["before"]
        print(f"  peak growth, anonymous: {anon_growth / MiB:.1f} MiB; {name}: {growth / MiB:.1f} MiB "
              f"(anonymous / that = {anon_growth / max(growth, 1):.4f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
