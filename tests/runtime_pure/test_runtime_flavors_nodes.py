"""Flavor requests vs limits (spaces.runtime.flavors) and nodes (spaces.runtime.nodes)."""

from __future__ import annotations

import os
import shutil

import pytest
from pydantic import ValidationError

from spaces.errors import BadRequest
from spaces.runtime.contracts import Limits
from spaces.runtime.flavors import GPU_TOLERATION, FlavorCatalog, FlavorSettings, Price, Reservation
from spaces.runtime.nodes import (
    Gpu,
    Node,
    NodeConfig,
    NodesSettings,
    _memory_mb,
    detect_gpus,
    detect_local_node,
    node_from_config,
    parse_nvidia_smi,
)

# (flavor, reservation, limits)
DEFAULTS = [
    ("cpu-basic", Reservation(0.1, 96), Limits(2.0, 16384, disk_mb=5120)),
    ("cpu-upgrade", Reservation(1.0, 2048), Limits(8.0, 32768, disk_mb=5120)),
    ("t4-small", Reservation(1.0, 4096, 1, "T4"), Limits(4.0, 15360, disk_mb=5120)),
    ("t4-medium", Reservation(1.0, 4096, 1, "T4"), Limits(8.0, 30720, disk_mb=5120)),
    ("l4x4", Reservation(4.0, 16384, 4, "L4"), Limits(48.0, 190464, disk_mb=5120)),
    ("a100-large", Reservation(1.0, 4096, 1, "A100"), Limits(12.0, 145408, disk_mb=5120)),
]


@pytest.mark.parametrize("name,reservation,limits", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_default_requests_and_limits(name, reservation, limits) -> None:
    f = FlavorCatalog().get(name)
    assert f.reservation == reservation and f.limits == limits
    assert f.tolerations == ((GPU_TOLERATION,) if reservation.gpus else ())


def test_disk_limit_is_a_flavor_setting() -> None:
    cat = FlavorCatalog(FlavorSettings(disk_mb=1024, disk_mb_per_flavor={"a10g-large": 51200}))
    assert cat.get("cpu-basic").limits.disk_mb == 1024 and cat.get("a10g-large").limits.disk_mb == 51200
    with pytest.raises(BadRequest, match="unknown flavors"):
        FlavorCatalog(FlavorSettings(disk_mb_per_flavor={"cpu-huge": 1}))


def test_operator_overrides_requests_prices_pools() -> None:
    cat = FlavorCatalog(FlavorSettings(
        requests={"cpu-basic": {"cpu": 0.25}, "t4-small": {"memory_mb": 8192}},
        hardware={"t4-small": {"price_per_hour_usd": 0.5, "cpu": 6}},
        node_selectors={"t4-small": {"pool": "t4"}},
        tolerations={"t4-small": []},
    ))
    assert cat.get("cpu-basic").reservation == Reservation(0.25, 96)
    t4 = cat.get("t4-small")
    assert t4.reservation == Reservation(1.0, 8192, 1, "T4", {"pool": "t4"})
    assert t4.limits == Limits(6.0, 15360, disk_mb=5120) and t4.tolerations == ()
    assert cat.prices()["t4-small"] == Price(0.5, 1) and cat.prices()["cpu-basic"] == Price(0.0, 0)


@pytest.mark.parametrize("settings", [
    FlavorSettings(requests={"t4-smal": {"cpu": 1}}),
    FlavorSettings(node_selectors={"nope": {}}),
    FlavorSettings(hardware={"nope": {"cpu": 1}}),
])
def test_typos_in_flavor_settings_are_loud(settings) -> None:
    with pytest.raises(BadRequest):
        FlavorCatalog(settings)


def test_unknown_flavor() -> None:
    with pytest.raises(BadRequest, match="Unknown hardware flavor 'h100'"):
        FlavorCatalog().get("h100")


# -- nodes --------------------------------------------------------------------------------------------------

SMI_TABLE = [
    ("0, Tesla T4, 15360 MiB\n1, Tesla T4, 15360 MiB\n", (Gpu(0, "Tesla T4", 15360), Gpu(1, "Tesla T4", 15360))),
    ("0, NVIDIA H100 80GB HBM3, 81559\n", (Gpu(0, "NVIDIA H100 80GB HBM3", 81559),)),
    ("1, NVIDIA A10G, 23028 MiB\n0, NVIDIA A10G, 23028 MiB\n",
     (Gpu(0, "NVIDIA A10G", 23028), Gpu(1, "NVIDIA A10G", 23028))),
    ("0, Weird, Model, Name, 100 MiB\n", (Gpu(0, "Weird, Model, Name", 100),)),
    ("garbage\n\n0, T4, [N/A]\n", (Gpu(0, "T4", 0),)),
    ("", ()),
]


@pytest.mark.parametrize("text,gpus", SMI_TABLE)
def test_parse_nvidia_smi(text, gpus) -> None:
    assert parse_nvidia_smi(text) == gpus


def test_detect_local_node_is_this_machine() -> None:
    node = detect_local_node(labels={"pool": "cpu"})
    assert node.name == "local" and node.backend == "local" and node.url is None
    assert node.cpu == len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        total_mb = int(f.readline().split()[1]) // 1024
    assert 0 < node.memory_mb <= total_mb
    assert node.labels == {"pool": "cpu"}
    if shutil.which("nvidia-smi") is None:
        try:
            import pynvml  # noqa: F401
        except ImportError:
            assert node.gpus == () == detect_gpus()  # no driver here: no GPUs, and no error


def test_memory_from_meminfo(tmp_path) -> None:
    p = tmp_path / "meminfo"
    p.write_text("MemTotal:       24684876 kB\nMemFree:  1 kB\n")
    assert 0 < _memory_mb(p) <= 24684876 // 1024


def test_node_config() -> None:
    cfg = NodeConfig(name="gpu1", url="ssh://ops@gpu1", labels={"pool": "t4"},
                     gpus=[{"index": 1, "model": "Tesla T4", "memory_mb": 15360}, {"index": 0, "model": "Tesla T4"}])
    node = node_from_config(cfg, cpu=16, memory_mb=64000)
    assert node == Node("gpu1", 16.0, 64000, (Gpu(0, "Tesla T4", 0), Gpu(1, "Tesla T4", 15360)), {"pool": "t4"},
                        "docker", "ssh://ops@gpu1")
    assert node.matches({"pool": "t4"}) and not node.matches({"pool": "a100"})
    # configuration wins over what the engine reports
    assert node_from_config(NodeConfig(name="n", url="tcp://h:2376", cpu=4, memory_mb=8000), cpu=64).cpu == 4
    with pytest.raises(ValueError, match="neither configured nor reported"):
        node_from_config(NodeConfig(name="n", url="unix:///var/run/docker.sock"))


@pytest.mark.parametrize("bad", [
    {"name": "n", "url": "docker.example:2376"},
    {"name": "n", "gpus": [{"index": 0, "model": "T4"}, {"index": 0, "model": "T4"}]},
    {"name": ""},
])
def test_bad_node_config_is_refused(bad) -> None:
    with pytest.raises(ValidationError):
        NodeConfig(**bad)


def test_nodes_settings_defaults() -> None:
    s = NodesSettings()
    assert s.detect_local and s.nodes == []
