"""Hardware flavors and the /api/spaces/hardware item shape (spaces.domain.hardware)."""

from __future__ import annotations

import pytest

from spaces.domain.hardware import (
    DEFAULT_FLAVOR,
    FLAVORS,
    build_flavors,
    default_sleep_seconds,
    get_flavor,
    hardware_json,
    is_gpu,
)
from spaces.errors import BadRequest

# SpaceHardware in huggingface_hub 2.4.0 (wire reference §5.9)
HF_FLAVORS = {
    "cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4", "l40sx8",
    "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8", "rtx-pro-6000",
    "rtx-pro-6000x2", "rtx-pro-6000x4", "rtx-pro-6000x8",
}


def test_every_hf_flavor_is_known() -> None:
    assert set(FLAVORS) == HF_FLAVORS
    assert DEFAULT_FLAVOR == "cpu-basic"


def test_matches_huggingface_hub_enum_when_installed() -> None:
    constants = pytest.importorskip("huggingface_hub._space_api")
    assert {h.value for h in constants.SpaceHardware} == HF_FLAVORS


@pytest.mark.parametrize(
    ("name", "cpu", "ram", "gpus", "model", "vram", "disk", "price"),
    [
        ("cpu-basic", 2, 16, 0, None, None, 50, 0.0),
        ("cpu-upgrade", 8, 32, 0, None, None, 50, 0.03),
        ("t4-small", 4, 15, 1, "T4", 16, 50, 0.40),
        ("t4-medium", 8, 30, 1, "T4", 16, 100, 0.60),
        ("l4x4", 48, 186, 4, "L4", 96, 3200, 3.80),
        ("l40sx8", 192, 1534, 8, "L40S", 384, 6500, 23.50),
        ("a10g-largex2", 24, 92, 2, "A10G", 48, 1000, 3.00),
        ("a100x8", 96, 1136, 8, "A100", 640, 8000, 20.00),
        ("rtx-pro-6000", 23, 256, 1, "RTX PRO 6000", 96, 475, 2.75),
        ("rtx-pro-6000x4", 92, 1024, 4, "RTX PRO 6000", 384, 1900, 11.00),
    ],
)
def test_flavor_table(name, cpu, ram, gpus, model, vram, disk, price) -> None:
    f = get_flavor(name)
    assert (f.cpu, f.memory_gb, f.gpu_count, f.gpu_model, f.gpu_memory_gb, f.disk_gb, f.price_per_hour_usd) == (
        cpu, ram, gpus, model, vram, disk, price,
    )


@pytest.mark.parametrize(
    ("name", "gpu"), [("cpu-basic", False), ("cpu-upgrade", False), ("zero-a10g", True), ("t4-small", True),
                      ("a100x8", True), ("rtx-pro-6000x8", True)]
)
def test_is_gpu(name: str, gpu: bool) -> None:
    assert is_gpu(name) is gpu


@pytest.mark.parametrize("name", ["h100", "T4-small", "", "cpu"])
def test_unknown_flavor_lists_valid_names(name: str) -> None:
    with pytest.raises(BadRequest) as info:
        get_flavor(name)
    assert repr(name) in info.value.message
    assert "cpu-basic" in info.value.message and "a100x8" in info.value.message
    assert info.value.status == 400


def test_hardware_json_gpu_shape() -> None:
    assert hardware_json(FLAVORS["t4-small"]) == {
        "name": "t4-small",
        "prettyName": "Nvidia T4 small",
        "cpu": "4 vCPU",
        "ram": "15 GB",
        "ephemeralStorage": "50 GB",
        "accelerator": {"type": "gpu", "model": "T4", "quantity": 1, "vram": "16 GB", "manufacturer": "Nvidia"},
        "unitCostMicroUSD": 6667,
        "unitCostUSD": 0.006667,
        "unitLabel": "minute",
    }


def test_hardware_json_cpu_shape() -> None:
    item = hardware_json(FLAVORS["cpu-basic"])
    assert item["cpu"] == "2 vCPU" and item["ram"] == "16 GB" and item["accelerator"] is None
    assert item["unitCostMicroUSD"] == 0 and item["unitCostUSD"] == 0.0


@pytest.mark.parametrize(
    ("name", "micro"), [("cpu-upgrade", 500), ("a10g-small", 16667), ("a100x8", 333333), ("l40sx8", 391667)]
)
def test_per_minute_prices(name: str, micro: int) -> None:
    item = hardware_json(FLAVORS[name])
    assert item["unitCostMicroUSD"] == micro
    assert item["unitCostUSD"] == pytest.approx(FLAVORS[name].price_per_hour_usd / 60, abs=1e-6)


@pytest.mark.parametrize("name", sorted(HF_FLAVORS))
def test_every_item_has_required_keys_and_types(name: str) -> None:
    item = hardware_json(FLAVORS[name])
    for key in ("name", "prettyName", "cpu", "ram", "unitCostMicroUSD", "unitCostUSD", "unitLabel"):
        assert item[key] is not None
    assert isinstance(item["unitCostMicroUSD"], int) and isinstance(item["unitCostUSD"], float)
    assert item["cpu"].endswith(" vCPU") and item["ram"].endswith(" GB")
    if item["accelerator"]:
        assert isinstance(item["accelerator"]["quantity"], int) and item["accelerator"]["vram"].endswith(" GB")


@pytest.mark.parametrize(("name", "seconds"), [("cpu-basic", 172800), ("cpu-upgrade", None), ("t4-small", None)])
def test_default_sleep(name: str, seconds: int | None) -> None:
    assert default_sleep_seconds(name) == seconds


def test_operator_overrides() -> None:
    flavors = build_flavors(overrides={"t4-small": {"price_per_hour_usd": 0.5, "disk_gb": 80}})
    assert flavors["t4-small"].price_per_hour_usd == 0.5 and flavors["t4-small"].disk_gb == 80
    assert FLAVORS["t4-small"].price_per_hour_usd == 0.40  # the built-in table is untouched
    with pytest.raises(BadRequest, match="unknown flavor 'h100'"):
        build_flavors(overrides={"h100": {"price_per_hour_usd": 1}})
    with pytest.raises(BadRequest, match="unknown fields"):
        build_flavors(overrides={"t4-small": {"price": 1}})
