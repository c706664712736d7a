"""Cgroups.warm_join: which file it writes (v1 and v2 layouts, on a fake cgroup tree) and that it writes our pid.

The real kernel is exercised in tests/runtime_local/test_lifecycle.py (the platform stays in its own groups)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spaces.runtime.cgroups import Cgroups


def fake_tree(tmp: Path, mounts: dict[str, str], own: str, groups: list[str]) -> tuple[Cgroups, Path]:
    """A mounts file naming ``mounts`` (mount dir name -> fstype and options), our /proc/self/cgroup as ``own``,
    and a ``cgroup.procs`` file in each of ``groups`` (paths under tmp)."""
    lines = []
    for name, spec in mounts.items():
        fstype, opts = spec.split(" ")
        (tmp / name).mkdir()
        if fstype == "cgroup2":
            (tmp / name / "cgroup.controllers").write_text("memory cpu pids")
        lines.append(f"{fstype} {tmp / name} {fstype} {opts} 0 0")
    for group in groups:
        (tmp / group).mkdir(parents=True, exist_ok=True)
        (tmp / group / "cgroup.procs").write_text("")
    (tmp / "mounts").write_text("\n".join(lines) + "\n")
    (tmp / "self-cgroup").write_text(own)
    return Cgroups("spaces", mounts_file=str(tmp / "mounts")), tmp / "self-cgroup"


def test_v1_writes_our_pid_to_our_own_group_in_a_hierarchy_we_use(tmp_path: Path) -> None:
    cg, own = fake_tree(tmp_path, {"memory": "cgroup rw,memory", "cpu": "cgroup rw,cpu,cpuacct"},
                        "9:name=systemd:/\n3:cpu,cpuacct:/\n2:memory:/outer/box\n", ["cpu", "memory/outer/box"])
    assert cg.version == 1
    thread = cg.warm_join(str(own))
    assert thread is not None
    thread.join(5)
    written = {p: (tmp_path / p / "cgroup.procs").read_text() for p in ("cpu", "memory/outer/box")}
    assert str(os.getpid()) in written.values() and list(written.values()).count("") == 1  # one write, ours


def test_v2_writes_to_our_unified_group(tmp_path: Path) -> None:
    cg, own = fake_tree(tmp_path, {"unified": "cgroup2 rw"}, "0::/system.slice/spaces.service\n",
                        ["unified/system.slice/spaces.service"])
    assert cg.version == 2
    thread = cg.warm_join(str(own))
    assert thread is not None
    thread.join(5)
    assert (tmp_path / "unified/system.slice/spaces.service/cgroup.procs").read_text() == str(os.getpid())


@pytest.mark.parametrize("own", ["2:memory:/not/there\n", "1:name=systemd:/\n", ""])
def test_nothing_when_our_group_is_not_in_a_hierarchy_we_use(tmp_path: Path, own: str) -> None:
    cg, own_file = fake_tree(tmp_path, {"memory": "cgroup rw,memory"}, own, [])
    assert cg.warm_join(str(own_file)) is None


def test_nothing_without_cgroups(tmp_path: Path) -> None:
    (tmp_path / "mounts").write_text("proc /proc proc rw 0 0\n")
    (tmp_path / "self-cgroup").write_text("0::/\n")
    assert Cgroups("spaces", mounts_file=str(tmp_path / "mounts")).warm_join(str(tmp_path / "self-cgroup")) is None
