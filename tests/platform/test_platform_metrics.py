"""``/metrics`` of a live ``spaces serve``, read with Prometheus' own parser: each counter moves by what was done.

A push and its build, hub requests of each class, requests to a running app, a sleep and its wake, a refused
hardware request: the scrape before and after each must differ by exactly that (the platform is the session's,
and nothing else runs while a test of this module does).
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
from collections.abc import Callable

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError
from prometheus_client.parser import text_string_to_metric_families

import platform_kit as kit

Samples = dict[tuple[str, tuple], float]


@pytest.fixture(scope="module")
def scrape(platform) -> Callable[[], Samples]:  # noqa: ANN001
    name = f"metrics{secrets.token_hex(3)}"
    platform.server.cli("user", "create", name, "--admin", timeout=300)
    token = platform.server.cli("token", "create", name, "--role", "read", timeout=300).stdout.strip()

    def read() -> Samples:
        r = httpx.get(f"{platform.url}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain")
        out: Samples = {}
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out
    return read


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_need_an_administrator_or_the_metrics_token(platform, alice) -> None:  # noqa: ANN001
    assert httpx.get(f"{platform.url}/metrics").status_code == 401
    assert httpx.get(f"{platform.url}/metrics", headers=alice.headers).status_code == 403
    r = httpx.get(f"{platform.url}/metrics", headers={"authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert "spaces_" not in r.text


def test_hub_requests_by_class_method_and_status(platform, alice, demo, scrape) -> None:  # noqa: ANN001
    before = scrape()
    with alice.http() as c:
        for _ in range(3):
            assert c.get(f"/api/spaces/{demo}").status_code == 200
        assert c.get("/spaces/alice/no-such-space-here").status_code == 404
        assert c.post("/api/repos/create", json={}).status_code in (400, 422)
    clone = subprocess.run(["git", "clone", "-q", "--depth", "1", f"{platform.url}/spaces/{demo}",
                            str(platform.base / f"clone-{secrets.token_hex(3)}")], capture_output=True, text=True)
    assert clone.returncode == 0, clone.stderr
    after = scrape()
    assert delta(before, after, "spaces_hub_requests_total", route_class="api", method="GET", status_class="2xx") == 3
    assert delta(before, after, "spaces_hub_requests_total", route_class="pages", method="GET",
                 status_class="4xx") == 1
    assert delta(before, after, "spaces_hub_requests_total", route_class="api", method="POST",
                 status_class="4xx") == 1
    git = delta(before, after, "spaces_hub_requests_total", route_class="git", method="GET", status_class="2xx")
    git_posts = delta(before, after, "spaces_hub_requests_total", route_class="git", method="POST",
                      status_class="2xx")
    assert git == 1 and git_posts >= 1  # one ref advertisement, then upload-pack (protocol v2: ls-refs + fetch)
    # every counted request was timed: the histogram moved as much as the counters of its class
    counted = sum(delta(before, after, "spaces_hub_requests_total", route_class="api", method=m, status_class=s)
                  for m in ("GET", "POST") for s in ("2xx", "4xx"))
    assert delta(before, after, "spaces_hub_request_duration_seconds_count", route_class="api") == counted


def test_a_push_builds_runs_serves_sleeps_wakes_and_is_counted(platform, alice, make_space, scrape) -> None:  # noqa: ANN001
    before = scrape()
    repo_id = make_space(alice, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                   "app.py": kit.app_source("greet.py", MARK="metrics")}))
    kit.wait_stage(alice.api, repo_id, kit.RUNNING, timeout=300)
    space_id = kit.space_id(alice, repo_id)
    with sqlite3.connect(platform.data_dir / "spaces.db") as db:
        outcomes = dict(db.execute("SELECT status, count(*) FROM builds WHERE space_id = ? GROUP BY status",
                                   (space_id,)).fetchall())
    running = scrape()
    assert outcomes.get("built", 0) >= 1
    for outcome, n in outcomes.items():  # every build of this push, by the outcome the table says
        assert delta(before, running, "spaces_builds_total", outcome=outcome) == n, outcome
    assert delta(before, running, "spaces_build_duration_seconds_count", outcome="built") == outcomes["built"]
    assert total(running, "spaces_running_spaces") - total(before, "spaces_running_spaces") == 1
    assert value(running, "spaces_build_queue_length") == 0

    for _ in range(3):
        assert kit.app_get(platform.server, repo_id, "/config").status_code == 200
    with kit.app_client(platform.server, "alice/no-such-space-here") as c:
        assert c.get("/").status_code == 404
    served = scrape()
    assert delta(running, served, "spaces_proxy_requests_total", outcome="proxied") == 3
    assert delta(running, served, "spaces_proxy_requests_total", outcome="refused") == 1

    platform.server.cli("sleep", repo_id, "--port", str(platform.port), timeout=300)  # CLI imports: 30 s at load 40
    kit.wait_stage(alice.api, repo_id, "SLEEPING", timeout=60)
    asleep = scrape()
    assert total(asleep, "spaces_running_spaces") - total(before, "spaces_running_spaces") == 0
    assert kit.app_get(platform.server, repo_id, "/config").status_code == 200  # held, woken, forwarded
    woken = scrape()
    assert delta(asleep, woken, "spaces_proxy_requests_total", outcome="woken") == 1
    assert delta(asleep, woken, "spaces_wakes_total", tier="frozen", result="ok") == 1
    assert delta(asleep, woken, "spaces_wake_duration_seconds_count", tier="frozen") == 1
    assert delta(asleep, woken, "spaces_wake_duration_seconds_sum", tier="frozen") > 0


def test_a_refused_hardware_request_is_counted(platform, alice, make_space, scrape) -> None:  # noqa: ANN001
    repo_id = make_space(alice, kit.space_files("static"), sdk="static")
    before = scrape()
    with pytest.raises(HfHubHTTPError) as exc:
        alice.api.request_space_hardware(repo_id, "cpu-upgrade")
    assert exc.value.response.status_code == 402
    after = scrape()
    assert delta(before, after, "spaces_quota_refusals_total", flavor="cpu-upgrade") == 1
    assert total(after, "spaces_quota_refusals_total") - total(before, "spaces_quota_refusals_total") == 1
