"""``spaces backup DIR`` and ``spaces restore DIR``: a consistent copy of a live instance, and a fresh one made from it.

What a backup holds (``DIR`` is created 0700; everything in it is as secret as the database: Space secrets are in it)::

    manifest.json          format, time, database dialect, Alembic revision, row counts
    db/{table}.jsonl       every row of every table, one JSON object a line
    repos/{space id}.bundle  ``git bundle --all`` of each Space's repository (absent: the repository had no commit)
    repos/{type}s/{id}.bundle  the same for each model and dataset repository
    repos/{...}.lfs        the Git LFS objects the repository may read, one sha256 a line (absent: none)
    lfs/objects/ab/cd/{sha256}  each of those objects once (``spaces.storage.objects``)
    xet/                   for those objects that came through Xet: their file records, the xorbs these name and
                           the sha256 -> Xet hash links (``spaces.xet.store``'s layout; dedupe entries are rebuilt)
    buckets/{bucket id}/   each bucket's files (the app's ``/data``), file by file (absent: never mounted)
    secret_key             the key that signs cookies (when the instance keeps it in its data dir)

Consistency. The rows are read in one snapshot (SQLite: the online backup API copies the file first; PostgreSQL: one
REPEATABLE READ transaction), the repositories after it. A push that lands between the two is in a bundle but not in
the rows; the restore therefore points each Space's ``main`` at the commit its row names, so the copy is the
instance as it was at the snapshot (later commits stay in the repository, unreferenced). A Space deleted between the
two has no repository left: the backup fails, naming it, and is run again. Large files are copied after the
snapshot too: stored by content, they never change, and the Xet garbage collector (``spaces gc``) waits while a
backup runs, so what the snapshot's commits name is still there (what came after it is carried, unreferenced, and
collected on the restored instance). A file whose Xet data is incomplete is carried as its LFS object alone: the
restored hub serves it without Xet, as it serves a file uploaded through git-lfs. A bucket's files are copied after
the snapshot as well, from its filesystem (mounted for the copy when no Space has it mounted): one a running Space
writes meanwhile is carried as the copy found it, as a file copy of a live disk would (stop or pause the Space
first for a bucket that must be one moment's). Buckets on Kubernetes (a claim each) are not on this disk: not
carried.

Restore writes into an instance that has never served (an empty database, or one migrated but without accounts),
while it is not running. Rows are written at the backup's schema revision, then Alembic brings them to this
release's, so a backup of an older release restores into a newer one. What belonged to the old machine is not
carried over: running instances, built environments and images (``artifact``), open usage intervals (closed at
the snapshot). Each Space with a commit is queued for a build, so ``spaces serve`` brings it back as a push would.

Written here rather than with ``pg_dump``/``sqlite3 .dump``: those copy one database kind to itself; rows as JSON go
from SQLite to PostgreSQL and back (the usual way an instance outgrows one machine), and they must be read in the
same snapshot as the Spaces' shas the repositories are checked against.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Connection, DateTime, LargeBinary, MetaData, create_engine, insert, select, text

from spaces.db.session import alembic_config, make_engine, migrate
from spaces.errors import BadRequest, SpacesError
from spaces.storage._gitcmd import run_git
from spaces.storage.objects import LocalObjectStore, RepoObjects, objects_root, put
from spaces.runtime.volumes import BucketDisk
from spaces.xet import service as xet_service
from spaces.services.objects import object_store
from spaces.xet.store import XetStore, xet_root

FORMAT = 1
SKIP_TABLES = {"alembic_version"}


class BackupError(SpacesError):
    code = "BackupError"
    status = 500


# ---------------------------------------------------------------------------------------------------------------
# backup


def backup(db_url: str, repos: Path, data_dir: Path, dest: Path, *, signing_key_file: bool = True) -> dict:
    """Write a backup of the instance to ``dest`` (must not exist, or be an empty directory); return the manifest."""
    if dest.exists() and any(dest.iterdir()):
        raise BadRequest(f"{dest} is not empty: a backup goes into a new directory.")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    (dest / "db").mkdir(mode=0o700)
    (dest / "repos").mkdir(mode=0o700)
    taken = _now()
    xet = XetStore(xet_root(data_dir)) if xet_root(data_dir).is_dir() else None
    with xet.pinned() if xet is not None else nullcontext():  # nothing is collected until every object is copied
        with _snapshot(db_url) as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            counts, shas = _dump_rows(conn, dest / "db")
            dialect = conn.dialect.name
        for space_id, sha in shas.items():
            (dest / "repos" / space_id).parent.mkdir(mode=0o700, exist_ok=True)
            _bundle(repos / f"{space_id}.git", dest / "repos" / f"{space_id}.bundle", space_id, sha)
            oids = _save_objects(repos, repos / f"{space_id}.git", dest, space_id)
            if xet is not None:
                _save_xet(xet, dest, oids)
    _save_buckets(data_dir, dest)
    key = data_dir / "secret_key"
    if signing_key_file and key.is_file():
        _private_copy(key, dest / "secret_key")
    manifest = {"format": FORMAT, "created_at": taken.isoformat(), "database": dialect, "revision": revision,
                "tables": counts}
    _write_private(dest / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


@contextmanager
def _snapshot(db_url: str) -> Iterator[Connection]:
    if db_url.startswith("sqlite"):
        path = db_url.split("///", 1)[-1]
        if not Path(path).is_file():
            raise BadRequest(f"No database at {path}: is this the instance's data dir?")
        with tempfile.TemporaryDirectory(prefix="spaces-backup-") as tmp:
            copy = Path(tmp) / "snapshot.db"
            source, target = sqlite3.connect(path, timeout=30), sqlite3.connect(copy)
            try:
                source.backup(target)  # the online backup API: one consistent copy while writers go on
            finally:
                source.close()
                target.close()
            engine = create_engine(f"sqlite:///{copy}")
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                engine.dispose()
        return
    engine = make_engine(db_url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
            yield conn
    finally:
        engine.dispose()


def _dump_rows(conn: Connection, out: Path) -> tuple[dict[str, int], dict[str, str | None]]:
    meta = MetaData()
    meta.reflect(conn)
    counts: dict[str, int] = {}
    shas: dict[str, str | None] = {}
    for table in meta.sorted_tables:
        if table.name in SKIP_TABLES:
            continue
        n = 0
        with open(out / f"{table.name}.jsonl", "w", encoding="utf-8", opener=_private_opener) as f:
            for row in conn.execute(select(table)).mappings():
                f.write(json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
                if table.name == "spaces":
                    shas[row["id"]] = row["sha"]
                elif table.name == "repos":  # models and datasets live in repos/{type}s/
                    shas[f"{row['repo_type']}s/{row['id']}"] = row["sha"]
                n += 1
        counts[table.name] = n
    return counts, shas


def _encode(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _bundle(repo: Path, out: Path, space_id: str, sha: str | None) -> None:
    if not repo.is_dir():
        raise BackupError(f"The repository of Space {space_id} is gone (deleted during the backup?): run it again.")
    refs = _git(repo, "for-each-ref", "--format=%(refname)").split()
    if not refs:
        return  # created, never committed to
    _git(repo, "bundle", "create", str(out), "--all")
    os.chmod(out, 0o600)
    if sha and _git(repo, "cat-file", "-t", sha, check=False).strip() != "commit":
        raise BackupError(f"Space {space_id} records commit {sha}, which its repository lacks; run `git fsck` there.")


def _save_objects(repos: Path, repo: Path, dest: Path, space_id: str) -> list[str]:
    """The repository's LFS links as a list, and each object it names into the backup once (copied: a backup
    outlives the disk it was taken from); the objects' sha256s."""
    oids = RepoObjects(repo).oids()
    if not oids:
        return []
    store, saved = object_store(repos), LocalObjectStore(dest / "lfs" / "objects")
    for oid in oids:
        if saved.exists(oid) or not store.exists(oid):
            continue
        saved.path(oid).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if store.local.exists(oid):
            shutil.copyfile(store.local.path(oid), saved.path(oid))
        else:  # uploaded through Xet: its bytes rebuilt from the xorbs (and checked again on the way)
            put(saved, oid, store.size(oid), store.open(oid))
    _write_private(dest / "repos" / f"{space_id}.lfs", "".join(f"{oid}\n" for oid in oids))
    return oids


def _save_xet(xet: XetStore, dest: Path, oids: list[str]) -> None:
    """The Xet file of each LFS object that came through Xet, and every xorb it names, into the backup once."""
    saved = None
    for oid in oids:
        h = xet.xet_hash_of(oid)
        rec = xet.get_file(h) if h is not None else None
        if rec is None or rec.sha256 != oid:
            continue  # uploaded through git-lfs or as a regular file, or not whole: the LFS object alone
        xorbs = list(dict.fromkeys(t[0] for t in rec.terms))
        indexes = [xet.xorb_index(x) for x in xorbs]
        if None in indexes:
            continue
        if saved is None:
            (dest / "xet").mkdir(mode=0o700, exist_ok=True)
            saved = XetStore(dest / "xet")
        if saved.get_file(h) is None:
            for x, idx in zip(xorbs, indexes):
                if not saved.has_xorb(x):
                    saved.put_xorb(_spool_copy(saved, xet.xorb_path(x)), idx)
            saved.put_file(rec)
        saved.link_sha256(oid, h)


def _buckets(db_dir: Path) -> dict[str, int]:
    """Bucket id -> size in MB, from the rows of a backup."""
    rows = db_dir / "buckets.jsonl"
    if not rows.is_file():
        return {}
    out = {}
    for line in rows.read_text().splitlines():
        row = json.loads(line)
        out[row["id"]] = int(row["size_mb"])
    return out


def _save_buckets(data_dir: Path, dest: Path) -> None:
    for bucket_id, size_mb in _buckets(dest / "db").items():
        disk = BucketDisk(data_dir / "buckets" / bucket_id)
        if not disk.image.exists():
            continue  # never mounted: nothing written
        was_mounted = disk.mounted()
        files = disk.ensure(size_mb)
        try:
            shutil.copytree(files, dest / "buckets" / bucket_id, symlinks=True)
        finally:
            if not was_mounted:
                disk.release()


def _load_buckets(src: Path, data_dir: Path) -> None:
    sizes = _buckets(src / "db")
    saved = src / "buckets"
    for entry in sorted(saved.iterdir()) if saved.is_dir() else ():
        if entry.name not in sizes:
            raise BadRequest(f"The backup holds files of a bucket it has no row for: {entry.name}.")
        disk = BucketDisk(data_dir / "buckets" / entry.name)
        files = disk.ensure(sizes[entry.name])
        try:
            shutil.copytree(entry, files, symlinks=True, dirs_exist_ok=True)
        finally:
            disk.release()


def _spool_copy(store: XetStore, path: Path) -> str:
    """A copy of ``path`` in ``store``'s spool, for its ``put_xorb`` (or ``service.upload_xorb``) to move in."""
    with store.spool() as spool, open(path, "rb") as f:
        shutil.copyfileobj(f, spool, 1 << 20)
    return spool.name


# ---------------------------------------------------------------------------------------------------------------
# restore


def restore(db_url: str, repos: Path, data_dir: Path, src: Path) -> dict:
    """Fill a fresh instance from the backup in ``src``; return its manifest."""
    manifest = _read_manifest(src)
    engine = make_engine(db_url)
    try:
        _check_fresh(engine, manifest["revision"])
        with engine.begin() as conn:
            _migrate_to(conn, db_url, manifest["revision"])
            _load_rows(conn, src / "db")
        migrate(engine)  # the backup's revision -> this release's
    finally:
        engine.dispose()
    shas = _restart_spaces(db_url, manifest["created_at"])
    shas.update(_repo_shas(db_url))
    repos.mkdir(parents=True, exist_ok=True)
    saved = XetStore(src / "xet") if (src / "xet").is_dir() else None
    xet = XetStore(xet_root(data_dir)) if saved is not None else None
    for space_id, sha in shas.items():
        _unbundle(src / "repos" / f"{space_id}.bundle", repos / f"{space_id}.git", sha)
        oids = _load_objects(src, space_id, repos, repos / f"{space_id}.git")
        if saved is not None and xet is not None:
            _load_xet(saved, xet, oids)
    _load_buckets(src, data_dir)
    if (src / "secret_key").is_file() and not (data_dir / "secret_key").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _private_copy(src / "secret_key", data_dir / "secret_key")
    return manifest


def _load_objects(src: Path, space_id: str, repos: Path, repo: Path) -> list[str]:
    listing = src / "repos" / f"{space_id}.lfs"
    if not listing.is_file() or not repo.is_dir():
        return []
    saved, store, links = LocalObjectStore(src / "lfs" / "objects"), LocalObjectStore(objects_root(repos)), \
        RepoObjects(repo)
    for oid in listing.read_text().split():
        if saved.exists(oid) and not store.exists(oid):
            with open(saved.path(oid), "rb") as f:  # verified on the way in, as any upload
                put(store, oid, saved.size(oid), iter(lambda: f.read(1 << 20), b""))
        links.link(oid)
    return listing.read_text().split()


def _load_xet(saved: XetStore, xet: XetStore, oids: list[str]) -> None:
    """Each object's Xet file back, its xorbs verified on the way in as an upload's are, so the restored hub serves
    them through Xet as the old one did."""
    for oid in oids:
        h = saved.xet_hash_of(oid)
        rec = saved.get_file(h) if h is not None else None
        if rec is None or rec.sha256 != oid:
            continue
        if xet.get_file(h) is None:
            xorbs = list(dict.fromkeys(t[0] for t in rec.terms))
            for x in xorbs:
                path = saved.xorb_path(x)
                if not xet.has_xorb(x) and path.is_file():
                    xet_service.upload_xorb(xet, x, _spool_copy(xet, path), path.stat().st_size)
            xet_service.adopt_file(xet, rec, xorbs)
        xet.link_sha256(oid, h)


def _read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise BadRequest(f"{src} is not a backup made by `spaces backup` (manifest.json: {why}).") from exc
    if manifest.get("format") != FORMAT:
        raise BadRequest(f"{src} is a backup of format {manifest.get('format')!r}; this release reads {FORMAT}.")
    return manifest


def _check_fresh(engine, revision: str) -> None:  # noqa: ANN001
    with engine.connect() as conn:
        meta = MetaData()
        meta.reflect(conn)
        if "alembic_version" not in meta.tables:
            return
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        has_rows = any(conn.execute(select(meta.tables[t]).limit(1)).first() is not None
                       for t in ("accounts", "spaces") if t in meta.tables)
    if has_rows:
        raise BadRequest("The target instance already has accounts or Spaces: restore into a fresh data dir and "
                         "database (the server not running).")
    if current != revision:
        raise BadRequest(f"The target database is at schema revision {current}, the backup at {revision}: restore "
                         "into an empty database (drop its tables or point SPACES_DATABASE_URL at a new one).")


def _migrate_to(conn: Connection, db_url: str, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(db_url)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def _load_rows(conn: Connection, db_dir: Path) -> None:
    meta = MetaData()
    meta.reflect(conn)
    for table in meta.sorted_tables:
        path = db_dir / f"{table.name}.jsonl"
        if table.name in SKIP_TABLES or not path.exists():
            continue
        decoders = {c.name: _decoder(c.type) for c in table.columns}
        batch: list[dict] = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                batch.append({k: decoders[k](v) if k in decoders and v is not None else v for k, v in row.items()})
                if len(batch) == 500:
                    conn.execute(insert(table), batch)
                    batch = []
        if batch:
            conn.execute(insert(table), batch)
        _reset_sequence(conn, table)


def _decoder(sqltype):  # noqa: ANN001, ANN202
    if isinstance(sqltype, DateTime):
        return dt.datetime.fromisoformat
    if isinstance(sqltype, LargeBinary):
        return base64.b64decode
    return lambda v: v


def _reset_sequence(conn: Connection, table) -> None:  # noqa: ANN001
    """PostgreSQL hands out ids from a sequence that explicit inserts do not advance."""
    if conn.dialect.name != "postgresql" or "id" not in table.columns:
        return
    seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}).scalar()
    if seq:
        conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX(id) FROM "{table.name}"), 0) + 1, false)'),
                     {"s": seq})


def _restart_spaces(db_url: str, snapshot_iso: str) -> dict[str, str | None]:
    """Nothing of the old machine runs here: forget instances and artifacts, close open billing at the snapshot,
    and queue a build of each Space's commit."""
    from spaces.db.models import Build, Space, UsageInterval
    from spaces.db.session import Database
    from spaces.domain.stages import SpaceStage, set_stage

    snapshot = dt.datetime.fromisoformat(snapshot_iso)
    db = Database(db_url)
    shas: dict[str, str | None] = {}
    with db.session() as s:
        for interval in s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))):
            interval.ended_at = snapshot
        for build in s.scalars(select(Build).where(Build.status.in_(("queued", "running")))):
            build.status, build.message = "failed", "The instance was backed up before this build finished."
        for space in s.scalars(select(Space)):
            shas[space.id] = space.sha
            space.instance = space.instance_sha = space.hardware_current = space.artifact = None
            space.asleep, space.restarts, space.retry_at, space.queued_at = False, 0, None, None
            if space.paused:  # stays PAUSED; its owner's restart builds it (a build would leave it BUILDING)
                continue
            if space.sha and space.stage not in (SpaceStage.NO_APP_FILE.value, SpaceStage.CONFIG_ERROR.value):
                s.add(Build(space_id=space.id, sha=space.sha))
                set_stage(space, SpaceStage.BUILDING, "restored",
                          f"Restored from a backup: building {space.sha[:7]} again.", now=snapshot)
    db.engine.dispose()
    return shas


def _repo_shas(db_url: str) -> dict[str, str | None]:
    """``{type}s/{id}`` -> sha of every model and dataset: their repositories come back beside the Spaces'."""
    from spaces.db.models import Repo
    from spaces.db.session import Database

    db = Database(db_url)
    try:
        with db.session() as s:
            return {f"{r.repo_type}s/{r.id}": r.sha for r in s.scalars(select(Repo))}
    finally:
        db.engine.dispose()


def _unbundle(bundle: Path, repo: Path, sha: str | None) -> None:
    from spaces.storage.gitrepo import GitRepo

    if repo.exists():
        raise BadRequest(f"{repo} exists already: restore into a fresh data dir.")
    GitRepo.init_bare(repo)
    if bundle.is_file():
        _git(repo, "fetch", "--quiet", str(bundle), "+refs/*:refs/*")
    if sha:
        _git(repo, "update-ref", "refs/heads/main", sha)


# ---------------------------------------------------------------------------------------------------------------
# small helpers


def _git(repo: Path, *args: str, check: bool = True) -> str:
    """git in ``repo`` through the storage layer (its environment, and GitError naming git's complaint)."""
    return run_git(repo, ["--git-dir", str(repo), *args], ok=(0,) if check else tuple(range(256))).stdout.decode()


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _write_private(path: Path, content: str) -> None:
    with open(path, "w", encoding="utf-8", opener=_private_opener) as f:
        f.write(content)


def _private_copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as f, open(dst, "wb", opener=_private_opener) as g:
        shutil.copyfileobj(f, g)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
