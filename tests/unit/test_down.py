"""``spaces down``'s parts that need no live Space: the database marks, the registry claim (real files, real DBs).

The host part (processes, chains, cgroups, disks) is tested live in tests/platform/test_platform_down.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import DATABASES, migrated_databases

from spaces.db.models import Account, Space, UsageInterval
from spaces.db.session import Database
from spaces.runtime import tenancy
from spaces.services.down import MESSAGE, mark_down


any_db = pytest.fixture(params=DATABASES, name="any_db")(migrated_databases("spaces_down"))


def test_mark_down_stops_everything_quietly_and_ends_usage(any_db: Database) -> None:
    with any_db.session() as s:
        owner = Account(name="u", key="u")
        s.add(owner)
        s.flush()
        rows = {name: Space(owner_id=owner.id, name=name, repo_id=f"u/{name}", key=f"u/{name}", subdomain=f"u-{name}",
                            hardware=hw, stage=stage, paused=paused, asleep=asleep, instance=inst)
                for name, hw, stage, paused, asleep, inst in [
                    ("up", "cpu-basic", "RUNNING", False, False, {"current": {"id": "1"}}),
                    ("big", "cpu-upgrade", "RUNNING", False, False, {"current": {"id": "2"}}),
                    ("frozen", "cpu-basic", "SLEEPING", False, True, {"current": {"id": "3"}}),
                    ("paused", "cpu-basic", "PAUSED", True, False, None),
                    ("broken", "cpu-basic", "BUILD_ERROR", False, False, None)]}
        s.add_all(rows.values())
        s.flush()
        s.add(UsageInterval(account_id=owner.id, space_id=rows["up"].id, flavor="cpu-basic"))
    assert mark_down(any_db) == 3
    with any_db.session() as s:
        got = {sp.name: (sp.asleep, sp.paused, sp.stage, sp.instance) for sp in s.query(Space)}
        assert got == {"up": (True, False, "SLEEPING", None), "big": (True, False, "STOPPED", None),
                       "frozen": (True, False, "SLEEPING", None), "paused": (False, True, "PAUSED", None),
                       "broken": (True, False, "BUILD_ERROR", None)}
        assert s.query(Space).filter_by(name="up").one().stage_message == MESSAGE
        assert all(u.ended_at is not None for u in s.query(UsageInterval))
    assert mark_down(any_db) == 0  # twice is fine


def test_unclaim_drops_only_this_data_dirs_entry_and_a_later_claim_gets_the_same_names(tmp_path: Path) -> None:
    reg = tmp_path / "host" / "instances.json"
    args = dict(uids=None, ports=None, cgroup_root=None, uid_block=1000, port_block=500, port_pool=(20000, 32767))
    a, _ = tenancy.claim(tmp_path / "a", reg, **args)
    b, _ = tenancy.claim(tmp_path / "b", reg, **args)
    assert tenancy.claimed(tmp_path / "a", reg) == a
    assert tenancy.unclaim(tmp_path / "a", reg) is True
    assert tenancy.claimed(tmp_path / "a", reg) is None and tenancy.claimed(tmp_path / "b", reg) == b
    assert tenancy.unclaim(tmp_path / "a", reg) is False
    again, _ = tenancy.claim(tmp_path / "a", reg, **args)
    assert again == a
    assert tenancy.unclaim(tmp_path / "nowhere", reg) is False


def test_down_never_takes_down_host_names_it_does_not_own(tmp_path: Path) -> None:
    """No registry claim and no explicit uids: the defaults' uids, chains and cgroup root may be another platform's
    (or an older one's), so down_local touches none of them and says why."""
    from spaces.runtime.backends.local import LocalBackendSettings
    from spaces.runtime.teardown import down_local

    data = tmp_path / "data"
    data.mkdir()
    tenancy.instance_id(data)
    report = down_local(LocalBackendSettings(registry=tmp_path / "host" / "instances.json"), data)
    assert report.note and "no claim" in report.note
    assert (report.stopped, report.killed, report.chains, report.unclaimed) == (0, 0, False, False)
