"""The README's table of Spaces per machine is what the scheduler computes from the defaults."""

from __future__ import annotations

import re
from pathlib import Path

from spaces.runtime.flavors import FlavorCatalog
from spaces.runtime.nodes import NodesSettings, Node
from spaces.runtime.scheduler import Request, SchedulerSettings, holds

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| (\d+) cores, (\d+) GiB \| (\d+) \| (\d+) \| any number \(disk\) \|$", re.M)


def test_the_readme_table_matches_the_scheduler() -> None:
    rows = ROW.findall(README.read_text())
    assert len(rows) >= 5
    policy, catalog, nodes = SchedulerSettings().policy(), FlavorCatalog(), NodesSettings()
    for cores, gib, basic, upgrade in rows:
        mib = int(gib) * 1024
        node = Node("n", float(cores), mib, reserved_cpu=nodes.reserved_cpu, reserved_memory_mb=max(1024, mib // 10))
        got = [holds(node, Request.for_flavor("s", catalog.get(f)), policy) for f in ("cpu-basic", "cpu-upgrade")]
        assert got == [int(basic), int(upgrade)], f"{cores} cores, {gib} GiB"
