"""Helpers for the whole-platform tests and benchmarks: real ``spaces serve`` processes, real pushes, real apps.

Nothing here fakes a part of the platform. A :class:`Platform` is ``spaces serve`` (hub, builder, reconciler,
sleeper, proxy in one process, local backend) started through ``tests/harness.py`` with:

* its data dir under ``/var/tmp`` (never /tmp: every Space gets a private /tmp of its own);
* an environments dir shared by every platform of one test session (``envs``): environments are content
  addressed, so the gradio template's environment is built once and reused by every server and Space;
* its own block of sandbox uids and its own cgroup root, so processes can be counted by uid without seeing the
  Spaces of anything else running on this machine (other test suites, a developer's server);
* a canary variable in the server's environment (``PLATFORM_CANARY``) that no app may ever see.

``Platform.stop`` stops the server and then every instance it left running (apps live in their own sessions and
survive their control plane on purpose), removes its cgroups and its data dir.
Kept free of pytest imports: ``bench/`` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness import Server, start_server, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates"
PLATFORM_CANARY = "PLATFORM_CANARY"
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARK = "# spaces-platform-test"
RUNNING = "RUNNING"
SETTLED = {"RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "NO_APP_FILE", "CONFIG_ERROR", "PAUSED", "SLEEPING", "STOPPED"}


def new_base(prefix: str = "spaces-platform-") -> Path:
    """A fresh directory under /var/tmp, reachable by the sandbox uids (0711)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.chmod(base, 0o711)
    return base


HOST_REGISTRY = Path("/var/lib/spaces-host/instances.json")
_handed_out: set[int] = set()


def uid_block() -> tuple[int, int]:
    """A block of 200 uids in 41000-58999 (other suites use 20000-30999) that no platform this process started
    and no live platform in the host registry holds. A random pick alone let two platforms of one session draw
    the same block (the second then refused to start, as it must)."""
    try:
        taken = [(e["uid_min"], e["uid_max"]) for e in json.loads(HOST_REGISTRY.read_text()).values()]
    except (OSError, ValueError, KeyError, TypeError):
        taken = []
    free = [s for s in range(41000, 59000, 200)
            if s not in _handed_out and not any(lo <= s + 199 and s <= hi for lo, hi in taken)]
    start = free[secrets.randbelow(len(free))]
    _handed_out.add(start)
    return start, start + 199


@dataclass
class Platform:
    """One running ``spaces serve`` and what it needs to be stopped cleanly and restarted on the same data."""

    server: Server
    base: Path
    data_dir: Path
    extra_env: dict[str, str]
    uid_min: int
    uid_max: int
    cgroup_root: str
    canary: str
    old_servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def kill9(self) -> None:
        """SIGKILL the control plane process only (not its process group): what a crash or OOM kill does."""
        assert self.server.proc is not None
        os.kill(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(10)

    def restart(self) -> Server:
        """Start ``spaces serve`` again on the same data dir and port (after :meth:`kill9` or a stop)."""
        old = self.server
        if old.alive():
            old.stop()
        self.old_servers.append(old)
        self.server = start_server(data_dir=self.data_dir, port=old.port, extra_env=self.extra_env)
        return self.server

    def space_processes(self) -> dict[int, tuple[int, str]]:
        """pid -> (uid, command line) of every process running as one of this platform's sandbox uids."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                uid = entry.stat().st_uid
                if self.uid_min <= uid <= self.uid_max:
                    cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    if (entry / "stat").read_text().split(") ")[-1].split()[0] != "Z":
                        found[int(entry.name)] = (uid, cmd)
            except (OSError, IndexError):
                continue
        return found

    def stop(self, *, remove: bool = True) -> None:
        for srv in [self.server, *self.old_servers]:
            with contextlib.suppress(Exception):
                srv.stop()
        stop_instances(self.data_dir / "local", self.cgroup_root)
        for pid in self.space_processes():  # stragglers of our uids only (e.g. a killed zygote's children)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_cgroups(self.cgroup_root)
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            for srv in [self.server, *self.old_servers]:
                srv.log_path.unlink(missing_ok=True)


def start_platform(base: Path, name: str = "data", *, envs_dir: Path | None = None,
                   extra_env: dict[str, str] | None = None) -> Platform:
    """Start ``spaces serve`` with a data dir ``base/name`` and the conventions in the module docstring."""
    data_dir = base / name
    data_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    envs = envs_dir or base / "envs"
    envs.mkdir(mode=0o755, parents=True, exist_ok=True)
    uid_min, uid_max = uid_block()
    cgroup_root = f"spaces-ptest-{secrets.token_hex(4)}"
    canary = f"canary-{secrets.token_hex(8)}"
    env = {
        "SPACES_LOCAL_BUILD__ENVS_DIR": str(envs),
        "SPACES_LOCAL__UID_MIN": str(uid_min),
        "SPACES_LOCAL__UID_MAX": str(uid_max),
        "SPACES_LOCAL__CGROUP_ROOT": cgroup_root,
        "SPACES_RUNTIME__SWEEP_SECONDS": "1",
        "SPACES_RUNTIME__SLEEP_SWEEP_SECONDS": "1",
        "SPACES_RUNTIME__CRASH_BACKOFF": "0.25",  # an app crashing at start gives up after seconds, not a minute
        PLATFORM_CANARY: canary,
        **(extra_env or {}),
    }
    server = start_server(data_dir=data_dir, extra_env=env)
    return Platform(server, base, data_dir, env, uid_min, uid_max, cgroup_root, canary)


def stop_instances(local_root: Path, cgroup_root: str) -> None:
    """Stop every instance a (dead or stopped) platform's local backend left, through the backend itself."""
    if not (local_root / "run" / "instances").exists():
        return
    from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings

    backend = LocalBackend(LocalBackendSettings(root=local_root, cgroup_root=cgroup_root, stop_grace_s=2))
    for handle in backend.list({}):
        with contextlib.suppress(Exception):
            backend.stop(handle)


def remove_cgroups(root_name: str, wait: float = 5.0) -> None:
    """Remove a cgroup root (v1: under every controller; v2: the unified tree), deepest first. Killed processes
    leave their cgroup a moment after the signal, so this retries for up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        left = [d for top in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").glob("*")]
                if (d := top / root_name).is_dir()]
        for base in left:
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                base.rmdir()
        if not any(d.exists() for d in left) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------------------------
# pushing Spaces


def space_files(template: str | None = None, **files: str | bytes) -> dict[str, bytes]:
    """A template's files (``templates/NAME``) with some replaced or added (``files``: path -> content)."""
    out: dict[str, bytes] = {}
    if template:
        root = TEMPLATES / template
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = p.read_bytes()
    for name, content in files.items():
        out[name.replace("__", "/")] = content.encode() if isinstance(content, str) else content
    return out


def readme(sdk: str, *, app_file: str | None = None, title: str | None = None, **extra: str) -> str:
    lines = ["---", f"title: {title or 'Test ' + sdk}", f"sdk: {sdk}"]
    if sdk == "gradio":
        lines.append("sdk_version: 6.31.0")
    elif sdk == "streamlit":
        lines.append("sdk_version: 1.67.0")
    if app_file:
        lines.append(f"app_file: {app_file}")
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join([*lines, "---", "", f"# {title or 'Test'}", ""])


def upload(api: Any, repo_id: str, files: dict[str, bytes | str], message: str = "push") -> str:
    """One commit with these files (huggingface_hub ``create_commit``); returns the new revision."""
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=data.encode() if isinstance(data, str) else data)
           for name, data in files.items()]
    info = api.create_commit(repo_id, ops, commit_message=message, repo_type="space")
    return info.oid


def create_space(api: Any, repo_id: str, files: dict[str, bytes], *, sdk: str = "gradio", private: bool = False,
                 **kwargs: Any) -> str:
    api.create_repo(repo_id, repo_type="space", space_sdk=sdk, private=private, **kwargs)
    return upload(api, repo_id, files, "first version")


def runtime(api: Any, repo_id: str) -> Any:
    return api.get_space_runtime(repo_id)


def wait_stage(api: Any, repo_id: str, stages: str | set[str], *, timeout: float = 240,
               sha: str | None = None) -> Any:
    """Wait until the Space's stage is one of ``stages`` (and, with ``sha``, that revision is the one built).

    Fails fast when the Space settles in another stage (an error stage or RUNNING when waiting for an error),
    with the stage message and the tail of the build log in the assertion text.
    """
    wanted = {stages} if isinstance(stages, str) else set(stages)
    deadline = time.monotonic() + timeout
    last = None
    settled_since: float | None = None
    while time.monotonic() < deadline:
        last = api.get_space_runtime(repo_id)
        on_sha = sha is None or last.raw.get("sha") == sha
        if last.stage in wanted and on_sha:
            return last
        # a settled stage that is not the one wanted: give it a few seconds (a nudge may be on its way)
        if last.stage in SETTLED - wanted and on_sha:
            settled_since = settled_since or time.monotonic()
            if time.monotonic() - settled_since > 8:
                break
        else:
            settled_since = None
        time.sleep(0.2)
    raise AssertionError(
        f"{repo_id}: wanted stage {sorted(wanted)}{' at ' + sha[:7] if sha else ''}, got {last and last.stage} "
        f"(sha {last and str(last.raw.get('sha'))[:7]}): {last and last.raw.get('message')}\n"
        f"--- build log ---\n{logs(api, repo_id, build=True)[-3000:]}\n"
        f"--- run log ---\n{logs(api, repo_id, build=False)[-3000:]}")


def logs(api: Any, repo_id: str, *, build: bool) -> str:
    """The stored build or run log through the real client (``fetch_space_logs``, no follow)."""
    lines: list[str] = []
    try:
        for line in api.fetch_space_logs(repo_id, build=build, follow=False):
            lines.append(line)
    except Exception as e:  # keep what came before the error: a failing test's message must not itself fail
        lines.append(f"\n(reading the log failed: {e!r})\n")
    return "".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# talking to apps through the proxy


def subdomain(repo_id: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", repo_id.lower()).strip("-")


def app_host(server: Server, repo_id: str) -> str:
    return f"{subdomain(repo_id)}.localhost:{server.port}"


def app_client(server: Server, repo_id: str, timeout: float = 60, **headers: str) -> httpx.Client:
    """An httpx client to the public port with the Space's Host (Python here cannot resolve *.localhost)."""
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=timeout,
                        headers={"host": app_host(server, repo_id), **headers})


def app_get(server: Server, repo_id: str, path: str = "/", timeout: float = 60, **headers: str) -> httpx.Response:
    with app_client(server, repo_id, timeout) as c:
        return c.get(path, headers=headers)


def gradio_call(server: Server, repo_id: str, api_name: str, *args: Any, timeout: float = 60,
                headers: dict[str, str] | None = None) -> Any:
    """Call a Gradio endpoint over its HTTP API through the proxy (POST the call, read the SSE result)."""
    with app_client(server, repo_id, timeout) as c:
        r = c.post(f"/gradio_api/call/{api_name}", json={"data": list(args)}, headers=headers or {})
        r.raise_for_status()
        event_id = r.json()["event_id"]
        event = None
        with c.stream("GET", f"/gradio_api/call/{api_name}/{event_id}", headers=headers or {}) as resp:
            resp.raise_for_status()
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = line.split(":", 1)[1].strip()
                    if event == "error":
                        raise AssertionError(f"{api_name} failed in the app: {data}")
                    return json.loads(data)
    raise AssertionError(f"{api_name}: no result event")


async def storm(port: int, host: str, n: int, path: str = "/config") -> dict[Any, int]:
    """``n`` concurrent GETs (separate connections) to one Space through the proxy; status -> count."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                 limits=httpx.Limits(max_connections=n)) as c:
        results = await asyncio.gather(*(c.get(path, headers={"host": host}) for _ in range(n)),
                                       return_exceptions=True)
    counts: dict = {}
    for r in results:
        key = r.status_code if isinstance(r, httpx.Response) else type(r).__name__
        counts[key] = counts.get(key, 0) + 1
    return counts


@contextlib.contextmanager
def hosts_entries(*names: str, ip: str = "127.0.0.1") -> Iterator[None]:
    """Make ``names`` resolve to ``ip`` for this process and its children (lines in /etc/hosts, removed after).

    Only our own lines are removed (marked), under an exclusive lock, so other users of the file are untouched.
    """
    lines = [f"{ip} {n} {HOSTS_MARK}\n" for n in names]
    with _hosts_locked() as text:
        HOSTS_FILE.write_text(text + ("" if text.endswith("\n") or not text else "\n") + "".join(lines))
    try:
        yield
    finally:
        with _hosts_locked() as text:
            kept = [ln for ln in text.splitlines(keepends=True) if ln not in lines]
            HOSTS_FILE.write_text("".join(kept))


@contextlib.contextmanager
def _hosts_locked() -> Iterator[str]:
    with open("/var/tmp/.spaces-hosts.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield HOSTS_FILE.read_text()


@contextlib.contextmanager
def running_platform(base: Path, name: str, **kwargs: Any) -> Iterator[Platform]:
    """:func:`start_platform` (same arguments) for the length of a ``with`` block (a fixture's life), then stopped."""
    p = start_platform(base, name, **kwargs)
    try:
        yield p
    finally:
        p.stop()


def running_space(platform: Platform, actor: Any, repo_id: str, files: dict[str, bytes],
                  sdk: str = "gradio") -> tuple[str, dict]:
    """Push ``files`` as the Space ``repo_id``, wait until it runs; return its Space id and the local backend's
    record of its instance."""
    create_space(actor.api, repo_id, files, sdk=sdk)
    wait_stage(actor.api, repo_id, RUNNING, timeout=300)
    sid = space_id(actor, repo_id)
    return sid, instance_of(platform, sid)


def running_greeter(platform: Platform, actor: Any, repo_id: str, mark: str) -> tuple[str, dict]:
    """:func:`running_space` with the gradio greet app (apps/greet.py, ``MARK`` replaced)."""
    return running_space(platform, actor, repo_id, space_files(**{"README.md": readme("gradio"),
                                                                  "app.py": app_source("greet.py", MARK=mark)}))


def instance_logs(platform: Platform, space_id: str) -> list[Path]:
    """The per-instance log files the local backend wrote for this Space: one per instance ever started."""
    from spaces.runtime.sandbox import slug

    return sorted((platform.data_dir / "local" / "logs").glob(f"{slug(space_id)}-*.log"))


def space_id(actor: Any, repo_id: str) -> str:
    """The Space's row id (``_id`` in space_info), which names its instances in the local backend."""
    with actor.http() as c:
        r = c.get(f"/api/spaces/{repo_id}")
        r.raise_for_status()
        return r.json()["_id"]


def instance_states(platform: Platform) -> list[dict]:
    """The local backend's instance records (pid, port, uid, space id...) of this platform."""
    out = []
    for p in sorted((platform.data_dir / "local" / "run" / "instances").glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(p.read_text()))
    return out


def instance_of(platform: Platform, space_id: str) -> dict:
    found = [s for s in instance_states(platform) if s.get("space_id") == space_id]
    assert len(found) == 1, f"expected one instance of {space_id}, got {found}"
    return found[0]


def wait_for(fn: Any, timeout: float = 30, what: str = "condition") -> Any:
    return wait_until(fn, timeout=timeout, interval=0.1, what=what)


def wait_held(fn: Any, hold: float = 1.0, timeout: float = 60, what: str = "condition") -> None:
    """Wait until ``fn()`` has been true for ``hold`` seconds in a row. "No instance left" needs it: a start makes
    its instance's log file and cgroup a moment before its record, so one look can fall in that moment."""
    since: list[float] = []

    def held() -> bool:
        if not fn():
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= hold
    wait_until(held, timeout=timeout, interval=0.05, what=what)


def known_bug(reason: str) -> Any:
    """Marks a test that shows a server bug: xfail(strict) until fixed (a fix turns it into an XPASS failure, so
    the marker gets removed). ``SPACES_TEST_STRICT_BUGS=1`` runs these as plain tests, failing."""
    import pytest

    if os.environ.get("SPACES_TEST_STRICT_BUGS") == "1":
        return pytest.mark.usefixtures()
    return pytest.mark.xfail(reason=f"server bug: {reason}", strict=True)


def app_source(name: str, **replace: str) -> str:
    """The source of a test app in ``tests/platform/apps`` with ``{{KEY}}`` placeholders filled in."""
    text = (Path(__file__).with_name("apps") / name).read_text()
    for k, v in replace.items():
        text = text.replace("{{" + k + "}}", v)
    return text
