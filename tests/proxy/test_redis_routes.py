"""The Redis route table against a real Redis server (127.0.0.1:6379, or SPACES_TEST_REDIS_URL)."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from spaces.proxy.routes import Route

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def tables():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    from spaces.proxy.redis_routes import RedisRouteTable

    prefix = f"spaces-test-{uuid.uuid4().hex}:"
    made = []

    def make():
        table = RedisRouteTable(REDIS_URL, prefix=prefix)
        made.append(table)
        return table

    yield make
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(f"{prefix}routes")
    for table in made:
        table.close()


def _eventually(fn, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "not propagated"
        time.sleep(0.01)


def test_put_get_delete_all(tables):
    t = tables()
    route = Route("alice/demo", ("127.0.0.1", 7860), "running", private=True, owner_id="u1", title="alice/demo")
    t.put("Alice-Demo", route)
    assert t.get("alice-demo") == route
    assert t.all() == {"alice-demo": route}
    t.delete("alice-demo")
    assert t.get("alice-demo") is None and t.all() == {}
    t.delete("never-there")  # not an error


def test_changes_reach_another_instance_and_a_late_one_loads_everything(tables):
    a, b = tables(), tables()
    a.put("demo", Route("alice/demo", None, "sleeping"))
    _eventually(lambda: b.get("demo") is not None)
    assert b.get("demo").state == "sleeping"
    a.put("demo", Route("alice/demo", ("127.0.0.1", 9000), "running"))
    _eventually(lambda: b.get("demo").state == "running")
    assert b.get("demo").upstream == ("127.0.0.1", 9000)
    late = tables()
    assert late.get("demo") == a.get("demo")
    b.delete("demo")
    _eventually(lambda: a.get("demo") is None and late.get("demo") is None)


def test_a_proxy_on_a_redis_table_routes_what_another_replica_wrote(tables, make_proxy, upstreams):
    mine, other = tables(), tables()
    proxy = make_proxy(routes=mine)
    other.put("shared", Route("alice/shared", upstreams["app-b"].addr, "running"))
    _eventually(lambda: mine.get("shared") is not None)
    with proxy.client("shared") as c:
        assert c.get("/headers").json()["upstream"] == "app-b"
    # the gate now remembers that host's target: another replica's change must still reach the next request
    other.put("shared", Route("alice/shared", upstreams["app-a"].addr, "running"))
    _eventually(lambda: mine.get("shared").upstream == upstreams["app-a"].addr)
    with proxy.client("shared") as c:
        assert c.get("/headers").json()["upstream"] == "app-a"
    other.delete("shared")
    _eventually(lambda: mine.get("shared") is None)
    with proxy.client("shared") as c:
        assert c.get("/headers").status_code == 404


def test_every_change_to_the_cache_moves_the_version(tables):
    a, b = tables(), tables()
    seen = [b.version]
    for change in (lambda: a.put("demo", Route("alice/demo", None, "sleeping")),
                   lambda: a.put("demo", Route("alice/demo", ("127.0.0.1", 9000), "running")),
                   lambda: a.delete("demo")):
        change()
        _eventually(lambda: b.version != seen[-1])  # through the subscription
        seen.append(b.version)
    assert a.version >= 3
