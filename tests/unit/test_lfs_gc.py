"""The Git LFS objects' sweep of ``spaces gc`` (spaces.services.collect.collect_lfs) on a real store: an object no
referenced sha256 names goes once older than the grace period; a referenced one, a young one (an upload in
progress, its commit still to come) and one a client was just told is already there stay; nothing is collected
while a backup holds the store, and a client's check waits for a collection under way."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from spaces.errors import BadRequest
from spaces.services.collect import LfsCollected, collect_lfs
from spaces.services.objects import XetBackedObjects
from spaces.storage.objects import LocalObjectStore, put
from spaces.xet.store import XetStore

HOUR = 3600.0


@pytest.fixture
def objects(tmp_path: Path) -> XetBackedObjects:
    return XetBackedObjects(tmp_path / "lfs", XetStore(tmp_path / "xet"))


def store_one(objects: XetBackedObjects, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    assert put(objects, oid, len(data), [data])
    return oid


def age(store: LocalObjectStore, oid: str, hours: float = 2.0) -> None:
    t = time.time() - hours * HOUR
    os.utime(store.path(oid), (t, t))


def sweep(objects: XetBackedObjects, referenced: set[str], grace_s: float = HOUR, **kw) -> LfsCollected:  # noqa: ANN003
    with objects.xet.collecting():
        return collect_lfs(objects.local, referenced, time.time() - grace_s, **kw)


def test_unreferenced_old_objects_go_and_referenced_or_young_ones_stay(objects: XetBackedObjects) -> None:
    local = objects.local
    kept, gone, young = (store_one(objects, os.urandom(n)) for n in (1000, 3000, 500))
    age(local, kept)
    age(local, gone)
    spool = local.root / "tmp" / f"{young}.partial"  # a spool file is not an object: the hub sweeps those
    spool.write_bytes(b"x")
    age_all = time.time() - 2 * HOUR
    os.utime(spool, (age_all, age_all))

    said = sweep(objects, {kept}, dry_run=True)
    assert (said.objects, said.object_bytes, said.kept) == (1, 3000, 2)
    assert all(local.exists(o) for o in (kept, gone, young))  # a dry run removes nothing

    done = sweep(objects, {kept})
    assert (done.objects, done.object_bytes, done.kept) == (1, 3000, 2)
    assert local.exists(kept) and local.exists(young) and not local.exists(gone) and spool.exists()
    assert local.path(gone).parent.is_dir()  # the fan-out directories stay (a concurrent upload renames into them)

    age(local, young)
    assert sweep(objects, {kept}).objects == 1 and not local.exists(young) and local.exists(kept)


def test_an_object_a_client_is_told_is_there_is_kept_by_a_collection_that_read_the_repos_before(
        objects: XetBackedObjects) -> None:
    """The batch API and the hub's commit path answer "already there" from ``size``: the client then commits
    without uploading, so the check makes the object young; a collection whose roots were read before that
    commit keeps it. Sending the bytes of an existing object again (verified, not rewritten) does the same."""
    data = os.urandom(2000)
    oid = store_one(objects, data)
    age(objects.local, oid)
    assert objects.size(oid) == len(data)  # lfs batch: linked and the same size -> no upload action
    assert sweep(objects, set()).objects == 0
    assert b"".join(objects.open(oid)) == data

    age(objects.local, oid)
    assert objects.exists(oid)  # the backup's and the commit paths' check
    assert sweep(objects, set()).objects == 0

    age(objects.local, oid)
    assert not put(objects, oid, len(data), [data])  # uploaded again: verified, kept, young
    assert sweep(objects, set()).objects == 0

    age(objects.local, oid)
    assert sweep(objects, set()).objects == 1 and objects.size(oid) is None  # named by nothing, old: it goes


def test_an_upload_of_an_object_collected_meanwhile_is_refused_not_acknowledged(objects: XetBackedObjects) -> None:
    data = os.urandom(1500)
    oid = store_one(objects, data)
    w = objects.writer(oid, len(data))  # exists: only verified, no spool
    w.write(data)
    age(objects.local, oid)  # an upload longer than the grace period
    assert sweep(objects, set()).objects == 1
    with pytest.raises(BadRequest, match="removed while it was being sent"):
        w.commit()
    assert put(objects, oid, len(data), [data]) and b"".join(objects.open(oid)) == data  # sent again: stored


def test_the_collector_waits_for_a_backup_and_a_check_waits_for_the_collector(objects: XetBackedObjects) -> None:
    oid = store_one(objects, os.urandom(700))
    age(objects.local, oid)
    result: list[LfsCollected] = []
    with objects.xet.pinned():  # a backup copying objects
        worker = threading.Thread(target=lambda: result.append(sweep(objects, set())))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and objects.local.exists(oid)
    worker.join(30)
    assert result[0].objects == 1

    oid = store_one(objects, os.urandom(800))
    age(objects.local, oid)
    sizes: list[int | None] = []
    with objects.xet.collecting():  # a collection under way: the client's check waits for its end
        worker = threading.Thread(target=lambda: sizes.append(objects.size(oid)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()
        collect_lfs(objects.local, set(), time.time() - HOUR)
    worker.join(30)
    assert sizes == [None]  # it was gone by then: the client is told to upload it


def test_an_upload_waits_for_a_collection_under_way_before_it_publishes(objects: XetBackedObjects) -> None:
    """A new object is renamed into place under ``pinned``: an equal upload that started before the old copy was
    stored never lands between the collector's look at the old copy and its removal."""
    data = os.urandom(900)
    oid = hashlib.sha256(data).hexdigest()
    w = objects.writer(oid, len(data))  # started while the object was absent: it spools
    w.write(data)
    store_one(objects, data)  # an equal upload stores it meanwhile; it becomes old and unreferenced
    age(objects.local, oid)
    done: list[bool] = []
    with objects.xet.collecting():
        worker = threading.Thread(target=lambda: done.append(w.commit()))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # the publish waits for the collection
        assert collect_lfs(objects.local, set(), time.time() - HOUR).objects == 1
    worker.join(30)
    assert done == [True] and b"".join(objects.open(oid)) == data  # acknowledged and there
