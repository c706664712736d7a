"""spaces.metrics: the dashboard queries only names that exist, the database collector counts what the tables say.

The collector runs on SQLite here and on PostgreSQL when ``SPACES_TEST_DATABASES`` names it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from harness import DATABASES, migrated_databases
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from spaces import metrics
from spaces.db.models import Account, Build, Space, utcnow
from spaces.db.session import Database
from spaces.hub.metrics import route_class

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "spaces.json"


def _queries(node: object) -> Iterator[str]:
    """Every PromQL string of a Grafana dashboard: targets' ``expr`` and template variables' queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, str | dict):
                yield from ([value] if isinstance(value, str) else _queries({"expr": value.get("query", "")}))
            else:
                yield from _queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from _queries(item)


def test_every_metric_the_dashboard_queries_is_defined() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for q in _queries(dashboard) for name in re.findall(r"\bspaces_[a-z0-9_]+", q)}
    assert len(queried) >= 10, queried  # the parse found the panels
    assert queried - metrics.defined_names() == set()


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    queried = " ".join(_queries(json.loads(DASHBOARD.read_text())))
    for name in ("spaces_hub_requests_total", "spaces_hub_request_duration_seconds_bucket",
                 "spaces_proxy_requests_total", "spaces_wake_duration_seconds_bucket", "spaces_builds_total",
                 "spaces_build_queue_length", "spaces_build_queue_oldest_wait_seconds", "spaces_running_spaces",
                 "spaces_quota_refusals_total", "spaces_controller_leader_changes_total"):
        assert name in queried


def test_defined_names_are_what_a_scrape_shows(db: Database) -> None:
    """defined_names() is what the dashboard test trusts: check it against a real scrape with every metric set."""
    metrics.HUB_REQUESTS.labels("api", "GET", "2xx").inc(0)
    metrics.HUB_REQUEST_SECONDS.labels("api")
    metrics.WAKE_SECONDS.labels("cold")
    metrics.WAKES.labels("cold", "ok").inc(0)
    metrics.QUOTA_REFUSALS.labels("cpu-basic").inc(0)
    metrics.watch_database(db)
    _seed(db)
    list(metrics.DATABASE.collect())  # the first look; builds that end after it are counted
    _finish_all(db)
    seen = {s.name for f in text_string_to_metric_families(generate_latest().decode()) for s in f.samples}
    assert metrics.defined_names() <= seen


@pytest.mark.parametrize(("path", "klass"), [
    ("/api/spaces/alice/demo", "api"), ("/api/whoami-v2", "api"), ("/spaces/alice/demo/resolve/main/app.py", "api"),
    ("/spaces/alice/demo/info/refs", "git"), ("/spaces/alice/demo/git-receive-pack", "git"),
    ("/alice/demo.git/git-upload-pack", "git"), ("/static/app.css", "static"), ("/spaces/alice/demo", "pages"),
    ("/", "pages"), ("/metrics", "ops"), ("/api/health", "ops"), ("/healthz", "ops"),
])
def test_route_class(path: str, klass: str) -> None:
    assert route_class(path) == klass


# ---- the database collector ---------------------------------------------------------------------------------------
any_db = pytest.fixture(params=DATABASES, name="any_db")(migrated_databases("spaces_metrics"))


def _seed(db: Database) -> str:
    with db.session() as s:
        owner = Account(name="u", key="u")
        s.add(owner)
        s.flush()
        spaces = [Space(owner_id=owner.id, name=f"s{i}", repo_id=f"u/s{i}", key=f"u/s{i}", subdomain=f"u-s{i}",
                        hardware="cpu-basic", stage=stage, instance=inst)
                  for i, (stage, inst) in enumerate([
                      ("RUNNING", {"placement": {"node": "n1", "flavor": "cpu-basic"}}),
                      ("RUNNING_BUILDING", {"placement": {"node": "n2", "flavor": "cpu-basic"}}),
                      ("RUNNING", {"placement": {"node": "n1", "flavor": "cpu-basic"}}),
                      ("SLEEPING", {"current": {}}), ("BUILDING", None)])]
        s.add_all(spaces)
        s.flush()
        old = utcnow() - timedelta(seconds=120)
        s.add_all([Build(space_id=spaces[0].id, sha="a" * 40, status="queued", created_at=old),
                   Build(space_id=spaces[1].id, sha="b" * 40, status="queued"),
                   Build(space_id=spaces[2].id, sha="c" * 40, status="running"),
                   Build(space_id=spaces[3].id, sha="d" * 40, status="built", created_at=old, finished_at=utcnow())])
        return owner.id


def _finish_all(db: Database) -> None:
    with db.session() as s:
        for i, b in enumerate(s.query(Build).filter(Build.finished_at.is_(None)).order_by(Build.id)):
            b.status = ("built", "failed", "superseded")[i % 3]
            b.finished_at = b.created_at + timedelta(seconds=30)


def _scrape(collector: metrics.DatabaseCollector) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_database_collector_reads_queue_spaces_and_counts_builds_from_its_start(any_db: Database) -> None:
    _seed(any_db)
    collector = metrics.DatabaseCollector()
    collector.watch(any_db)
    first = _scrape(collector)
    assert first[("spaces_build_queue_length", ())] == 2
    assert first[("spaces_builds_running", ())] == 1
    assert 100 < first[("spaces_build_queue_oldest_wait_seconds", ())] < 3600
    running = {k[1]: v for k, v in first.items() if k[0] == "spaces_running_spaces"}
    assert running == {(("flavor", "cpu-basic"), ("node", "n1")): 2, (("flavor", "cpu-basic"), ("node", "n2")): 1}
    assert first[("spaces_spaces", (("stage", "SLEEPING"),))] == 1
    # the build that ended before the first look is not counted: a counter starts at 0 with its process
    assert not any(k[0] == "spaces_builds_total" for k in first)

    _finish_all(any_db)
    with any_db.session() as s:  # a build submitted and ended between two scrapes counts too
        sid = s.query(Space.id).first()[0]
        s.add(Build(space_id=sid, sha="e" * 40, status="failed", finished_at=utcnow() + timedelta(seconds=5)))
    second = _scrape(collector)
    built = ("spaces_builds_total", (("outcome", "built"),))
    failed = ("spaces_builds_total", (("outcome", "failed"),))
    superseded = ("spaces_builds_total", (("outcome", "superseded"),))
    assert (second[built], second[failed], second[superseded]) == (1, 2, 1)
    assert second[("spaces_build_duration_seconds_count", (("outcome", "built"),))] == 1
    assert second[("spaces_build_duration_seconds_sum", (("outcome", "built"),))] == pytest.approx(30, abs=1)
    assert second[("spaces_build_queue_length", ())] == 0

    third = _scrape(collector)  # nothing ended since: nothing counted twice
    assert (third[built], third[failed]) == (1, 2)


def test_database_collector_survives_a_database_that_is_gone(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'missing' / 'spaces.db'}")
    collector = metrics.DatabaseCollector()
    collector.watch(database)
    assert _scrape(collector) == {}


def test_the_metrics_token_setting_opens_the_hubs_metrics(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from spaces.hub.app import create_app
    from spaces.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", metrics_token="s3cret-metrics")
    with TestClient(create_app(settings)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"authorization": "Bearer s3cret-metric"}).status_code == 401
        r = c.get("/metrics", headers={"authorization": "Bearer s3cret-metrics"})
        assert r.status_code == 200
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert {"spaces_hub_requests", "spaces_build_queue_length", "spaces_running_spaces"} <= names
