"""What an upload is answered for is on disk first: each stored file's bytes are fsynced before its rename, and its
directory after it (spaces.durable), for the Git LFS objects and for the Xet store alike. The order of the system
calls is what a crash test would find out the hard way, so it is what these tests record."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from spaces import durable
from spaces.storage.objects import LocalObjectStore, RepoObjects, put
from spaces.xet import service
from spaces.xet.store import FileRecord, XetStore
from unit.test_xet_core import make_xorb


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("rename", destination) in the order they happen."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:  # noqa: ANN001
        seen.append(("fsync?", str(src)))  # a marker: the source's fsync must come before this
        real_replace(src, dst)
        seen.append(("rename", str(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return seen


def assert_durable(calls: list[tuple[str, str]], dest: Path) -> int:
    """``dest`` was renamed into place after its bytes were fsynced, and its directory fsynced after that; the
    position of that directory fsync."""
    at = calls.index(("rename", str(dest)))
    src = calls[at - 1][1]
    assert ("fsync", src) in calls[:at - 1], f"{dest} renamed before its bytes were fsynced"
    after = [i for i, c in enumerate(calls) if i > at and c == ("fsync", str(dest.parent))]
    assert after, f"{dest}: its directory was not fsynced after the rename"
    return after[0]


def test_an_lfs_object_and_its_link_are_on_disk_when_put_returns(tmp_path, calls) -> None:  # noqa: ANN001
    store = LocalObjectStore(tmp_path / "objects")
    data = os.urandom(10_000)
    oid = hashlib.sha256(data).hexdigest()
    assert put(store, oid, len(data), [data])
    assert_durable(calls, store.path(oid))
    # the new ab/ and ab/cd/ directories are recorded in their parents too
    assert ("fsync", str(store.path(oid).parent.parent)) in calls and ("fsync", str(store.root)) in calls
    calls.clear()
    links = RepoObjects(tmp_path / "repo.git")
    links.link(oid)
    assert calls[-1] == ("fsync", str(links.dir / oid[:2])) and links.linked(oid)


def test_xorb_data_is_on_disk_before_its_index_says_it_is_whole(tmp_path, calls) -> None:  # noqa: ANN001
    store = XetStore(tmp_path / "xet")
    chunks = [os.urandom(5000) for _ in range(3)]
    h, body = make_xorb(chunks)
    with store.spool() as f:
        f.write(body)
    assert service.upload_xorb(store, h, f.name, len(body))
    data_dir_synced = assert_durable(calls, store.xorb_path(h))
    idx = store.xorb_path(h).with_name(store.xorb_path(h).name + ".idx")
    assert data_dir_synced < calls.index(("rename", str(idx)))
    assert_durable(calls, idx)

    calls.clear()
    rec = FileRecord(b"\1" * 32, 15000, "ab" * 32, [(h, 0, 3, 15000)])
    assert store.put_file(rec)
    assert_durable(calls, store._path("files", rec.hash, ".json"))
    calls.clear()
    store.link_sha256("ab" * 32, rec.hash)
    assert_durable(calls, tmp_path / "xet" / "sha256" / "ab" / ("ab" * 32))
    assert store.xet_hash_of("ab" * 32) == rec.hash


def test_a_crash_emptied_dedupe_entry_reads_as_none(tmp_path) -> None:  # noqa: ANN001
    store = XetStore(tmp_path / "xet")
    store.put_dedupe(b"\2" * 32, b"\3" * 32)
    assert store.get_dedupe(b"\2" * 32) == b"\3" * 32
    store._path("dedupe", b"\2" * 32).write_bytes(b"")  # what delayed allocation may leave of an unsynced file
    assert store.get_dedupe(b"\2" * 32) is None


def test_write_bytes_leaves_nothing_behind_on_failure(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    (tmp_path / "tmp").mkdir()

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        durable.write_bytes(tmp_path / "a" / "b", b"data", tmp_path / "tmp")
    assert not list((tmp_path / "tmp").iterdir()) and not (tmp_path / "a" / "b").exists()
