"""The Xet garbage collector on a real store (spaces.xet.gc): what no referenced sha256 reaches goes once older than
the grace period, the xorbs last and never one a kept file names; an upload in progress, or data a client reuses,
is young and stays; nothing is collected while a backup holds the store."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from spaces.storage.gitrepo import GitRepo
from spaces.xet import gc, hashing, service
from spaces.xet.store import XetStore
from unit.test_xet_core import _spool, _upload, make_shard, make_xorb

HOUR = 3600.0


@pytest.fixture
def store(tmp_path) -> XetStore:  # noqa: ANN001
    return XetStore(tmp_path / "xet")


def age(store: XetStore, hours: float = 2.0) -> None:
    """Everything in the store as if written ``hours`` ago."""
    t = time.time() - hours * HOUR
    for p in store.root.rglob("*"):
        os.utime(p, (t, t))


def register(store: XetStore, files: list[list[bytes]]) -> list[tuple[str, bytes]]:
    """One xorb holding every file's chunks, and a shard registering each file; (sha256, file hash) of each."""
    allc = [c for f in files for c in f]
    xh = _upload(store, allc)
    out, at = [], 0
    for chunks in files:
        sha = hashlib.sha256(b"".join(chunks)).hexdigest()
        body = make_shard([(allc, xh, [(at, at + len(chunks))])], [(xh, allc)], sha=hashing.from_hex(sha))
        rec = service.register_shard(store, body).files[0]
        store.link_sha256(sha, rec.hash)
        out.append((sha, rec.hash))
        at += len(chunks)
    return out


def xorbs(store: XetStore) -> set[str]:
    return {p.name for p in (store.root / "xorbs").rglob("*") if p.is_file() and not p.name.endswith(".idx")}


def test_unreferenced_data_goes_and_referenced_stays(store: XetStore) -> None:
    keep = [os.urandom(900 + i) for i in range(4)]
    shared_gone = [os.urandom(800 + i) for i in range(3)]  # in the same xorb as `keep`: the xorb stays
    gone = [os.urandom(700 + i) for i in range(5)]          # a xorb of its own: it goes
    (sk, fk), (ss, fs) = register(store, [keep, shared_gone])
    [(sg, fg)] = register(store, [gone])
    orphan = store.xorb_path(hashing.chunk_hash(b"crash"))  # a xorb whose index a crash never wrote
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"partial")
    (store.root / "tmp" / "cut-short").write_bytes(b"x")
    age(store)
    in_progress = _upload(store, [os.urandom(600)])  # its shard and commit are still to come
    assert len(xorbs(store)) == 4

    dry = gc.collect(store, {sk}, HOUR, dry_run=True)
    assert (dry.files, dry.links, dry.xorbs, dry.temporaries) == (2, 2, 2, 1) and len(xorbs(store)) == 4
    done = gc.collect(store, {sk}, HOUR)
    assert (done.files, done.links, done.xorbs, done.temporaries) == (2, 2, 2, 1) and done.dedupe >= 1
    assert done.xorb_bytes == dry.xorb_bytes > 0
    assert b"".join(service.read_file(store, store.get_file(fk))) == b"".join(keep)
    assert store.xet_hash_of(sk) == fk
    assert store.get_file(fs) is None and store.xet_hash_of(ss) is None
    assert store.get_file(fg) is None and store.xet_hash_of(sg) is None
    assert store.has_xorb(in_progress) and not orphan.exists()
    assert len(xorbs(store)) == 2 and not list((store.root / "tmp").iterdir())
    # the dedupe table names no removed xorb; the kept file's first chunk still dedupes
    for entry in (store.root / "dedupe").rglob("*"):
        assert entry.is_dir() or store.has_xorb(entry.read_bytes())
    service.dedupe_shard(store, hashing.chunk_hash(keep[0]))
    # a second run finds nothing more
    again = gc.collect(store, {sk}, HOUR)
    assert (again.files, again.links, again.xorbs, again.dedupe) == (0, 0, 0, 0)


def test_what_a_client_reuses_is_young_again(store: XetStore) -> None:
    chunks = [os.urandom(1000) for _ in range(3)]
    [(sha, fh)] = register(store, [chunks])
    lone = [os.urandom(500)]
    lone_xorb = _upload(store, lone)
    age(store)
    # the same xorb uploaded again, and a dedupe query answered from the file's xorb: both young again
    h, body = make_xorb(lone)
    assert service.upload_xorb(store, h, _spool(store, body), len(body)) is False
    [term] = store.get_file(fh).terms
    service.dedupe_shard(store, hashing.chunk_hash(chunks[0]))
    done = gc.collect(store, set(), HOUR)
    assert store.has_xorb(lone_xorb) and store.has_xorb(term[0])
    assert done.files == 1 and store.get_file(fh) is None  # the file itself was not reused: it goes
    # the client's shard names the kept xorb: the file comes back whole
    body = make_shard([(chunks, term[0], [(0, 3)])], [], sha=hashing.from_hex(sha))
    assert service.register_shard(store, body).new
    assert b"".join(service.read_file(store, store.get_file(fh))) == b"".join(chunks)
    # the same shard once more (a client's own shard cache names old xorbs without a dedupe query): young again
    age(store)
    assert not service.register_shard(store, body).new
    gc.collect(store, set(), HOUR)
    assert store.has_xorb(term[0]) and store.get_file(fh) is not None and not store.has_xorb(lone_xorb)


def test_nothing_is_collected_while_a_backup_holds_the_store(store: XetStore) -> None:
    register(store, [[os.urandom(1000)]])
    age(store)
    result: list[gc.Collected] = []
    with store.pinned():
        worker = threading.Thread(target=lambda: result.append(gc.collect(store, set(), HOUR)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and len(xorbs(store)) == 1
    worker.join(30)
    assert result[0].xorbs == 1 and not xorbs(store)


def test_referenced_lfs_oids_follow_refs_not_history_squashed_away(tmp_path) -> None:  # noqa: ANN001
    from spaces.storage.gitrepo import Addition

    repo = GitRepo.init_bare(tmp_path / "r.git")
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 5\n".format
    who = {"author_name": "t", "author_email": "t@x"}
    assert repo.referenced_lfs_oids() == set()  # no commit yet
    repo.commit(additions=[Addition("a.bin", pointer(a).encode()), Addition("b.bin", pointer(b).encode()),
                           Addition("notes.txt", b"oid sha256:" + b"d" * 64)], message="add", **who)
    repo.commit(deletions=["b.bin"], message="drop b", **who)
    assert repo.referenced_lfs_oids() == {a, b}  # b is still in the history
    repo.create_ref("refs/heads/side", repo.head())
    repo.commit(branch="side", additions=[Addition("c.bin", pointer(c).encode())], message="c", **who)
    repo.squash("main", message="squashed", **who)
    assert repo.referenced_lfs_oids() == {a, b, c}  # the branch side still reaches the old commits
    repo.delete_ref("refs/heads/side")
    assert repo.referenced_lfs_oids() == {a}


def test_the_hub_start_sweeps_old_spools_only(store: XetStore) -> None:
    (store.root / "tmp" / "cut-short").write_bytes(b"x")
    age(store)
    with store.spool() as f:  # an upload in progress
        f.write(b"y")
    assert gc.sweep_temporaries(store, HOUR) == 1
    assert [p.name for p in (store.root / "tmp").iterdir()] == [Path(f.name).name]


def test_a_commit_naming_an_unreferenced_file_keeps_it_from_a_collection_under_way(tmp_path: Path) -> None:
    """The xorbs are a Xet file's only copy: a commit that names an old, unreferenced file (deleted, squashed, then
    committed again without an upload) checks it through the object store, which makes it young again, so a
    collection that read the repositories before that commit does not remove it."""
    from spaces.services.objects import XetBackedObjects

    store = XetStore(tmp_path / "xet")
    chunks = [os.urandom(1000 + i) for i in range(3)]
    [(sha, _)] = register(store, [chunks])
    age(store)
    objects = XetBackedObjects(tmp_path / "lfs", store)
    referenced: set[str] = set()  # what the collector read from git before the commit landed
    assert objects.size(sha) == sum(map(len, chunks))  # the commit's check (spaces.storage.lfsfiles)
    gc.collect(store, referenced, grace_s=HOUR)
    assert b"".join(objects.open(sha)) == b"".join(chunks)
    age(store)
    gc.collect(store, referenced, grace_s=HOUR)  # named by nothing and old: now it goes
    assert not objects.exists(sha)
