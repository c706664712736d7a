"""The event bus (spaces.bus): in memory, and across two processes' worth of RedisBus on a real Redis."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from spaces.bus import MemoryBus

REDIS_URL = os.environ.get("SPACES_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def test_memory_bus_delivers_to_each_subscriber_until_it_unsubscribes():
    bus = MemoryBus()
    a, b = [], []
    stop_a = bus.subscribe("nudge", a.append)
    bus.subscribe("nudge", b.append)
    bus.subscribe("other", lambda m: pytest.fail("wrong channel"))
    bus.publish("nudge", {"space_id": "x"})
    stop_a()
    bus.publish("nudge", {"space_id": "y"})
    assert a == [{"space_id": "x"}]
    assert b == [{"space_id": "x"}, {"space_id": "y"}]


def test_a_failing_subscriber_does_not_cost_the_others_their_message():
    bus = MemoryBus()
    got = []
    bus.subscribe("c", lambda m: 1 / 0)
    bus.subscribe("c", got.append)
    bus.publish("c", {"n": 1})
    assert got == [{"n": 1}]


@pytest.fixture
def redis_buses():
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    from spaces.bus import RedisBus

    prefix = f"spaces-test-{uuid.uuid4().hex}:"
    made = []

    def make():
        made.append(RedisBus(REDIS_URL, prefix=prefix))
        return made[-1]

    yield make
    for bus in made:
        bus.close()


def test_redis_bus_reaches_other_processes_and_its_own_once(redis_buses):
    one, two = redis_buses(), redis_buses()
    got_one, got_two = [], []
    both = threading.Barrier(3, timeout=5)
    one.subscribe("ready", lambda m: (got_one.append(m), both.wait()))
    two.subscribe("ready", lambda m: (got_two.append(m), both.wait()))
    one.publish("ready", {"space_id": "s1"})
    both.wait()
    assert got_one == got_two == [{"space_id": "s1"}]
    assert one.ping()


def test_redis_buses_with_other_prefixes_do_not_hear_each_other(redis_buses):
    from spaces.bus import RedisBus

    mine = redis_buses()
    other = RedisBus(REDIS_URL, prefix=f"spaces-test-{uuid.uuid4().hex}:")
    heard, done = [], threading.Event()
    try:
        other.subscribe("nudge", heard.append)
        mine.subscribe("nudge", lambda m: done.set())
        mine.publish("nudge", {"space_id": None})
        assert done.wait(5)
        assert heard == []
    finally:
        other.close()
