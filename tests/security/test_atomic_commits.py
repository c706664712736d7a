"""All or nothing, against a live server on each database: a commit, create, duplicate (API and web forms) or push
that fails after git was updated moves no ref (git and the database agree, the caller sees the failure), and a
kill -9 between the git update and the database update is made good at the next start (git's main is the truth;
see spaces.services.spaces).

Failures are made real, not mocked: a database trigger refuses to record the new sha of one Space (the database
failing right after git moved), and a test transaction holding the Space's row lock keeps the server inside the
window between its git update and its database update while it is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import TEST_ROOT, DATABASES, create_postgres_database, start_server, unique, wait_until

from e2e.helpers import clone, commit_all, file_line, git, git_env, git_url, header_line, ndjson, post_commit

try:
    from security.input_helpers import assert_agree, git_tip
except ImportError:  # tests/security is not a package
    from input_helpers import assert_agree, git_tip

pytestmark = pytest.mark.timeout(300)


# ---- the server's database, reached directly ----------------------------------------------------------------------
def _pg_url(server) -> str | None:
    url = server.env.get("SPACES_DATABASE_URL")
    return url.replace("postgresql+psycopg://", "postgresql://") if url else None


@contextlib.contextmanager
def connect(server, autocommit: bool = True) -> Iterator[object]:
    url = _pg_url(server)
    if url:
        import psycopg

        conn = psycopg.connect(url, autocommit=autocommit)
    else:
        conn = sqlite3.connect(server.data_dir / "spaces.db", isolation_level=None if autocommit else "DEFERRED",
                               timeout=30)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def database_refuses_sha(server, space_name: str) -> Iterator[None]:
    """While inside, the database refuses to record a sha for Spaces named ``space_name`` (a trigger)."""
    trigger = f"refuse_{unique('t').replace('-', '_')}"
    with connect(server) as conn:
        if _pg_url(server):
            conn.execute(f"CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                         f"'refused by the test'; END $$ LANGUAGE plpgsql")
            conn.execute(f"CREATE TRIGGER {trigger} BEFORE UPDATE OF sha ON spaces FOR EACH ROW WHEN "
                         f"(NEW.name = '{space_name}' AND NEW.sha IS DISTINCT FROM OLD.sha) "
                         f"EXECUTE FUNCTION {trigger}()")
        else:
            conn.execute(f"CREATE TRIGGER {trigger} BEFORE UPDATE OF sha ON spaces WHEN NEW.name = '{space_name}' "
                         "AND NEW.sha IS NOT OLD.sha BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    try:
        yield
    finally:
        with connect(server) as conn:
            conn.execute(f"DROP TRIGGER {trigger}" + (" ON spaces" if _pg_url(server) else ""))
            if _pg_url(server):
                conn.execute(f"DROP FUNCTION {trigger}()")


def repo_dirs(server) -> set[str]:
    return {p.name for p in (server.data_dir / "repos").iterdir() if not p.name.startswith(".")}


def bare_tip(server, space_id: str) -> str:
    return git("--git-dir", str(server.data_dir / "repos" / f"{space_id}.git"), "rev-parse", "main").stdout.strip()


def space_id_of(server, repo_id: str, token: str) -> str:
    r = httpx.get(f"{server.url}/api/spaces/{repo_id}", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["_id"]


def test_a_delete_the_database_refuses_at_commit_leaves_the_space_whole(server, alice, make_space):
    """The repository goes only once the row is gone for good: a constraint checked at COMMIT refuses the delete
    after every statement went through (PostgreSQL's deferred constraint trigger; SQLite has none)."""
    if not _pg_url(server):
        pytest.skip("SQLite has no constraint checked at commit time to refuse a delete with")
    repo_id = make_space(alice)
    alice.api.upload_file(path_or_fileobj=b"keep me\n", path_in_repo="kept.txt", repo_id=repo_id, repo_type="space")
    trigger = f"refuse_{unique('d').replace('-', '_')}"
    name = repo_id.split("/")[1]
    with connect(server) as conn:
        conn.execute(f"CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
                     f"'refused by the test'; END $$ LANGUAGE plpgsql")
        conn.execute(f"CREATE CONSTRAINT TRIGGER {trigger} AFTER DELETE ON spaces DEFERRABLE INITIALLY DEFERRED "
                     f"FOR EACH ROW WHEN (OLD.name = '{name}') EXECUTE FUNCTION {trigger}()")
    try:
        with alice.http() as client:
            r = client.request("DELETE", "/api/repos/delete", json={"name": name, "organization": alice.name,
                                                                   "type": "space"})
        assert r.status_code >= 500, r.text
    finally:
        with connect(server) as conn:
            conn.execute(f"DROP TRIGGER {trigger} ON spaces")
            conn.execute(f"DROP FUNCTION {trigger}()")
    assert alice.api.repo_exists(repo_id, repo_type="space")
    assert "kept.txt" in alice.api.list_repo_files(repo_id, repo_type="space")
    assert_agree(server, repo_id, alice.token)


# ---- failures after the git update: nothing moves -----------------------------------------------------------------
def test_api_commit_the_database_refuses_moves_no_ref(server, alice, make_space):
    repo_id = make_space(alice)
    before = assert_agree(server, repo_id, alice.token)
    with database_refuses_sha(server, repo_id.split("/")[1]), alice.http() as client:
        r = post_commit(client, repo_id, ndjson(header_line("refused"), file_line("x.txt", b"x\n")))
        assert r.status_code >= 400, r.text
        assert r.headers.get("x-error-code"), r.headers
        assert assert_agree(server, repo_id, alice.token) == before, "the ref moved although the commit failed"
    with alice.http() as client:  # and the next commit goes through, on the old tip
        r = post_commit(client, repo_id, ndjson(header_line("accepted", parent=before), file_line("x.txt", b"x\n")))
        assert r.status_code == 200, r.text
    assert assert_agree(server, repo_id, alice.token) == r.json()["commitOid"]


def test_api_create_and_duplicate_the_database_refuses_leave_no_repository(server, alice, make_space):
    source = make_space(alice)
    before = repo_dirs(server)
    for name in (unique("refused"), unique("refused-dup")):
        with database_refuses_sha(server, name), alice.http() as client:
            if "dup" in name:
                r = client.post(f"/api/spaces/{source}/duplicate", json={"repository": f"{alice.name}/{name}"})
            else:
                r = client.post("/api/repos/create", json={"name": name, "type": "space", "sdk": "gradio"})
            assert r.status_code >= 400, r.text
        with alice.http() as client:
            assert client.get(f"/api/spaces/{alice.name}/{name}").status_code == 404
    assert repo_dirs(server) == before, "a repository was left behind by a create the database refused"


def test_web_forms_the_database_refuses_leave_nothing(server, alice, make_space):
    from pages.pagekit import Web

    web = Web(server)
    try:
        user = web.sign_up()
        source = make_space(alice)
        before = repo_dirs(server)
        for template in ("", "static"):
            name = unique("web")
            with database_refuses_sha(server, name):
                r = web.post("/new", {"owner": user, "name": name, "sdk": "static", "template": template,
                                      "hardware": "", "visibility": "public"}, token=web.csrf("/new"))
                assert r.status_code >= 400, (r.status_code, r.text[:300])
            assert httpx.get(f"{server.url}/api/spaces/{user}/{name}").status_code in (401, 404)
        name = unique("webdup")
        with database_refuses_sha(server, name):
            web.post(f"/spaces/{source}/duplicate", {"owner": user, "name": name, "visibility": "public"},
                     token=web.csrf(f"/spaces/{source}/duplicate"))
        assert httpx.get(f"{server.url}/api/spaces/{user}/{name}").status_code in (401, 404)
        assert repo_dirs(server) == before
    finally:
        web.close()


def test_push_the_database_refuses_is_refused_and_moves_no_ref(server, tmp_path, alice, make_space):
    repo_id = make_space(alice)
    before = assert_agree(server, repo_id, alice.token)
    dest = tmp_path / "c"
    clone(server, repo_id, dest, token=alice.token)
    (dest / "pushed.txt").write_text("pushed\n")
    commit_all(dest, "push, database refuses")
    with database_refuses_sha(server, repo_id.split("/")[1]):
        res = git("push", git_url(server, repo_id, alice.token), "HEAD:main", cwd=dest, check=False)
    assert res.returncode != 0, f"git reported a push the platform could not record as done: {res.stderr}"
    assert assert_agree(server, repo_id, alice.token) == before
    res = git("push", git_url(server, repo_id, alice.token), "HEAD:main", cwd=dest, check=False)
    assert res.returncode == 0, res.stderr  # the same push, once the database takes it
    assert assert_agree(server, repo_id, alice.token) == git("rev-parse", "HEAD", cwd=dest).stdout.strip()


# ---- a kill -9 inside the window, and a push whose database update failed: repaired at the next start --------------
@contextlib.contextmanager
def own_server(database: str, data_dir: Path, db_url: str | None):  # noqa: ANN201
    srv = start_server("sqlite", data_dir=data_dir, extra_env={"SPACES_DATABASE_URL": db_url} if db_url else None)
    try:
        yield srv
    finally:
        srv.stop()


@contextlib.contextmanager
def rows_locked(server, space_names: list[str]) -> Iterator[None]:
    """Hold the Spaces' rows (PostgreSQL) or the whole database (SQLite) for writing, so the server's database
    update after its git update waits."""
    with connect(server, autocommit=False) as conn:
        if _pg_url(server):
            conn.execute("SELECT id FROM spaces WHERE name = ANY(%s) FOR UPDATE", (space_names,))
        else:
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()


@pytest.mark.parametrize("database", DATABASES)
def test_kill_9_between_git_and_database_is_repaired_at_start(tmp_path, database):
    """An API commit and a push, each killed (SIGKILL) after git moved and before the database recorded it: the
    restarted server brings both Spaces up to git's tip (nobody was told either way; git holds the commits)."""
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    data_dir = TEST_ROOT / unique(f"atomic-{database}")
    db_url, drop = create_postgres_database() if database == "postgres" else (None, lambda: None)
    try:
        with own_server(database, data_dir, db_url) as srv:
            token = srv.token("alice")
            from huggingface_hub import HfApi

            api = HfApi(endpoint=srv.url, token=token)
            committed, pushed = f"alice/{unique('committed')}", f"alice/{unique('pushed')}"
            for repo_id in (committed, pushed):
                api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
            recorded = {r: assert_agree(srv, r, token) for r in (committed, pushed)}
            ids = {r: space_id_of(srv, r, token) for r in (committed, pushed)}
            dest = tmp_path / "c"
            clone(srv, pushed, dest, token=token)
            (dest / "pushed.txt").write_text("pushed\n")
            commit_all(dest, "push killed midway")
            body = ndjson(header_line("killed midway"), file_line("killed.txt", b"killed\n"))

            with rows_locked(srv, [r.split("/")[1] for r in (committed, pushed)]):
                thread = threading.Thread(target=lambda: _post_quietly(srv.url, token, committed, body), daemon=True)
                thread.start()
                pusher = subprocess.Popen(["git", "push", git_url(srv, pushed, token), "HEAD:main"], cwd=dest,
                                          env=git_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for r in (committed, pushed):
                    wait_until(lambda r=r: bare_tip(srv, ids[r]) != recorded[r], timeout=30,
                               what=f"the server's git update of {r}")
                time.sleep(0.3)  # the server now waits on the database
                os.kill(srv.proc.pid, signal.SIGKILL)
                srv.proc.wait(timeout=10)
            thread.join(timeout=30)
            pusher.wait(timeout=30)
            tips = {r: bare_tip(srv, ids[r]) for r in (committed, pushed)}
            assert all(tips[r] != recorded[r] for r in tips)

        with own_server(database, data_dir, db_url) as srv:
            for r in (committed, pushed):
                assert assert_agree(srv, r, token) == tips[r]
            files = {e["path"] for e in httpx.get(f"{srv.url}/api/spaces/{committed}/tree/main", timeout=30).json()}
            assert "killed.txt" in files
            assert "brought 2 Space(s) up to their git tip" in srv.log(), srv.log()[-2000:]
    finally:
        drop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _post_quietly(url: str, token: str, repo_id: str, body: bytes) -> None:
    with contextlib.suppress(httpx.HTTPError):
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60) as client:
            post_commit(client, repo_id, body)
