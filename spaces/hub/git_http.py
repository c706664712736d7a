"""Git smart HTTP at ``/spaces/{ns}/{name}[.git]`` (Spaces), ``/datasets/{ns}/{name}[.git]`` and
``/{ns}/{name}[.git]`` (models), served by ``git http-backend`` (CGI) in a subprocess. The path's type decides
which repository is served; a model and a Space of one name are two repositories.

Auth is HTTP Basic with any user name and an access token as password. Anonymous requests for a repository
that is private *or missing* get the same 401 challenge, so git asks its credential helper and nobody learns
whether a private Space exists; an authenticated caller without access gets 404 RepoNotFound. Pushing needs a
write token of the owner or of a member of the owning organization. A ``pre-receive`` hook refuses what the
platform cannot take before any ref moves. After a push the hub re-reads the tip of main (README config, stage)
exactly as it does after an API commit; if that fails (the database refuses), main goes back where it was and the
connection is cut before git's status report, so the push fails as a whole (see spaces.services.spaces).

Several hub processes may serve one set of repositories (a shared filesystem). What makes two pushes to one
repository safe, whichever processes serve them (``_PushLocks``):

* the repository's commit lock (``spaces.storage._gitcmd.commit_lock``, an ``flock`` that API commits take too),
  held exclusively from before the tip is read until the push's database refresh is done: pushes to one
  repository run one after the other, and the pre-receive hook refuses one whose client read the refs before
  another push landed ("pull first"; see ``spaces.storage.prereceive``), so one wins and the other is told to
  pull, never half applied. Under it, git's own ref locks and compare-and-swap still guard each ref;
* the repository's busy lock (``repo_busy``), held shared while receive-pack runs: a process that sweeps what
  killed pushes left (quarantines) skips a repository some push in any process is still writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from spaces.db.session import after_rollback
from spaces.errors import RepoNotFound, SpacesError
from spaces.hub import auth
from spaces.hub.api.common import repo_type_of
from spaces.hub.errors import error_response
from spaces.services import accounts
from spaces.storage.gitrepo import GitRepo, remove_quarantines
from spaces.storage.prereceive import hub_token

log = logging.getLogger("spaces.git")
router = APIRouter()
SERVICES = ("git-upload-pack", "git-receive-pack")


def _authorize(request: Request, repo_id: str, write: bool):  # noqa: ANN202
    """The repository's id and path if the caller may proceed; raises a SpacesError otherwise."""
    hub = request.app.state.hub
    kind = repo_type_of(request)
    store = hub.store(kind)
    with hub.db.session() as s:
        principal = auth.principal(request, s)
        row = store.find(s, repo_id)
        if principal is None and (row is None or row.private or write):
            raise _challenge(kind, repo_id)
        if row is None:
            raise RepoNotFound(repo_id, kind)
        accounts.check_read(s, principal, row)
        if write:
            accounts.check_write(s, principal, row)
        urls = {"SPACES_PUSH_HUB": hub_token()} if write else {}
        if kind == "space":  # what the post-receive hook tells the pusher: a Space builds what was pushed
            urls |= {"SPACES_SPACE_URL": hub.space_url(row.repo_id),
                    "SPACES_LOGS_URL": hub.url(f"/api/spaces/{row.repo_id}/logs/build"),
                    "SPACES_APP_URL": hub.settings.app_host(row.subdomain)}
        return row.id, store.repo(row).path, urls


def _challenge(kind: str, repo_id: str) -> SpacesError:
    return SpacesError(f"Repository {kind}s/{repo_id} not found, or authentication required: use your access "
                       "token as the password.", code="RepoNotFound", status=401)


POST_RECEIVE = """#!/bin/sh
# Installed by spaces: tells the pusher what happens next (printed by git as "remote:" lines): the build, or why
# the pushed README keeps the Space from building; see spaces/storage/postreceive.py.
exec {python} -I -m spaces.storage.postreceive
"""


# -I: the hook runs in the repository directory; nothing there or in the environment may change what it imports
PRE_RECEIVE = """#!/bin/sh
# Installed by spaces: refuses a push the platform cannot take (a symlink leaving the repository) before any ref
# moves; see spaces/storage/prereceive.py.
exec {python} -I -m spaces.storage.prereceive
"""


def install_hooks(data_dir) -> str:  # noqa: ANN001
    """Write the shared hooks directory (``core.hooksPath`` for every push) and return its path."""
    hooks = data_dir / "git-hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    for name, text in (("post-receive", POST_RECEIVE.format(python=python)),
                       ("pre-receive", PRE_RECEIVE.format(python=python))):
        hook = hooks / name
        if not hook.exists() or hook.read_text() != text:
            hook.write_text(text)
        hook.chmod(0o755)
    return str(hooks)


async def _cgi(request: Request, repo_path, service_path: str, body: bool, extra_env: dict,  # noqa: ANN001
               locks: _PushLocks | None = None) -> Response:
    env = {
        **extra_env,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(repo_path.parent),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo_path.parent),
        "PATH_INFO": f"/{repo_path.name}/{service_path}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_USER": "spaces",
        "REMOTE_ADDR": request.client.host if request.client else "",
    }
    for header, var in (("content-encoding", "HTTP_CONTENT_ENCODING"), ("git-protocol", "GIT_PROTOCOL")):
        if header in request.headers:
            env[var] = request.headers[header]
    if "content-length" in request.headers:
        env["CONTENT_LENGTH"] = request.headers["content-length"]
    proc = await asyncio.create_subprocess_exec(
        "git", "http-backend", env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    if locks is not None:
        locks.release_after(proc)

    async def feed() -> None:
        try:
            if body:
                async for chunk in request.stream():
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            proc.stdin.close()

    feeder = asyncio.create_task(feed())
    # stderr is drained as it comes: a full stderr pipe would stop http-backend before it finishes stdout
    errors = asyncio.create_task(proc.stderr.read())
    status, headers = 200, {}
    while True:
        line = (await proc.stdout.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[key.strip()] = value.strip()

    async def stream():  # noqa: ANN202
        try:
            while chunk := await proc.stdout.read(65536):
                yield chunk
        finally:
            if not feeder.done():  # the client went away half way, or git ended before reading it all
                if proc.returncode is None:
                    await _end(proc)
                feeder.cancel()  # no one is left to read the rest of the body
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            err = (await errors).decode(errors="replace").strip()
            code = await proc.wait()
            if code != 0 or (err and status >= 400):
                log.warning("git http-backend exited %s: %s", code, err)

    headers.pop("Content-Length", None)
    return _CgiResponse(stream(), feeder, status_code=status, headers=headers)


class _PushLocks:
    """The locks one push holds (see the module docstring): the commit lock, exclusive, from before the tip is
    read until the database has the new tip; the busy lock, shared, while receive-pack runs. Released by
    ``release`` once the push is over, or, should its answer never be streamed, a while after git exits."""

    WAIT_S = 120.0  # a push waits this long for the one before it, then is told to retry
    SAFETY_S = 60.0

    def __init__(self, repo_path: Path) -> None:
        self.repo_path = repo_path
        self._fds: list[int] = []

    async def acquire(self) -> None:
        import fcntl

        from spaces.storage._gitcmd import BUSY_LOCK, COMMIT_LOCK

        try:
            for name, mode in ((BUSY_LOCK, fcntl.LOCK_SH), (COMMIT_LOCK, fcntl.LOCK_EX)):
                try:
                    fd = os.open(self.repo_path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except FileNotFoundError:  # deleted meanwhile
                    raise RepoNotFound(self.repo_path.name) from None
                self._fds.append(fd)
                deadline = asyncio.get_running_loop().time() + self.WAIT_S
                while True:  # polled, never blocking the event loop or a worker thread on another push
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if asyncio.get_running_loop().time() > deadline:
                            raise SpacesError("Another push to this Space is still running; try again in a "
                                              "moment.", code="PushInProgress", status=503) from None
                        await asyncio.sleep(0.02)
        except BaseException:
            self.release()
            raise

    def release_after(self, proc) -> None:  # noqa: ANN001
        async def later() -> None:
            await proc.wait()
            await asyncio.sleep(self.SAFETY_S)
            self.release()
        asyncio.get_running_loop().create_task(later())

    def release(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)
        # no push of ours holds the repository now: what a dead push left goes, unless one runs elsewhere
        if fds and remove_quarantines(self.repo_path):
            log.info("removed the objects of an interrupted push to %s", self.repo_path.name)


async def _end(proc) -> None:  # noqa: ANN001
    """Stop an http-backend whose client is gone: SIGTERM first, on which git removes its push quarantine (a
    SIGKILL, what asyncio sends a process it drops, would leave it), SIGKILL if it does not end."""
    try:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)
    except ProcessLookupError:
        pass
    except asyncio.TimeoutError:
        proc.kill()


class _CgiResponse(StreamingResponse):
    """A streamed CGI answer whose request body is still being fed to the CGI by another task.

    Starlette's StreamingResponse (under ASGI spec < 2.4, i.e. uvicorn) watches for a disconnect by calling
    ``receive()`` while the body streams. Here the feeder is still calling ``receive()`` for the request body, and
    a chunk the watcher takes is lost: git's upload-pack then waits forever for the end of its input and the clone
    stalls after the response head. The watch may even run before the feeder's first step: when http-backend's
    head is already buffered (a loaded machine), ``_cgi`` returns without yielding and the watch takes a small
    request's whole body. So the watch starts only once the whole body has been read."""

    def __init__(self, content, body_read: asyncio.Task, **kwargs) -> None:  # noqa: ANN001, ANN003
        super().__init__(content, **kwargs)
        self._body_read = body_read

    async def listen_for_disconnect(self, receive) -> None:  # noqa: ANN001
        await asyncio.wait([self._body_read])  # never cancels the feeder when this watch is cancelled
        await super().listen_for_disconnect(receive)


def _repo_id(ns: str, name: str) -> str:
    return f"{ns}/{name[:-4] if name.endswith('.git') else name}"


@router.get("/{ns}/{name}/info/refs", include_in_schema=False)  # a model's; described once, as a Space's
@router.get("/datasets/{ns}/{name}/info/refs", include_in_schema=False)
@router.get("/spaces/{ns}/{name}/info/refs")
async def info_refs(ns: str, name: str, request: Request) -> Response:
    service = request.query_params.get("service")
    if service not in SERVICES:
        return error_response(request, 403, "Forbidden", "Only the smart HTTP protocol is supported; update git.")
    return await _serve(request, ns, name, "info/refs", write=service == "git-receive-pack", body=False)


@router.post("/{ns}/{name}/git-upload-pack", include_in_schema=False)  # a model's
@router.post("/datasets/{ns}/{name}/git-upload-pack", include_in_schema=False)
@router.post("/spaces/{ns}/{name}/git-upload-pack")
async def upload_pack(ns: str, name: str, request: Request) -> Response:
    return await _serve(request, ns, name, "git-upload-pack", write=False, body=True)


@router.post("/{ns}/{name}/git-receive-pack", include_in_schema=False)  # a model's
@router.post("/datasets/{ns}/{name}/git-receive-pack", include_in_schema=False)
@router.post("/spaces/{ns}/{name}/git-receive-pack")
async def receive_pack(ns: str, name: str, request: Request) -> Response:
    before: dict = {}

    def remember_tip(repo_path: Path) -> None:  # under the push's locks, before receive-pack starts
        before["repo"] = repo = GitRepo(repo_path)
        before["tip"] = repo.head()

    locks: list[_PushLocks] = []
    try:
        response = await _serve(request, ns, name, "git-receive-pack", write=True, body=True,
                                before_cgi=remember_tip, locks=locks)
    except BaseException:
        for held in locks:
            held.release()
        raise
    if not isinstance(response, StreamingResponse):
        for held in locks:
            held.release()
        return response
    hub = request.app.state.hub
    store = hub.store(repo_type_of(request))
    repo_id = _repo_id(ns, name)
    inner = response.body_iterator

    async def then_refresh():  # noqa: ANN202
        # The refs are updated once http-backend has finished writing its answer, and git considers the push
        # done as soon as it reads the status report at the end of it: so the last chunk is held back until the
        # hub has read the new tip, and a client that reads the Space right after `git push` sees its commit.
        try:
            held = None
            async for chunk in inner:
                if held is not None:
                    yield held
                held = chunk
        except BaseException:
            for lock in locks:
                lock.release()
            raise

        def refresh() -> None:
            repo, old = before["repo"], before["tip"]
            with hub.db.session() as s:
                space = store.find(s, repo_id)
                new = repo.head()
                if space is not None and new is not None and new != old:
                    # all or nothing (see spaces.services.spaces): if the database cannot take the new tip, main
                    # goes back to where it was and the pusher never gets git's "ok" (this push holds the lock)
                    after_rollback(s, lambda: repo.restore_tip(new, old, locked=True))
                if space is not None:
                    store.refresh(s, space)
                    if new != old:
                        hub.announce(s, space, repo_type_of(request), "repo", "update", "repo.content",
                                     updatedRefs=[{"ref": "refs/heads/main", "oldSha": old, "newSha": new}])
        try:
            try:
                await run_in_threadpool(refresh)
            finally:
                for lock in locks:
                    lock.release()
        except Exception:
            log.exception("refresh after push to %s failed: main is back where it was and the push is refused",
                          repo_id)
            raise  # the connection is cut before git's status report: the client reports the push as failed
        if held is not None:
            yield held

    response.body_iterator = then_refresh()
    return response


async def _serve(request: Request, ns: str, name: str, service_path: str, *, write: bool, body: bool,
                 before_cgi: Callable[[Path], None] | None = None, locks: list | None = None) -> Response:
    repo_id = _repo_id(ns, name)
    push_locks = None
    try:
        space_id, repo_path, urls = await run_in_threadpool(_authorize, request, repo_id, write)
        if locks is not None:
            push_locks = _PushLocks(repo_path)
            locks.append(push_locks)
            await push_locks.acquire()
        if before_cgi is not None:
            await run_in_threadpool(before_cgi, repo_path)
    except SpacesError as exc:
        resp = error_response(request, exc.status, exc.code, exc.message)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="spaces"'
        return resp
    hooks = request.app.state.git_hooks
    extra = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": hooks, **urls}
    return await _cgi(request, repo_path, service_path, body, extra, push_locks)
