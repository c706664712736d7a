"""Platform instances on one host: the registry that keeps their uids, ports and cgroup roots apart; limits that
fit the node; uids freed by deletes; what interrupted pushes and commits leave. Real files, no fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spaces.errors import InstanceClash
from spaces.runtime import tenancy
from spaces.runtime.backends.local import LocalBackendSettings
from spaces.runtime.flavors import FlavorCatalog, fit_limits
from spaces.runtime.nodes import Node, detect_local_node
from spaces.runtime.sandbox import UidAllocator
from spaces.storage.gitrepo import GitRepo, remove_quarantines, sweep_temporaries

POOL = (20000, 32767)


def claim(data_dir: Path, registry: Path, **kw):  # noqa: ANN003, ANN201
    args = dict(uids=None, ports=None, cgroup_root=None, uid_block=1000, port_block=500, port_pool=POOL)
    return tenancy.claim(data_dir, registry, **{**args, **kw})


def test_two_data_dirs_get_disjoint_names_and_keep_them(tmp_path: Path) -> None:
    reg = tmp_path / "host" / "instances.json"
    a, _ = claim(tmp_path / "a", reg)
    b, _ = claim(tmp_path / "b", reg)
    assert (a.uid_min, a.uid_max) == (70000, 70999) and (b.uid_min, b.uid_max) == (71000, 71999)
    assert (a.port_min, a.port_max) == (20000, 20499) and (b.port_min, b.port_max) == (20500, 20999)
    assert a.cgroup_root != b.cgroup_root and a.id != b.id
    assert a.cgroup_root == f"spaces-{a.id}" and (tmp_path / "a" / "instance-id").read_text().strip() == a.id
    again, _ = claim(tmp_path / "a", reg)  # a restart keeps everything: files on disk belong to those uids
    assert again == a
    assert set(json.loads(reg.read_text())) == {a.id, b.id}


def test_an_explicit_range_that_overlaps_a_live_instance_is_refused_naming_both(tmp_path: Path) -> None:
    reg = tmp_path / "instances.json"
    a, _ = claim(tmp_path / "a", reg)
    with pytest.raises(InstanceClash) as err:
        claim(tmp_path / "b", reg, uids=(70500, 70600))
    assert str(tmp_path / "a") in err.value.message and str(tmp_path / "b") in err.value.message
    assert "70500-70600" in err.value.message and "SPACES_LOCAL__UID_MIN" in err.value.message
    with pytest.raises(InstanceClash, match="cgroup root"):
        claim(tmp_path / "b", reg, cgroup_root=a.cgroup_root)
    with pytest.raises(InstanceClash, match="ports"):
        claim(tmp_path / "b", reg, ports=(20100, 20200))
    # refused means nothing claimed: b is not in the registry
    assert set(json.loads(reg.read_text())) == {a.id}
    b, _ = claim(tmp_path / "b", reg, uids=(40000, 40199), cgroup_root="mine")
    assert (b.uid_min, b.uid_max, b.cgroup_root) == (40000, 40199, "mine")


def test_a_copied_data_dir_is_a_clash_until_its_id_is_removed(tmp_path: Path) -> None:
    reg = tmp_path / "instances.json"
    a, _ = claim(tmp_path / "a", reg)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "instance-id").write_text((tmp_path / "a" / "instance-id").read_text())
    with pytest.raises(InstanceClash, match="copied"):
        claim(tmp_path / "copy", reg)
    (tmp_path / "copy" / "instance-id").unlink()
    c, _ = claim(tmp_path / "copy", reg)
    assert c.id != a.id and c.uid_min != a.uid_min


def test_a_removed_platform_gives_its_block_back(tmp_path: Path) -> None:
    reg = tmp_path / "instances.json"
    gone, _ = claim(tmp_path / "gone", reg, uids=(5_000_000, 5_000_999))  # no process runs as these uids
    (tmp_path / "gone" / "instance-id").unlink()
    b, stale = claim(tmp_path / "b", reg, uids=(5_000_000, 5_000_999))
    assert [s.id for s in stale] == [gone.id] and b.uid_min == 5_000_000


def test_a_removed_platform_whose_spaces_still_run_keeps_its_block(tmp_path: Path) -> None:
    import os

    reg = tmp_path / "instances.json"
    uid = os.getuid()  # this very process runs as it
    claim(tmp_path / "gone", reg, uids=(uid, uid))
    (tmp_path / "gone" / "instance-id").unlink()
    with pytest.raises(InstanceClash):
        claim(tmp_path / "b", reg, uids=(uid, uid))


def test_a_data_dir_that_handed_out_uids_before_gets_a_block_that_keeps_them(tmp_path: Path) -> None:
    reg = tmp_path / "instances.json"
    claim(tmp_path / "a", reg)  # holds 70000-70999
    b, _ = claim(tmp_path / "b", reg, used_uids=(23005, 23010))  # from before claims: the old default range
    assert (b.uid_min, b.uid_max) == (23000, 23999)
    with pytest.raises(InstanceClash, match="70000-70999"):
        claim(tmp_path / "c", reg, used_uids=(70001, 70002))  # its Spaces' uids are a's now: never share them


def test_claim_local_keeps_explicit_settings_and_fills_in_the_rest(tmp_path: Path) -> None:
    reg = tmp_path / "instances.json"
    local = LocalBackendSettings(root=tmp_path / "d" / "local", registry=reg, uid_min=41000, uid_max=41199)
    got, result = tenancy.claim_local(local, tmp_path / "d")
    assert (got.uid_min, got.uid_max) == (41000, 41199)
    assert (got.port_min, got.port_max) == (20000, 20499) and got.cgroup_root == f"spaces-{result.id}"
    other, _ = tenancy.claim_local(LocalBackendSettings(root=tmp_path / "e" / "local", registry=reg), tmp_path / "e")
    assert (other.uid_min, other.uid_max) == (70000, 70999)
    assert (other.port_min, other.port_max) == (20500, 20999)


# -- limits that fit the node ---------------------------------------------------------------------------------


def test_limits_are_clamped_to_what_the_node_leaves_one_space() -> None:
    basic = FlavorCatalog().get("cpu-basic")  # 2 vCPU, 16 GiB
    small = Node("local", 2.0, 24000, reserved_cpu=0.5, reserved_memory_mb=2400)
    limits, note = fit_limits(basic, small)
    assert (limits.cpu, limits.memory_mb) == (1.5, 16384)
    assert note is not None and "1.5 CPUs and 16384 MiB" in note and "cpu-basic" in note
    tiny = Node("local", 1.0, 4096, reserved_cpu=0.5, reserved_memory_mb=1024)
    limits, note = fit_limits(basic, tiny, gpus=(0,))
    assert (limits.cpu, limits.memory_mb, limits.gpus) == (0.5, 3072, (0,))
    big = Node("big", 64.0, 512_000, reserved_cpu=0.5, reserved_memory_mb=4096)
    limits, note = fit_limits(basic, big)
    assert (limits.cpu, limits.memory_mb, note) == (2.0, 16384, None)


def test_the_local_node_keeps_a_tenth_of_its_memory_by_default() -> None:
    node = detect_local_node(reserved_memory_mb=None, reserved_cpu=0.5)
    assert node.reserved_memory_mb == max(1024, node.memory_mb // 10)
    assert node.space_memory_mb == node.memory_mb - node.reserved_memory_mb
    assert node.space_cpu == max(0.1, node.cpu - 0.5)


# -- uids of deleted Spaces -----------------------------------------------------------------------------------


def test_a_freed_uid_is_handed_out_again_only_when_no_fresh_one_is_left(tmp_path: Path) -> None:
    uids = UidAllocator(tmp_path / "uids.json", 100, 102)
    assert [uids.uid(s) for s in ("a", "b")] == [100, 101]
    assert uids.free("a") == 100 and uids.free("a") is None
    assert uids.uid("c") == 102  # a never-used uid first
    assert uids.uid("d") == 100  # then the freed one
    assert uids.uid("b") == 101  # kept
    with pytest.raises(Exception, match="no free sandbox uid"):
        uids.uid("e")


def test_a_stored_uid_outside_the_range_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "uids.json").write_text(json.dumps({"old": 20007}))
    assert UidAllocator(tmp_path / "uids.json", 300, 310).uid("old") == 300


# -- interrupted pushes and commits ---------------------------------------------------------------------------


def test_what_killed_pushes_and_commits_left_is_swept(tmp_path: Path) -> None:
    repos = tmp_path / "repos"
    repo = GitRepo.init_bare(repos / "x.git")
    (repo.path / "objects" / "tmp_objdir-incoming-AbC123" / "pack").mkdir(parents=True)
    (repo.path / "objects" / "tmp_objdir-incoming-AbC123" / "pack" / "tmp_pack_1").write_bytes(b"x")
    (repo.path / "spaces-commit-abc").mkdir()
    (repos / "y.git.deleting-0123").mkdir()
    assert sweep_temporaries(repos) == 3
    assert sorted(p.name for p in repos.iterdir()) == ["x.git"]
    assert not list((repo.path / "objects").glob("*incoming*")) and not list(repo.path.glob("spaces-commit-*"))
    assert remove_quarantines(repo.path) == 0
    assert repo.exists()


def test_an_upgraded_data_dir_keeps_its_uids_and_its_running_instances_cgroup_root(tmp_path: Path) -> None:
    """A data dir that ran Spaces before platforms claimed names: its block covers the uids it handed out (freed
    ones too) and, while instances it started then still run, it keeps the cgroup root they are in."""
    reg, data = tmp_path / "instances.json", tmp_path / "old"
    (data / "local" / "state").mkdir(parents=True)
    (data / "local" / "state" / "uids.json").write_text(json.dumps({"a": 22001, "~freed": [22999]}))  # pre-claim
    (data / "local" / "run" / "instances").mkdir(parents=True)
    (data / "local" / "run" / "instances" / "x.json").write_text("{}")
    local = LocalBackendSettings(root=data / "local", registry=reg)
    got, _ = tenancy.claim_local(local, data)
    assert (got.uid_min, got.uid_max, got.cgroup_root) == (22000, 22999, "spaces")


def test_without_a_writable_registry_the_settings_are_used_as_given(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "host").write_text("a file, not a directory")
    local = LocalBackendSettings(root=tmp_path / "d" / "local", registry=tmp_path / "ro" / "host" / "instances.json")
    got, result = tenancy.claim_local(local, tmp_path / "d")
    assert (got.uid_min, got.cgroup_root) == (20000, "spaces") and result.id
