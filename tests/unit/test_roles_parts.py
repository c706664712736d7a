"""The parts the roles apart are made of, on a real Redis where they use one: wakes that learn of readiness over
the bus or the shared route table, activity stamps shared between proxies, static Spaces served by whichever
proxy gets them, and ``spaces serve --roles`` refusing what cannot work in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from harness import spaces_command, wait_until

from spaces.bus import MemoryBus
from spaces.errors import SpacesError
from spaces.platform import parse_roles
from spaces.proxy.activity import Activity, ActivityFlusher, SharedActivity
from spaces.proxy.routes import MemoryRouteTable, Route
from spaces.proxy.static_routes import StaticRoutes
from spaces.services.wake import BusReadiness

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    prefix = f"spaces-test-{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_roles_are_checked() -> None:
    assert parse_roles("hub, Proxy") == {"hub", "proxy"}
    with pytest.raises(SpacesError, match="unknown role.*hubb.*choose from hub, proxy, builder, controller"):
        parse_roles("hubb,proxy")
    with pytest.raises(SpacesError):
        parse_roles(" , ")


def test_a_wake_hears_ready_on_the_bus_and_nudges_the_controller() -> None:
    bus, routes = MemoryBus(), MemoryRouteTable()
    nudges, woke = [], threading.Event()
    bus.subscribe("nudge", nudges.append)
    readiness = BusReadiness(bus, routes, poll_seconds=0.05)
    try:
        readiness("s1", woke.set)
        assert nudges == [{"space_id": "s1"}]
        bus.publish("ready", {"space_id": "other"})
        assert not woke.wait(0.2)
        bus.publish("ready", {"space_id": "s1"})
        assert woke.wait(1)
    finally:
        readiness.close()


def test_a_wake_whose_ready_message_was_lost_sees_the_route_turn_running() -> None:
    bus, routes = MemoryBus(), MemoryRouteTable()
    woke = threading.Event()
    readiness = BusReadiness(bus, routes, poll_seconds=0.05)
    try:
        routes.put("a-b", Route("s1", None, "starting"))
        readiness("s1", woke.set)
        assert not woke.wait(0.3)
        routes.put("a-b", Route("s1", ("127.0.0.1", 1234), "running"))  # no "ready" message on the bus
        assert woke.wait(2)
    finally:
        readiness.close()


def test_activity_seen_by_one_proxy_is_what_the_sleeper_reads_elsewhere(redis_prefix) -> None:
    proxy_a, proxy_b = Activity(), Activity()
    flush_a = ActivityFlusher(proxy_a, REDIS_URL, prefix=redis_prefix, interval=0.05)
    flush_b = ActivityFlusher(proxy_b, REDIS_URL, prefix=redis_prefix, interval=0.05)
    controller = SharedActivity(REDIS_URL, prefix=redis_prefix)
    flush_a.start()
    flush_b.start()
    try:
        assert controller.last_seen("s1") is None
        proxy_a.touch("s1")
        first = wait_until(lambda: controller.last_seen("s1"), timeout=5, what="proxy A's stamp")
        assert abs(first - time.time()) < 5
        time.sleep(0.2)
        proxy_b.touch("s1")  # only B sees the Space now
        wait_until(lambda: controller.last_seen("s1") > first, timeout=5, what="proxy B's newer stamp")
        newest = controller.last_seen("s1")
        for flusher in (flush_a, flush_b):  # from here on only this test flushes: no background flush races it
            flusher._stop.set()
            flusher._thread.join(5)
        proxy_a.stamps["s1"] -= 100  # an older stamp flushed later never moves it back (ZADD GT)
        assert flush_a.flush() == 1
        assert controller.last_seen("s1") == newest
        controller.forget("s1")
        assert controller.last_seen("s1") is None
    finally:
        flush_a.close()
        flush_b.close()
        controller.close()


def test_a_static_route_is_served_by_this_process_file_server(tmp_path: Path) -> None:
    inner, roots = MemoryRouteTable(), {}
    routes = StaticRoutes(inner, roots)
    routes.address = ("127.0.0.1", 4321)
    inner.put("a-site", Route("s1", ("10.0.0.9", 80), "running", static_root=str(tmp_path), app_file="home.html"))
    inner.put("a-app", Route("s2", ("127.0.0.1", 9), "running"))
    got = routes.get("a-site")
    assert got.upstream == ("127.0.0.1", 4321) and roots["a-site"] == (tmp_path, "home.html")
    assert routes.get("a-site") is got  # the same object while the table's route is the same: no allocation
    assert routes.get("a-app") is inner.get("a-app")
    routes.delete("a-site")
    assert routes.get("a-site") is None and "a-site" not in roots


def test_roles_apart_without_redis_are_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACES_")}
    env["SPACES_ANNOUNCE_DIR"] = str(tmp_path / "announce")
    done = subprocess.run([*spaces_command(), "serve", "--roles", "hub", "--port", "0", "--data-dir",
                           str(tmp_path / "data")], capture_output=True, text=True, timeout=120, env=env)
    said = " ".join(done.stderr.split())
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "error: running only some roles (hub) needs Redis" in said and "SPACES_REDIS_URL" in said, said
    assert "Traceback" not in done.stdout + done.stderr
    bad = subprocess.run([*spaces_command(), "serve", "--roles", "web", "--data-dir", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1 and "error: unknown role(s) web" in " ".join(bad.stderr.split()), bad.stderr


PRELOAD = """
import sys
from spaces.platform import preload_backend
from spaces.settings import Settings
watched = ("kubernetes.client.api.apps_v1_api", "kubernetes.client.api.core_v1_api",
           "kubernetes.client.api.networking_v1_api", "docker")
before = [m for m in watched if m in sys.modules]
preload_backend(Settings(runtime={"backend": sys.argv[1]}))
print(before, [m for m in watched if m in sys.modules])
"""


@pytest.mark.parametrize("backend, loaded", [
    ("kubernetes", "['kubernetes.client.api.apps_v1_api', 'kubernetes.client.api.core_v1_api', "
                   "'kubernetes.client.api.networking_v1_api']"),
    ("docker", "['docker']")])
def test_a_standby_controller_has_its_backend_client_loaded_before_it_is_elected(backend, loaded) -> None:
    """A takeover must not wait for imports: on a loaded node the Kubernetes client's API classes took 10-20 s."""
    pytest.importorskip(backend if backend == "docker" else "kubernetes")
    out = subprocess.run([sys.executable, "-c", PRELOAD, backend], capture_output=True, text=True, timeout=120,
                         check=True).stdout.strip()
    assert out == f"[] {loaded}"
