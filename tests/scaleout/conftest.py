"""The roles as separate processes: two of each (hub, proxy, builder, controller), real ``spaces serve --roles``
subprocesses on distinct ports, sharing one data dir, one PostgreSQL database (fresh per module) and one Redis
(a unique key prefix). Spaces run on the local backend, so the tests need root and hold the live lock
(``flock -o /tmp/spaces-live.lock``). Without PostgreSQL or Redis they are skipped saying why: the roles apart
need both (a SQLite data dir is one machine's, and the bus, the routes and the activity go through Redis).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import platform_kit as kit  # noqa: E402
from harness import (  # noqa: E402
    DATABASES, PG_ADMIN_URL, SHARED_ENVS_DIR, create_postgres_database, free_port, wait_until,
)
from scaleout_kit import LAYOUT, Cluster, Role  # noqa: E402

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _why_not() -> str:
    if "postgres" not in DATABASES:
        return ("the scale-out tests run the roles apart against PostgreSQL and Redis, as an operator spreading "
                "them over machines would (SPACES_TEST_DATABASES has no postgres)")
    if os.geteuid() != 0:
        return "the local backend needs root (sandbox uids, cgroups, namespaces)"
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer ({type(exc).__name__})"
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} does not answer ({type(exc).__name__})"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [i for i in items if "tests/scaleout" in str(i.fspath)]
    if mine and (reason := _why_not()):
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The roles of the module's ``LAYOUT`` (default: two of each) as processes, until the module ends."""
    layout = getattr(request.module, "LAYOUT", LAYOUT)
    base = kit.new_base("spaces-scaleout-")
    data_dir = base / "data"
    data_dir.mkdir(mode=0o711)
    database_url, drop = create_postgres_database("spaces_scaleout")
    prefix = f"spaces-test-{secrets.token_hex(4)}:"
    # uids, ports and cgroup root: the controllers claim a free block (spaces.runtime.tenancy), as in production;
    # the cgroup root is named after the data dir's instance id
    from spaces.runtime import tenancy

    uid_min = uid_max = 0
    cgroup_root = f"spaces-{tenancy.instance_id(data_dir)}"
    ports = {name: (free_port(), free_port()) for name, _ in layout}
    SHARED_ENVS_DIR.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "HF_", "HUGGING"))}
    env.update({
        "SPACES_DATA_DIR": str(data_dir),
        "SPACES_DATABASE_URL": database_url,
        "SPACES_REDIS_URL": REDIS_URL,
        "SPACES_REDIS_PREFIX": prefix,
        "SPACES_APPS_DOMAIN": f"localhost:{ports['proxy1'][0] if 'proxy1' in ports else 8000}",
        "SPACES_HUB_UPSTREAM": f"127.0.0.1:{ports['hub1'][0]}",
        "SPACES_LOCAL_BUILD__ENVS_DIR": str(SHARED_ENVS_DIR),
        "SPACES_RUNTIME__SWEEP_SECONDS": "1",
        "SPACES_RUNTIME__SLEEP_SWEEP_SECONDS": "1",
        "SPACES_RUNTIME__STOP_FROZEN_AFTER": "0",  # asleep means stopped: a wake is a real start, countable
        "SPACES_RUNTIME__BACKSTOP_SECONDS": "2",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONUNBUFFERED": "1",
    })
    c = Cluster(base, data_dir, env, prefix, uid_min, uid_max, cgroup_root)
    for name, roles in layout:
        log_path = Path(tempfile.mkstemp(prefix=f"spaces-scaleout-{name}-", suffix=".log")[1])
        c.roles[name] = Role(name, roles, ports[name][0], ports[name][1], env, log_path)
    try:
        c["hub1"].start()  # alone first: it migrates the fresh database
        c["hub1"].wait_alive()
        for name, _ in layout[1:]:
            c[name].start()
        for name, _ in layout[1:]:
            c[name].wait_alive()
        if any(r.roles == "controller" for r in c.roles.values()):
            wait_until(c.leader, timeout=60, what="a controller to lead")
        yield c
    finally:
        for role in c.roles.values():
            role.stop()
        kit.stop_instances(data_dir / "local", cgroup_root)
        kit.remove_cgroups(cgroup_root)
        from harness import kill_space_processes

        kill_space_processes(data_dir)
        drop()
        with contextlib.suppress(Exception):
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            for key in r.scan_iter(f"{prefix}*"):
                r.delete(key)
        shutil.rmtree(base, ignore_errors=True)
        for role in c.roles.values():
            role.log_path.unlink(missing_ok=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    c = getattr(item, "funcargs", {}).get("cluster")
    if rep.failed and isinstance(c, Cluster):
        rep.sections.append(("role logs", c.logs_on_failure()))


@pytest.fixture(scope="module")
def owner(cluster: Cluster):  # noqa: ANN201
    """A user with a write token, and an HfApi per hub."""
    from huggingface_hub import HfApi

    token = cluster.cli("token", "create", "olga").stdout.strip()

    class Owner:
        name = "olga"

    o = Owner()
    o.token = token
    o.api1 = HfApi(endpoint=cluster["hub1"].url, token=token)
    o.api2 = HfApi(endpoint=cluster["hub2"].url, token=token)
    return o
