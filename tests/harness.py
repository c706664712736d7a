"""Start the real ``spaces`` server as a subprocess, for the end-to-end tests and the benchmarks.

Nothing here is faked: :func:`start_server` runs ``spaces serve`` on a free loopback port with its own data
directory (and, for PostgreSQL, its own freshly created database), waits for ``GET /api/health`` and hands back a
:class:`Server` whose helpers run the real CLI (``spaces token create``, ``spaces org create``) with the same
environment. :meth:`Server.stop` kills the whole process group, so builders or apps the server spawned go too.

Used by ``tests/conftest.py`` (fixtures) and ``bench/hub_load.py`` (load check). Kept free of pytest imports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

#: the databases tests run against (``SPACES_TEST_DATABASES=sqlite scripts/test`` runs without PostgreSQL)
DATABASES = [d.strip() for d in os.environ.get("SPACES_TEST_DATABASES", "sqlite,postgres").split(",") if d.strip()]
#: the admin database used to create and drop the per-run test databases
PG_ADMIN_URL = os.environ.get("SPACES_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: the SQLAlchemy URL prefix the server expects for a database on that cluster
PG_SERVER_URL = os.environ.get("SPACES_TEST_PG_SERVER_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{db}")

#: the local backend gives every Space a private /tmp, so test data dirs live under /var/tmp
TEST_ROOT = Path(os.environ.get("SPACES_TEST_ROOT", "/var/tmp/spaces-tests"))
SHARED_ENVS_DIR = TEST_ROOT / "envs"

#: commit body limit the test server runs with (tests send twice this to get a 413)
TEST_MAX_COMMIT_BYTES = 1024 * 1024

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the host's CA bundle: package indexes inside containers are reachable only with it here
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def setup_docker_engine() -> str:
    """Start the Docker engine and build the base images when missing (both scripts are idempotent).
    Returns "" when done, else why not: the failing script and the tail of what it printed."""
    for script in ("infra/docker/setup-engine.sh", "infra/images/build-base.sh"):
        proc = subprocess.run([str(REPO_ROOT / script)], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            return f"{script} failed: {(proc.stderr or proc.stdout).strip()[-800:]}"
    return ""


def docker_backend_env() -> dict[str, str]:
    """The settings that run ``spaces serve`` on the Docker backend here (builds trust the host's CA bundle)."""
    env = {"SPACES_RUNTIME__BACKEND": "docker"}
    if HOST_CA.is_file():
        env["SPACES_DOCKER_BUILD__EXTRA_CA_BUNDLE"] = str(HOST_CA)
    return env


def kubernetes_backend_env(kubeconfig: str, registry: str, namespace: str) -> dict[str, str]:
    """The settings that run ``spaces serve`` on the Kubernetes backend against ``infra/kubernetes/cluster``: images
    built by the Docker engine and pushed to the cluster's registry, apps reached at their pod IP (the proxy runs on
    the host, outside the pod network's DNS; no kube-proxy there)."""
    return {**docker_backend_env(),
            "SPACES_RUNTIME__BACKEND": "kubernetes",
            "SPACES_KUBERNETES__KUBECONFIG": kubeconfig,
            "SPACES_KUBERNETES__NAMESPACE": namespace,
            "SPACES_KUBERNETES__ADDRESS": "pod",
            "SPACES_DOCKER_BUILD__IMAGE_PREFIX": f"{registry}/spaces",
            "SPACES_DOCKER_BUILD__PUSH": "true"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spaces_command() -> list[str]:
    """The ``spaces`` CLI of the interpreter running us (the venv's console script when present)."""
    script = Path(sys.executable).parent / "spaces"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from spaces.cli import main; sys.exit(main())"]


def wait_until(fn: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.2, what: str = "condition") -> T:
    """Call ``fn`` until it returns something truthy; return it. Raise TimeoutError with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL: one throw-away database per server


def create_postgres_database(prefix: str = "spaces_test") -> tuple[str, Callable[[], None]]:
    """Create a fresh database; return (server URL, drop function)."""
    import psycopg  # imported lazily: the sqlite-only path needs no driver

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with contextlib.suppress(Exception):
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_SERVER_URL.format(db=name), drop


def migrated_databases(prefix: str) -> Callable[..., Iterator[Any]]:
    """The body of a fixture parametrised over ``DATABASES``: a migrated ``spaces.db.session.Database`` on SQLite
    (in ``tmp_path``) or on a PostgreSQL database of its own (``prefix``), dropped afterwards. A module whose queries
    must hold on both binds it to a name::

        db = pytest.fixture(params=DATABASES, name="db")(migrated_databases("spaces_logbus"))
    """
    def fixture(request: Any, tmp_path: Path) -> Iterator[Any]:
        from spaces.db.session import Database

        if request.param == "postgres":
            url, drop = create_postgres_database(prefix)
        else:
            url, drop = f"sqlite:///{tmp_path / 'spaces.db'}", (lambda: None)
        database = Database(url)
        database.migrate()
        try:
            yield database
        finally:
            database.engine.dispose()
            drop()
    return fixture


# ---------------------------------------------------------------------------------------------------------------
# The server


class ServerStartError(RuntimeError):
    pass


@dataclass
class Server:
    url: str
    host: str
    port: int
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    database: str
    proc: subprocess.Popen[bytes] | None = None
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    # -- derived values -------------------------------------------------------------------------------------

    @property
    def apps_domain(self) -> str:
        """``SPACES_APPS_DOMAIN`` default: ``localhost:{port}``."""
        return self.env.get("SPACES_APPS_DOMAIN") or f"localhost:{self.port}"

    def app_origin(self, subdomain: str) -> str:
        return f"http://{subdomain}.{self.apps_domain}"

    # -- CLI ------------------------------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``spaces ARGS`` with the server's environment (same data dir and database)."""
        res = subprocess.run(
            [*spaces_command(), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            raise RuntimeError(
                f"`spaces {' '.join(args)}` exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
            )
        return res

    def token(self, user: str, role: str = "write", name: str | None = None) -> str:
        """``spaces token create USER --role ROLE``: creates the user if needed, returns the token."""
        args = ["token", "create", user, "--role", role]
        if name:
            args += ["--name", name]
        out = self.cli(*args).stdout.strip()
        lines = out.splitlines()
        if len(lines) != 1 or not lines[0] or " " in lines[0]:
            raise RuntimeError(f"`spaces token create` must print only the token on stdout, got: {out!r}")
        return lines[0]

    def user(self, name: str, admin: bool = False) -> None:
        self.cli("user", "create", name, *(["--admin"] if admin else []))

    def org(self, name: str, members: list[str] | tuple[str, ...]) -> str:
        args = ["org", "create", name]
        for m in members:
            args += ["--member", m]
        self.cli(*args)
        return name

    # -- lifecycle ------------------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, start: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # children that outlived the leader (same process group)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        # Space apps live in sessions of their own and outlive the control plane on purpose (a restarted
        # server re-adopts them); a finished test has no restart coming, so they go too.
        kill_space_processes(self.data_dir)
        unmount_under(self.data_dir)
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()


def unmount_under(data_dir: Path) -> int:
    """Detach what the server left mounted under ``data_dir`` (Spaces' home disks, bucket disks), deepest first: the
    stopped server's Spaces keep them on purpose, but a finished test has no restart coming, ``rmtree`` cannot remove
    a mounted disk, and every run would leak a loop device per Space. Returns how many."""
    root = str(Path(data_dir).resolve()) + "/"
    with open("/proc/self/mountinfo") as f:  # field 5: the mount point, with spaces etc. as octal escapes
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    inside = sorted((p for p in points if p.startswith(root)), key=len, reverse=True)
    for point in inside:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return len(inside)


def kill_space_processes(data_dir: Path) -> int:
    """SIGKILL every process started for Spaces of the server that used ``data_dir`` (zygotes, forked and
    cold-started apps): they run from its working copies or name its run dir. Returns how many."""
    root = str(Path(data_dir).resolve())
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if root in cmdline or cwd.startswith(root + "/"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def server_env(
    *, port: int, data_dir: Path, database_url: str | None, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    # the developer's own SPACES_* / HF_* settings must not leak into the server under test
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "HF_", "HUGGING"))}
    env.update(
        SPACES_HOST="127.0.0.1",
        SPACES_PORT=str(port),
        SPACES_DATA_DIR=str(data_dir),
        SPACES_PUBLIC_URL=f"http://127.0.0.1:{port}",
        SPACES_LIMITS__MAX_COMMIT_BYTES=str(TEST_MAX_COMMIT_BYTES),
        # environments are content-addressed: every test server shares one store, so each is built once per run
        SPACES_LOCAL_BUILD__ENVS_DIR=str(SHARED_ENVS_DIR),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["SPACES_DATABASE_URL"] = database_url
    if extra_env:
        env.update(extra_env)
    return env


def start_server(
    database: str = "sqlite",
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    startup_timeout: float = 90.0,
) -> Server:
    """Start ``spaces serve`` and wait until ``/api/health`` answers 200.

    ``database`` is ``"sqlite"`` (the server's default file under the data dir) or ``"postgres"`` (a fresh
    database, dropped again by :meth:`Server.stop`). The caller must call :meth:`Server.stop`.
    """
    cleanups: list[Callable[[], None]] = []
    if data_dir is None:
        TEST_ROOT.mkdir(parents=True, exist_ok=True)
        TEST_ROOT.chmod(0o711)  # sandboxed Spaces traverse it to reach their environments
        data_dir = Path(tempfile.mkdtemp(prefix=f"spaces-test-{database}-", dir=TEST_ROOT))
        cleanups.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    database_url: str | None = None
    if database == "postgres":
        database_url, drop = create_postgres_database()
        cleanups.append(drop)
    elif database != "sqlite":
        raise ValueError(f"unknown database {database!r} (sqlite or postgres)")

    env = server_env(port=port, data_dir=data_dir, database_url=database_url, extra_env=extra_env)
    log_path = Path(tempfile.mkstemp(prefix=f"spaces-server-{database}-", suffix=".log")[1])
    url = f"http://127.0.0.1:{port}"
    server = Server(
        url=url, host="127.0.0.1", port=port, data_dir=data_dir, env=env, log_path=log_path, database=database,
        _cleanups=cleanups,
    )
    cmd = [*spaces_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with open(log_path, "wb") as log:
        server.proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + startup_timeout
    last_err: str = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            server.stop()
            raise ServerStartError(
                f"`{' '.join(cmd)}` exited with {server.proc.returncode} before becoming healthy.\n"
                f"--- server log ({log_path}) ---\n{server.log()[-20000:]}"
            )
        try:
            r = httpx.get(f"{url}/api/health", timeout=2)
            if r.status_code == 200:
                r.json()  # must be JSON
                return server
            last_err = f"HTTP {r.status_code}: {r.text[:200]}"
        except (httpx.HTTPError, ValueError) as e:
            last_err = repr(e)
        time.sleep(0.2)
    server.stop()
    raise ServerStartError(
        f"`{' '.join(cmd)}` did not answer GET /api/health with 200 within {startup_timeout}s "
        f"(last: {last_err}).\n--- server log ({log_path}) ---\n{server.log()[-20000:]}"
    )


@contextlib.contextmanager
def running_server(database: str = "sqlite", **kwargs: Any) -> Iterator[Server]:
    server = start_server(database, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def subdomain_for(repo_id: str) -> str:
    """HF's rule: lowercase ``ns/name``, every run of non-alphanumerics becomes ``-``, trimmed."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")


# ---------------------------------------------------------------------------------------------------------------
# users as the clients see them


@dataclass
class Actor:
    """A user (or nobody) as seen by the clients: name, token and an ``HfApi`` bound to the server."""

    name: str | None
    token: str | None
    api: Any  # huggingface_hub.HfApi
    server: Server

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=self.headers, timeout=30)


def make_actor(server: Server, name: str, role: str = "write") -> Actor:
    token = server.token(name, role=role, name=f"e2e-{role}")
    return Actor(name=name, token=token, api=_hfapi(server.url, token), server=server)




def _hfapi(endpoint: str, token: str | bool | None) -> Any:
    from huggingface_hub import HfApi  # imported late: the test's HF_* environment must be set first

    return HfApi(endpoint=endpoint, token=token)
