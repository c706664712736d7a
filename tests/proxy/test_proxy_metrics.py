"""The proxy's request outcomes and wakes, as Prometheus reads them (``spaces.metrics``, official parser)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families


def scrape() -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def outcome(samples: dict, name: str) -> float:
    return samples.get(("spaces_proxy_requests_total", (("outcome", name),)), 0.0)


def wakes(samples: dict, tier: str, result: str = "ok") -> float:
    return samples.get(("spaces_wakes_total", (("result", result), ("tier", tier))), 0.0)


def moved(before: dict, after: dict) -> dict[str, float]:
    return {k: outcome(after, k) - outcome(before, k) for k in ("proxied", "woken", "held", "refused")}


def test_each_outcome_counts_once_per_request(proxy, upstreams):
    proxy.put("sleepy", "alice/sleepy", None, "sleeping")
    proxy.controls.wake_to["alice/sleepy"] = ("sleepy", upstreams["app-a"].addr)
    proxy.put("stopped", "alice/stopped", None, "paused")
    before = scrape()
    with proxy.client("demo") as c:
        assert [c.get("/headers").status_code for _ in range(5)] == [200] * 5  # the first fills the hot cache
    with proxy.client("nosuch") as c:
        assert c.get("/").status_code == 404
    with proxy.client("stopped") as c:
        assert c.get("/").status_code == 503
    with proxy.client("sleepy") as c:
        assert c.get("/headers").status_code == 200  # held, woken, forwarded
    with proxy.client() as c:  # the hub is not an app: counted by the hub's own metrics
        c.get("/api/health")
    after = scrape()
    assert moved(before, after) == {"proxied": 5, "woken": 1, "held": 0, "refused": 2}
    assert wakes(after, "cold") - wakes(before, "cold") == 1


def test_waiting_page_and_timeouts_count_as_held(make_proxy, upstreams):
    proxy = make_proxy(wake_timeout=0.3)
    proxy.put("slow", "alice/slow", ("127.0.0.1", 1), "sleeping")  # an upstream: a frozen instance
    proxy.controls.wake_delay = 2
    before = scrape()
    with proxy.client("slow", headers={"Accept": "text/html"}) as c:
        assert c.get("/").status_code == 200  # the waiting page
    with proxy.client("slow") as c:
        assert c.get("/").status_code == 503  # held past wake_timeout
    assert moved(before, scrape()) == {"proxied": 0, "woken": 0, "held": 2, "refused": 0}


def test_wake_tier_and_result_come_from_the_route_and_the_waker(make_proxy, upstreams):
    proxy = make_proxy(wake_timeout=5)
    proxy.put("frozen", "alice/frozen", upstreams["app-b"].addr, "sleeping")
    proxy.controls.wake_to["alice/frozen"] = ("frozen", upstreams["app-a"].addr)
    proxy.controls.wake_delay = 0.05
    before = scrape()
    with proxy.client("frozen") as c:
        assert c.get("/headers").json()["upstream"] == "app-a"
    proxy.put("broken", "alice/broken", None, "sleeping")
    proxy.controls.wake_ok = False
    with proxy.client("broken") as c:
        assert c.get("/headers").status_code == 503
    after = scrape()
    assert wakes(after, "frozen") - wakes(before, "frozen") == 1
    assert wakes(after, "cold", "failed") - wakes(before, "cold", "failed") == 1
    count = ("spaces_wake_duration_seconds_count", (("tier", "frozen"),))
    assert after[count] - before.get(count, 0.0) == 1
