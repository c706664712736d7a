"""The ``spaces`` command line: run the platform and administer accounts.

Every command reads the same Settings (``SPACES_*`` environment variables; ``--data-dir`` overrides). Given
neither ``--data-dir`` nor ``SPACES_DATA_DIR``, an operator command uses the ``spaces serve`` running on this
machine (``spaces.announce``) and says which on stderr, so ``spaces token create alice`` finds the database that
the server uses.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from spaces.errors import SpacesError
from spaces.settings import Settings

app = typer.Typer(help="spaces: a self-hostable Hugging Face Spaces.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
token_app = typer.Typer(help="Access tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(user_app, name="user")
app.add_typer(org_app, name="org")

err = Console(stderr=True)
DataDir = typer.Option(None, "--data-dir", help="data directory (default: $SPACES_DATA_DIR, else the one of the "
                       "spaces server running here, else /var/lib/spaces as root and ~/.spaces otherwise)")


def settings_with(**overrides: object) -> Settings:
    """The settings from the environment with the command line's overrides; a bad value ends the command with
    one line per problem, naming the variable to fix (never a traceback)."""
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = [f"SPACES_{'__'.join(str(part) for part in e['loc']).upper()}: {e['msg']} (got {e.get('input')!r})"
                    for e in exc.errors()]
        fail("bad settings:\n  " + "\n  ".join(problems))
        raise  # unreachable: fail() exits


def operator_settings(data_dir: Optional[Path], port: Optional[int] = None) -> Settings:
    """The settings of the instance an operator command acts on: the explicit one, else the server running here."""
    if data_dir is not None or os.environ.get("SPACES_DATA_DIR"):
        return settings_with(data_dir=data_dir, port=port)
    found = _running_server()
    if found is None:
        return settings_with(port=port)
    return settings_with(data_dir=Path(found.data_dir), port=port or found.port)


@functools.lru_cache(maxsize=1)
def _running_server():  # noqa: ANN202
    """The one ``spaces serve`` announced on this machine (said once on stderr), or None."""
    from spaces import announce

    live = announce.running()
    if not live:
        return None
    if len(live) > 1:
        fail("several spaces servers run on this machine; pass --data-dir for the one you mean:\n  "
             + "\n  ".join(a.describe() for a in live))
    found = live[0]
    if found.database != "sqlite" and not os.environ.get("SPACES_DATABASE_URL"):
        fail(f"the spaces server at {found.describe()} uses a {found.database} database: set SPACES_DATABASE_URL "
             "as it has it")
    if not os.access(found.data_dir, os.R_OK | os.X_OK):
        fail(f"the spaces server at {found.describe()} keeps its data where this user cannot read: run this "
             "command as the user that runs the server (e.g. with sudo)")
    err.print(f"using the spaces server at {found.describe()}", highlight=False)
    return found


def _db(data_dir: Optional[Path]):  # noqa: ANN202
    from spaces.hub.app import build_hub

    return build_hub(operator_settings(data_dir)).db


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)  # one line, whatever the terminal's width
    raise typer.Exit(1)


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="listen address (default 127.0.0.1)"),
          port: Optional[int] = typer.Option(None, help="listen port (default 8000): the proxy's when this process "
                                             "runs it, else the hub's"),
          data_dir: Optional[Path] = DataDir,
          roles: Optional[str] = typer.Option(None, help="what this process runs, comma separated: hub, proxy, "
                                              "builder, controller (default all four; $SPACES_ROLES). Roles in "
                                              "separate processes need SPACES_REDIS_URL"),
          ops_port: Optional[int] = typer.Option(None, "--ops-port", help="without the hub: serve /healthz, "
                                                 "/readyz and /metrics on this port ($SPACES_OPS_PORT)"),
          log_level: str = typer.Option("info", help="log level: debug, info, warning")) -> None:
    """Run the platform: hub API, git, web pages, builder, runtime and the Spaces' public URLs (all in one process
    by default; --roles runs a part of it, see "Running the roles separately" in the README)."""
    import asyncio
    import logging

    from spaces.malloc import limit_arenas

    limit_arenas()  # before any thread: see spaces/malloc.py
    from spaces.platform import Platform, parse_roles

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_with(host=host, port=port, data_dir=data_dir, roles=roles, ops_port=ops_port)
    try:
        chosen = parse_roles(settings.roles)
    except SpacesError as exc:
        fail(exc.message)
    listens = bool(chosen & {"hub", "proxy"})
    # before anything starts: a second server on a busy port must not touch the data dir (repair, reconcile)
    if listens:
        _check_listen(settings.host, settings.port)
    if settings.ops_port and "hub" not in chosen:
        _check_listen(settings.host, settings.ops_port)
    try:
        platform = Platform(settings, chosen)
    except SpacesError as exc:
        fail(exc.message)
    where = f"serving on [bold]{settings.hub_url}[/] · apps at {settings.app_host('<space>')}"
    if chosen != {"hub", "proxy", "builder", "controller"}:
        where = f"roles {','.join(r for r in ('hub', 'proxy', 'builder', 'controller') if r in chosen)}" + (
            f" on {settings.host}:{settings.port}" if listens else "") + (
            f" · ops on {settings.host}:{settings.ops_port}" if settings.ops_port and "hub" not in chosen else "")
    err.print(f"[bold magenta]spaces[/] {where} · {settings.runtime.backend} backend · data in "
              f"{settings.data_path}")
    from spaces import announce

    database = settings.database_url.split(":", 1)[0].split("+", 1)[0] if settings.database_url else "sqlite"
    listen = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"
    # operator commands find the instance through a process that serves the hub here
    notice = announce.announce(listen, settings.port, settings.data_path, database) if "hub" in chosen else None
    # uvicorn stops the platform on SIGTERM, then raises the signal again for the handler it found: make that one
    # an orderly exit, so the announcement is withdrawn (the default would end the process on the spot)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(platform.serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port was taken between the check and the bind
        if exc.errno not in _LISTEN_ERRORS:
            raise
        fail(_listen_failure(settings.host, settings.port, exc))
    except SpacesError as exc:  # e.g. a backend that cannot be reached when the platform adopts what runs
        fail(exc.message)
    finally:
        if notice is not None:
            announce.withdraw(notice)


_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def _check_listen(host: str, port: int) -> None:
    """Fail in one line when the public port cannot be bound (taken, privileged, not an address of this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own bind: TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno not in _LISTEN_ERRORS:
                raise
            fail(_listen_failure(host, port, exc))


def _listen_failure(host: str, port: int, exc: OSError) -> str:
    why = {errno.EADDRINUSE: "the port is already in use (another spaces server?); pick another with --port",
           errno.EACCES: "permission denied; ports below 1024 need root",
           errno.EADDRNOTAVAIL: "that address is not one of this machine's; see --host"}[exc.errno]
    return f"cannot listen on {host}:{port}: {why}"


@token_app.command("create")
def token_create(user: str = typer.Argument(..., help="user name; created if it does not exist"),
                 role: str = typer.Option("write", help="read or write"),
                 name: str = typer.Option("cli", help="a label for the token"),
                 data_dir: Optional[Path] = DataDir) -> None:
    """Create an access token and print it (only the token, on stdout, for scripts)."""
    from spaces.services import accounts

    try:
        with _db(data_dir).session() as s:
            account = accounts.ensure_user(s, user)
            token = accounts.create_token(s, account, role=role, name=name)
    except SpacesError as exc:
        fail(exc.message)
    print(token)


@user_app.command("create")
def user_create(name: str, admin: bool = typer.Option(False, "--admin", help="make the user an administrator"),
                data_dir: Optional[Path] = DataDir) -> None:
    """Create a user (or make an existing user an admin with --admin)."""
    from spaces.services import accounts

    try:
        with _db(data_dir).session() as s:
            account = accounts.ensure_user(s, name)
            account.is_admin = account.is_admin or admin
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"user [bold]{name}[/] ready{' (admin)' if admin else ''}")


@user_app.command("set-password")
def user_set_password(name: str, data_dir: Optional[Path] = DataDir) -> None:
    """Set a user's web sign-in password (asked on the terminal, or read from stdin when piped)."""
    from spaces.hub.pages.passwords import hash_password
    from spaces.services import accounts

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True) if sys.stdin.isatty() \
        else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        fail("Use at least 8 characters.")
    try:
        with _db(data_dir).session() as s:
            accounts.ensure_user(s, name).password_hash = hash_password(password)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"password set for [bold]{name}[/]")


@org_app.command("create")
def org_create(name: str, member: list[str] = typer.Option([], "--member", help="user to add (repeatable)"),
               role: str = typer.Option("write", help="role of the added members: read, write or admin"),
               data_dir: Optional[Path] = DataDir) -> None:
    """Create an organization (if needed) and add members."""
    from spaces.services import accounts

    try:
        with _db(data_dir).session() as s:
            org = accounts.find_account(s, name) or accounts.create_account(s, name, type="org")
            if org.type != "org":
                fail(f"'{name}' is a user, not an organization.")
            for m in member:
                accounts.add_member(s, org, accounts.ensure_user(s, m), role)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"organization [bold]{name}[/] ready with {len(member)} member(s) added")


def _capacity(settings: Settings):  # noqa: ANN202
    from spaces.runtime.capacity import Capacity
    from spaces.runtime.flavors import FlavorCatalog
    from spaces.runtime.nodes import detect_local_node, node_from_config

    nodes = [node_from_config(n) for n in settings.nodes.nodes]
    if settings.nodes.detect_local:
        nodes.insert(0, detect_local_node(labels=settings.nodes.local_labels, reserved_cpu=settings.nodes.reserved_cpu,
                                          reserved_memory_mb=settings.nodes.reserved_memory_mb))  # as the server
    return Capacity(FlavorCatalog(settings.flavors), nodes, settings.quotas, settings.scheduler.policy())


@app.command()
def nodes(data_dir: Optional[Path] = DataDir,
          as_json: bool = typer.Option(False, "--json", help="the report as JSON (as GET /api/admin/nodes)")) -> None:
    """Nodes with their capacity and what running Spaces hold on them, and the queue."""
    from rich.table import Table

    settings = operator_settings(data_dir)
    capacity = _capacity(settings)
    with _db(data_dir).session() as s:
        rows, queue = capacity.nodes_report(s), capacity.queue_report(s)
    if as_json:
        import json

        print(json.dumps({"nodes": rows, "queue": queue}, indent=2))
        return
    table = Table(title="nodes (requests of awake Spaces / what the node offers, overcommit included)")
    for col in ("node", "backend", "cpu requested/offered", "memory requested/offered", "GPUs", "awake Spaces",
                "asleep", "static"):
        table.add_column(col)
    for n in rows:
        gpus = ", ".join(f"{g['index']}:{g['model']}{'*' if g['used'] else ''}" for g in n["gpus"]) or "-"
        a, u = n["allocatable"], n["used"]
        table.add_row(n["name"], n["backend"], f"{u['cpu']:g}/{a['cpu']:g} ({n['cpu']:g} cores x{a['cpuOvercommit']:g})",
                      f"{u['memoryMB']}/{a['memoryMB']} MB", gpus, str(u["spaces"]), str(u["asleep"]),
                      str(u["static"]))
    Console().print(table)
    for q in queue:
        Console().print(f"waiting: {q['id']} ({q['flavor']}) since {q['since']}: {q['message']}")


@app.command()
def usage(account: str, data_dir: Optional[Path] = DataDir) -> None:
    """This month's usage and quota of a user or organization."""
    import json

    from spaces.services import accounts

    settings = operator_settings(data_dir)
    with _db(data_dir).session() as s:
        acc = accounts.find_account(s, account)
        if acc is None:
            fail(f"No account named {account}.")
        print(json.dumps(_capacity(settings).report(s, acc), indent=2))


@app.command()
def grant(account: str, key: str = typer.Argument(..., help="running:<flavor>, running:*, gpu_minutes or "
                                                             "credits_micro_usd"),
          value: int = typer.Argument(..., help="the limit; -1 for unlimited"),
          data_dir: Optional[Path] = DataDir) -> None:
    """Grant an account more quota, e.g. `spaces grant alice running:t4-small 1`."""
    from spaces.runtime.quotagrants import set_grant
    from spaces.services import accounts

    try:
        with _db(data_dir).session() as s:
            acc = accounts.find_account(s, account)
            if acc is None:
                fail(f"No account named {account}.")
            set_grant(s, acc, key, value)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"{account}: {key} = {'unlimited' if value < 0 else value}")


@app.command()
def sleep(space: str = typer.Argument(..., help="OWNER/NAME"),
          url: Optional[str] = typer.Option(None, help="the running server (default http://127.0.0.1:PORT)"),
          port: Optional[int] = typer.Option(None, help="port of the running server"),
          data_dir: Optional[Path] = DataDir) -> None:
    """Put a running Space to sleep now (operators, tests and benchmarks)."""
    _operator_call(space, "sleep", url=url, port=port, data_dir=data_dir)
    err.print(f"[bold]{space}[/] is going to sleep; the next visit wakes it")


def _operator_call(space: str, action: str, *, url: Optional[str], port: Optional[int],
                   data_dir: Optional[Path]) -> dict:
    """Call ``POST /api/spaces/{space}/{action}`` on the running server as the Space's owner.

    The CLI acts for the operator, who owns the database: it mints a token for the owner, uses it once and
    revokes it, so no long-lived credential is left behind.
    """
    import httpx

    from spaces.db.models import Token
    from spaces.services import accounts

    settings = operator_settings(data_dir, port)
    db = _db(data_dir)
    with db.session() as s:
        from spaces.services.spaces import SpaceService

        row = SpaceService(settings.repos_path).find(s, space)
        if row is None:
            fail(f"No Space named {space}.")
        from spaces.db.models import Account

        owner = row.owner if row.owner.type == "user" else s.get(Account, row.created_by or "")
        if owner is None or owner.type != "user":
            owner = accounts.ensure_user(s, "spaces-operator")
            owner.is_admin = True
        token = accounts.create_token(s, owner, role="write", name="spaces-cli (ephemeral)")
    try:
        base = url or f"http://127.0.0.1:{settings.port}"
        resp = httpx.post(f"{base}/api/spaces/{space}/{action}", headers={"authorization": f"Bearer {token}"},
                          timeout=30)
    except httpx.HTTPError as exc:
        fail(f"Could not reach the server at {base}: {exc}. Is `spaces serve` running? Pass --url or --port.")
    finally:
        with db.session() as s:
            for t in s.query(Token).filter(Token.token_hash == accounts.hash_token(token)):
                s.delete(t)
    if resp.status_code >= 400:
        fail(resp.headers.get("x-error-message") or resp.text)
    return resp.json()


@app.command()
def backup(dest: Path = typer.Argument(..., help="a new directory for the backup (created 0700)"),
           data_dir: Optional[Path] = DataDir) -> None:
    """Copy a live instance: its database in one snapshot, then every Space's repository. Safe while it serves."""
    from spaces.services import backup as backups

    settings = operator_settings(data_dir)
    try:
        manifest = backups.backup(settings.db_url, settings.repos_path, settings.data_path, dest)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"backed up {manifest['tables'].get('spaces', 0)} Spaces and "
              f"{manifest['tables'].get('accounts', 0)} accounts of {settings.data_path} into {dest}")


@app.command()
def restore(src: Path = typer.Argument(..., help="a directory written by `spaces backup`"),
            data_dir: Optional[Path] = DataDir) -> None:
    """Fill a fresh instance (empty database, server not running) from a backup; every Space is built again."""
    from spaces.services import backup as backups

    settings = settings_with(data_dir=data_dir)
    try:
        manifest = backups.restore(settings.db_url, settings.repos_path, settings.data_path, src)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"restored {manifest['tables'].get('spaces', 0)} Spaces from {src} (taken {manifest['created_at']}) "
              f"into {settings.data_path}; `spaces serve` builds them again")


@app.command()
def gc(data_dir: Optional[Path] = DataDir,
       grace_hours: float = typer.Option(24.0, "--grace-hours", min=0.0,
                                         help="keep what was stored or reused this recently (uploads in progress)"),
       dry_run: bool = typer.Option(False, "--dry-run", help="count what would go, remove nothing")) -> None:
    """Remove the Xet data (xorbs, file records) and the Git LFS objects that no commit of any repository
    references any more: deleted repositories, files deleted and squashed out of history. Safe while the server
    runs; waits for a backup."""
    from spaces.services.collect import collect_all
    from spaces.storage.objects import objects_root
    from spaces.xet.store import xet_root

    settings = operator_settings(data_dir)
    if not xet_root(settings.data_path).is_dir() and not objects_root(settings.repos_path).is_dir():
        fail(f"No Xet data or LFS objects in {settings.data_path}: nothing to collect.")
    try:
        done, lfs = collect_all(settings.repos_path, settings.data_path, grace_hours * 3600, dry_run=dry_run)
    except SpacesError as exc:
        fail(exc.message)
    verb = "would remove" if dry_run else "removed"
    err.print(f"{verb} {done.xorbs} xorbs ({done.xorb_bytes / (1 << 20):.1f} MiB), {done.files} Xet files, "
              f"{done.links} links, {done.dedupe} dedupe entries, {done.temporaries} temporary files, "
              f"{lfs.objects} LFS objects ({lfs.object_bytes / (1 << 20):.1f} MiB); "
              f"{done.kept_xorbs} xorbs, {lfs.kept} LFS objects kept")


# ---- spaces down (spaces.runtime.teardown, spaces.services.down) ---------------------------------------------------
@app.command()
def down(data_dir: Optional[Path] = DataDir,
         force: bool = typer.Option(False, "--force", help="go on although a `spaces serve` of this data dir runs "
                                    "(it starts its Spaces again at their next visit)")) -> None:
    """Stop every Space of this instance and remove what it put on the host: the Spaces' processes, their disk
    mounts, cgroups and firewall rules, its claim on uids and ports. The database, the repositories and the
    Spaces' files stay; after the next `spaces serve` each Space starts at its first visit."""
    from spaces import announce
    from spaces.services.down import mark_down

    settings = operator_settings(data_dir)
    serving = [a for a in announce.running() if Path(a.data_dir) == settings.data_path]
    if serving and not force:
        fail(f"a spaces server of this data dir runs: {serving[0].describe()}. Stop it first (SIGTERM, or Ctrl-C), "
             "or pass --force")
    if not (settings.data_path / "instance-id").exists():
        fail(f"no spaces instance in {settings.data_path}: nothing to take down")
    from spaces.db.session import Database

    db = Database(settings.db_url)  # the database alone: build_hub would start the log writer, which outlives us
    db.migrate()
    changed = mark_down(db)
    db.engine.dispose()
    try:
        report, what = _down_backend(settings)
    except SpacesError as exc:
        fail(exc.message)
    err.print(f"{what}; {changed} Space(s) marked stopped (each starts at its first visit after `spaces serve`). "
              f"The database and repositories in {settings.data_path} stay.", soft_wrap=True)
    if report.note:
        err.print(report.note, soft_wrap=True)
    for problem in report.problems:
        err.print(f"[red]problem:[/red] {problem}", soft_wrap=True)
    if report.problems:
        raise typer.Exit(1)


def _down_backend(settings: Settings):  # noqa: ANN202
    from spaces.runtime import teardown, tenancy
    from spaces.runtime.contracts import LABEL_PLATFORM

    if settings.runtime.backend == "local":
        # the containers first: they run under the local backend's cgroup root, which down_local removes
        docker = _down_docker_spaces(settings)
        r = teardown.down_local(settings.local, settings.data_path)
        if docker:
            r.stopped += docker.stopped  # its Docker Spaces' containers count among its instances
            r.problems += docker.problems
        if r.note:  # no host-wide names of its own to remove
            return r, f"stopped {r.stopped} instance(s), unmounted {r.unmounted} disk(s)"
        return r, (f"stopped {r.stopped} instance(s) ({r.killed} straggler(s) killed), unmounted {r.unmounted} "
                   f"disk(s), removed the firewall chains{'' if r.chains else ' (some left)'} and the cgroup root "
                   f"{r.cgroup_root}{', released the host registry claim' if r.unclaimed else ''}")
    from spaces.platform import make_backend

    r = teardown.down_labelled(make_backend(settings), {LABEL_PLATFORM: tenancy.instance_id(settings.data_path)})
    return r, f"stopped {r.stopped} {settings.runtime.backend} instance(s)"


def _down_docker_spaces(settings: Settings):  # noqa: ANN202
    """The default set-up's Docker Spaces (``SPACES_RUNTIME__DOCKER_SPACES``, even turned off since they ran):
    their containers, where an engine answers (none answering: it runs none of them now)."""
    from spaces.platform import DockerSpaces
    from spaces.runtime import teardown, tenancy
    from spaces.runtime.backends.docker import DockerBackend
    from spaces.runtime.contracts import LABEL_PLATFORM

    if DockerSpaces(settings).probe.problem():
        return None
    return teardown.down_labelled(DockerBackend(settings.docker),
                                  {LABEL_PLATFORM: tenancy.instance_id(settings.data_path)})


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
