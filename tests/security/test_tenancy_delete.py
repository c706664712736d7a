"""Deletes leave nothing (issue 20, row 11): a deleted Space's working copies, home, logs, cgroups and repository
are gone and its uid is freed with nothing left owned by it; a push that dies half way leaves no temporary git
directory, whether git is killed (cleaned when the push ends) or the whole server is (cleaned at the next start).

Live: a real ``spaces serve`` with a real Gradio Space and raw git pushes (run under
``flock /tmp/spaces-live.lock``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import tenancy_kit as tk
from harness import make_actor

kit = tk.kit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root")


@pytest.fixture(scope="module")
def platform() -> Iterator[kit.Platform]:
    base = kit.new_base("spaces-tenancy-delete-")
    p = tk.start_default_platform(base, "data")
    yield p
    p.stop()
    shutil.rmtree(base, ignore_errors=True)


def owned_by(uid: int, *roots: Path) -> list[str]:
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    if os.lstat(path).st_uid == uid:
                        found.append(path)
                except OSError:
                    pass
    return found


def test_a_deleted_space_leaves_nothing(platform: kit.Platform) -> None:
    alice = make_actor(platform.server, "alice")
    sid, instance = kit.running_space(platform, alice, "alice/doomed", tk.probe_files("doomed"))
    uid, home = int(instance["uid"]), tk.home_of(platform, sid)
    work, repo = platform.data_dir / "work" / sid, platform.data_dir / "repos" / f"{sid}.git"
    groups = [d / platform.cgroup_root / instance["instance"] for d in Path("/sys/fs/cgroup").iterdir()]
    groups = [g for g in groups if g.is_dir()]
    uids_file = platform.data_dir / "local" / "state" / "uids.json"
    assert (home / "secret.txt").is_file() and work.is_dir() and repo.is_dir() and kit.instance_logs(platform, sid)
    assert groups and json.loads(uids_file.read_text())[sid] == uid
    assert owned_by(uid, platform.data_dir)

    alice.api.delete_repo("alice/doomed", repo_type="space")

    def gone() -> bool:
        return not (home.exists() or work.exists() or repo.exists() or kit.instance_logs(platform, sid)
                    or any(g.exists() for g in groups) or uid in [u for u, _ in platform.space_processes().values()])
    kit.wait_held(gone, timeout=60, what="the deleted Space's files, cgroups and processes to be gone")
    table = json.loads(uids_file.read_text())
    assert sid not in table and uid in table["~freed"]  # freed: handed out again only once no fresh uid is left
    assert owned_by(uid, platform.data_dir) == []  # a freed uid owns nothing of the platform's


def raw_push(platform: kit.Platform, token: str, repo_id: str, tmp: Path) -> socket.socket:
    """Start a push of a new branch whose pack (8 MiB of random data) is only half sent; the socket stays open."""
    src = tmp / "src"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    (src / "big.bin").write_bytes(os.urandom(8 << 20))
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "big.bin"], check=True)
    subprocess.run([*git, "commit", "-qm", "big"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    pack = subprocess.run([*git, "pack-objects", "--stdout", "--revs"], input=b"HEAD\n", capture_output=True,
                          check=True).stdout
    line = f"{'0' * 40} {sha} refs/heads/interrupted\0report-status\n".encode()
    body = b"%04x" % (len(line) + 4) + line + b"0000" + pack
    auth = base64.b64encode(f"x:{token}".encode()).decode()
    sock = socket.create_connection(("127.0.0.1", platform.port), timeout=30)
    sock.sendall((f"POST /spaces/{repo_id}/git-receive-pack HTTP/1.1\r\nHost: 127.0.0.1:{platform.port}\r\n"
                  f"Authorization: Basic {auth}\r\nContent-Type: application/x-git-receive-pack-request\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:len(body) // 2])
    return sock


def quarantines(repo: Path) -> list[Path]:
    return list((repo / "objects").glob("*incoming-*"))


def receive_packs(repo: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"receive-pack" in (entry / "cmdline").read_bytes() \
                    and os.path.realpath(entry / "cwd") == str(repo.resolve()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_push_whose_git_is_killed_leaves_no_temporary_dir(platform: kit.Platform, tmp_path: Path) -> None:
    bob = make_actor(platform.server, "bob")
    kit.create_space(bob.api, "bob/pushed", {"index.html": b"<p>hi</p>"}, sdk="static")
    repo = platform.data_dir / "repos" / f"{kit.space_id(bob, 'bob/pushed')}.git"
    sock = raw_push(platform, bob.token, "bob/pushed", tmp_path)
    try:
        kit.wait_for(lambda: quarantines(repo) and receive_packs(repo), what="the push to be half way")
        for pid in receive_packs(repo):  # what the OOM killer, or anyone's SIGKILL, does to it
            os.kill(pid, signal.SIGKILL)
        kit.wait_for(lambda: not receive_packs(repo), what="git to be gone")
        assert quarantines(repo)  # git could not clean up after itself
    finally:
        sock.close()  # the client gives up: the push is over
    kit.wait_held(lambda: not quarantines(repo), timeout=30, what="the dead push's quarantine to be removed")
    refs = subprocess.run(["git", "-C", str(repo), "for-each-ref"], capture_output=True, text=True).stdout
    assert "interrupted" not in refs


def test_a_push_cut_by_a_server_crash_is_cleaned_at_the_next_start(platform: kit.Platform, tmp_path: Path) -> None:
    carol = make_actor(platform.server, "carol")
    kit.create_space(carol.api, "carol/crashed", {"index.html": b"<p>hi</p>"}, sdk="static")
    repo = platform.data_dir / "repos" / f"{kit.space_id(carol, 'carol/crashed')}.git"
    sock = raw_push(platform, carol.token, "carol/crashed", tmp_path)
    try:
        kit.wait_for(lambda: quarantines(repo) and receive_packs(repo), what="the push to be half way")
        server = platform.server
        assert server.proc is not None
        os.killpg(server.proc.pid, signal.SIGKILL)  # the server and its git processes, all at once
        server.proc.wait(10)
    finally:
        sock.close()
    assert quarantines(repo)  # what the crash left
    platform.restart()
    assert quarantines(repo) == []
