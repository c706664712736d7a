"""Issue 20, row 3: write endpoints authenticate before they read a body, bodies are read as streams, and a
commit is decoded as it arrives (against a live ``spaces serve``, through its proxy).

"Refused before reading" is shown the only way a client can see it: the request head declares a body and the
client sends none of it (or keeps sending it): the answer comes anyway, and the server's memory stays put.
"""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import threading
import time
from pathlib import Path

import pytest
from harness import running_server

MiB = 1 << 20


def write_calls(repo_id: str) -> list[tuple[str, str]]:
    """Every endpoint that takes a body and needs a caller with write access (or any caller)."""
    return [
        ("POST", f"/api/spaces/{repo_id}/commit/main"),
        ("POST", f"/api/spaces/{repo_id}/preupload/main"),
        ("POST", "/api/repos/create"),
        ("DELETE", "/api/repos/delete"),
        ("POST", "/api/repos/move"),
        ("PUT", f"/api/spaces/{repo_id}/settings"),
        ("POST", f"/api/spaces/{repo_id}/hardware"),
        ("POST", f"/api/spaces/{repo_id}/sleeptime"),
        ("POST", f"/api/spaces/{repo_id}/variables"),
        ("DELETE", f"/api/spaces/{repo_id}/variables"),
        ("POST", f"/api/spaces/{repo_id}/secrets"),
        ("DELETE", f"/api/spaces/{repo_id}/secrets"),
        ("POST", f"/api/spaces/{repo_id}/duplicate"),
        ("POST", f"/api/spaces/{repo_id}/super-squash/main"),
        ("POST", "/api/admin/quota/alice"),
        ("POST", f"/spaces/{repo_id}/git-receive-pack"),
    ]


def head_only(port: int, method: str, path: str, length: str | None, token: str | None = None,
              timeout: float = 20) -> int:
    """Send a request head that announces a body, send no body, and return the status of the answer."""
    framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\n"
            f"{framing}\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            got = sock.recv(4096)
            assert got, f"{method} {path}: closed without an answer"
            answer += got
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_anonymous_bodies_are_refused_before_a_byte_is_read(server, alice, make_space, framing: str) -> None:
    repo_id = make_space(alice, private=True)
    for method, path in write_calls(repo_id):
        # under each limit (so the size check cannot be what answers) yet never sent
        length = ("1000000" if framing == "length" else None)
        status = head_only(server.port, method, path, length)
        assert status == 401, (method, path, status)


def test_huge_declared_bodies_are_413_before_reading(server, alice, make_space) -> None:
    repo_id = make_space(alice)
    for method, path in write_calls(repo_id):
        if path.endswith("git-receive-pack"):
            continue  # a push's size is the repository's business; it is refused by auth above
        assert head_only(server.port, method, path, str(400 * MiB)) in (401, 413), (method, path)


def test_a_writer_without_access_is_refused_before_the_commit_is_read(server, alice, bob, alice_read,
                                                                      make_space) -> None:
    repo_id = make_space(alice, private=True)
    path = f"/api/spaces/{repo_id}/commit/main"
    assert head_only(server.port, "POST", path, "1000000", token=bob.token) == 404  # private: not found
    assert head_only(server.port, "POST", path, "1000000", token=alice_read.token) == 403
    assert head_only(server.port, "POST", path, "1000000", token="hf_not_a_token") == 401


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def stream_anonymous_commit(port: int, repo_id: str, total: int, out: list) -> None:
    """What a client uploading without a token does: send the whole body (chunked, so no size check can
    refuse it first) until the server answers; record the status and how much was sent."""
    piece = b"%x\r\n%s\r\n" % (256 * 1024, b"A" * 256 * 1024)
    start = b'{"key":"header","value":{"summary":"x"}}\n{"key":"file","value":{"content":"'
    head = (f"POST /api/spaces/{repo_id}/commit/main HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(start), start))
        sock.setblocking(False)
        view = memoryview(piece)
        deadline = time.monotonic() + 120
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                try:
                    answer = sock.recv(4096)
                except OSError:
                    answer = b""
                break
            if writable:
                try:
                    n = sock.send(view)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                sent += n
                view = view[n:] if n < len(view) else memoryview(piece)
        sock.setblocking(True)
        sock.settimeout(30)
        try:
            while answer and b"\r\n" not in answer:
                got = sock.recv(4096)
                if not got:
                    break
                answer += got
        except OSError:
            pass
    out.append((int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None, sent))


# ---- a commit larger than a line is decoded as it streams ----------------------------------------------
@pytest.fixture(scope="module")
def roomy_server():
    """A server with the default commit limit (512 MiB; the suite's servers take 1 MiB), so that a refusal
    can only come from authentication, and a file line can be longer than the decoder keeps in memory."""
    with running_server("sqlite", extra_env={"SPACES_LIMITS__MAX_COMMIT_BYTES": str(512 * MiB)}) as srv:
        yield srv


def test_four_huge_anonymous_uploads_leave_the_server_memory_alone(roomy_server) -> None:
    from huggingface_hub import HfApi

    token = roomy_server.token("owner", role="write", name="t")
    repo_id = "owner/target"
    HfApi(endpoint=roomy_server.url, token=token).create_repo(repo_id, repo_type="space", space_sdk="static")
    pid = roomy_server.proc.pid
    before = rss(pid)
    out: list = []
    threads = [threading.Thread(target=stream_anonymous_commit, args=(roomy_server.port, repo_id, 400 * MiB, out))
               for _ in range(4)]
    for t in threads:
        t.start()
    peak = before
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss(pid))
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert [status for status, _ in out] == [401] * 4, out
    assert all(sent < 400 * MiB for _, sent in out), "the server read a whole anonymous body"
    assert peak - before < 50 * MiB and rss(pid) - before < 50 * MiB, (before, peak, rss(pid))


def test_a_large_file_is_committed_through_the_streaming_decoder(roomy_server, tmp_path) -> None:
    from huggingface_hub import HfApi

    token = roomy_server.token("streamer", role="write", name="t")
    api = HfApi(endpoint=roomy_server.url, token=token)
    repo_id = "streamer/big"
    api.create_repo(repo_id, repo_type="space", space_sdk="static")
    data = hashlib.sha256(b"seed").digest() * (6 * MiB // 32) + b"tail"  # 6 MiB: a line of 8 MiB of base64
    small = base64.b64encode(b"<h1>hi</h1>")
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "index.html").write_bytes(base64.b64decode(small))
    api.upload_folder(folder_path=str(tmp_path), repo_id=repo_id, repo_type="space")
    got = Path(api.hf_hub_download(repo_id, "big.bin", repo_type="space", cache_dir=str(tmp_path / "cache")))
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    spool = roomy_server.data_dir / "tmp" / "uploads"
    assert not spool.exists() or not any(spool.iterdir()), "spooled contents were left behind"


# ---- the body budget ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tight_server():
    """A server whose body budget holds one commit (8 MiB) and lets a body wait 2 s for it."""
    env = {"SPACES_LIMITS__MAX_COMMIT_BYTES": str(64 * MiB), "SPACES_LIMITS__BODY_MEMORY": str(8 * MiB),
           "SPACES_LIMITS__BODY_WAIT": "2"}
    with running_server("sqlite", extra_env=env) as srv:
        yield srv


def test_a_body_over_the_budget_waits_then_gets_503_and_the_first_commit_lands(tight_server) -> None:
    from huggingface_hub import HfApi

    token = tight_server.token("busy", role="write", name="t")
    api = HfApi(endpoint=tight_server.url, token=token)
    repo_id = "busy/target"
    api.create_repo(repo_id, repo_type="space", space_sdk="static")
    head = (f"POST /api/spaces/{repo_id}/commit/main HTTP/1.1\r\nHost: 127.0.0.1:{tight_server.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n").encode()
    line = b'{"key":"header","value":{"summary":"first"}}\n'
    content = base64.b64encode(b"held the budget")
    rest = b'{"key":"file","value":{"content":"' + content + b'","path":"first.txt","encoding":"base64"}}\n'
    with socket.create_connection(("127.0.0.1", tight_server.port), timeout=30) as first:
        # the first commit (chunked: its size is unknown, so it takes a whole commit's share) starts its body
        # and pauses
        first.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(line), line))
        time.sleep(1)
        with socket.create_connection(("127.0.0.1", tight_server.port), timeout=30) as second:
            second.sendall(head + b"Content-Length: 200000\r\n\r\n" + b"x" * 1000)
            answer = second.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 2" in answer.lower(), answer[:300]
        first.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
        done = first.recv(65536)
    assert done.startswith(b"HTTP/1.1 200"), done[:300]
    assert api.list_repo_files(repo_id, repo_type="space").count("first.txt") == 1
