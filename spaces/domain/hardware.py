"""Hardware flavors a Space can ask for, their shapes and prices.

The names are Hugging Face's ``SpaceHardware`` values (huggingface_hub 2.4.0) so the real clients can request
them; shapes and hourly prices follow the Spaces docs (wire reference §8.4). The table is plain data
(:data:`FLAVOR_TABLE`) so an operator can override shapes or prices from configuration with
:func:`build_flavors` instead of editing code.

Units: ``cpu`` is vCPUs, ``memory_gb`` and ``disk_gb`` are GB, ``gpu_memory_gb`` is the *total* GPU memory of the
flavor (e.g. 96 for ``l4x4``: 4 x 24 GB), which is what ``/api/spaces/hardware`` shows as ``vram``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spaces.errors import BadRequest


@dataclass(frozen=True)
class Flavor:
    """One hardware flavor. ``price_per_hour_usd`` is billed per minute while starting or running."""

    name: str
    pretty_name: str
    cpu: float
    memory_gb: float
    gpu_count: int
    gpu_model: str | None
    gpu_memory_gb: float | None
    disk_gb: float
    price_per_hour_usd: float

    @property
    def is_gpu(self) -> bool:
        return self.gpu_count > 0


# (name, pretty_name, vCPU, RAM GB, GPUs, GPU model, total GPU memory GB, disk GB, $/h)
# ZeroGPU: the docs say "dynamic" CPU and a half or full RTX PRO 6000 slice attached per call; we describe the
# base container (the default 2 vCPU / 16 GB / 50 GB environment) and the default half slice (48 GB). It is free
# (a usage quota applies, tracked elsewhere), hence price 0.
FLAVOR_TABLE: tuple[tuple[Any, ...], ...] = (
    ("cpu-basic", "CPU Basic", 2, 16, 0, None, None, 50, 0.0),
    ("cpu-upgrade", "CPU Upgrade", 8, 32, 0, None, None, 50, 0.03),
    ("zero-a10g", "ZeroGPU", 2, 16, 1, "RTX PRO 6000", 48, 50, 0.0),
    ("t4-small", "Nvidia T4 small", 4, 15, 1, "T4", 16, 50, 0.40),
    ("t4-medium", "Nvidia T4 medium", 8, 30, 1, "T4", 16, 100, 0.60),
    ("l4x1", "1x Nvidia L4", 8, 30, 1, "L4", 24, 400, 0.80),
    ("l4x4", "4x Nvidia L4", 48, 186, 4, "L4", 96, 3200, 3.80),
    ("l40sx1", "1x Nvidia L40S", 8, 62, 1, "L40S", 48, 380, 1.80),
    ("l40sx4", "4x Nvidia L40S", 48, 382, 4, "L40S", 192, 3200, 8.30),
    ("l40sx8", "8x Nvidia L40S", 192, 1534, 8, "L40S", 384, 6500, 23.50),
    ("a10g-small", "Nvidia A10G small", 4, 15, 1, "A10G", 24, 110, 1.00),
    ("a10g-large", "Nvidia A10G large", 12, 46, 1, "A10G", 24, 200, 1.50),
    ("a10g-largex2", "2x A10G large", 24, 92, 2, "A10G", 48, 1000, 3.00),
    ("a10g-largex4", "4x A10G large", 48, 184, 4, "A10G", 96, 2000, 5.00),
    ("a100-large", "Nvidia A100 large", 12, 142, 1, "A100", 80, 1000, 2.50),
    ("a100x4", "4x Nvidia A100", 48, 568, 4, "A100", 320, 4000, 10.00),
    ("a100x8", "8x Nvidia A100", 96, 1136, 8, "A100", 640, 8000, 20.00),
    ("rtx-pro-6000", "Nvidia RTX PRO 6000", 23, 256, 1, "RTX PRO 6000", 96, 475, 2.75),
    ("rtx-pro-6000x2", "2x Nvidia RTX PRO 6000", 46, 512, 2, "RTX PRO 6000", 192, 950, 5.50),
    ("rtx-pro-6000x4", "4x Nvidia RTX PRO 6000", 92, 1024, 4, "RTX PRO 6000", 384, 1900, 11.00),
    ("rtx-pro-6000x8", "8x Nvidia RTX PRO 6000", 184, 2048, 8, "RTX PRO 6000", 768, 3800, 22.00),
)

#: the flavor every new or duplicated Space gets unless another is requested
DEFAULT_FLAVOR = "cpu-basic"

# Free CPU Spaces sleep after 48 h without visitors (not configurable); paid hardware never sleeps by default.
_DEFAULT_SLEEP_SECONDS: Mapping[str, int] = {"cpu-basic": 48 * 3600}


def build_flavors(
    rows: Iterable[tuple[Any, ...]] = FLAVOR_TABLE, overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Flavor]:
    """Build the name -> :class:`Flavor` map from table rows, then apply per-flavor field overrides.

    ``overrides`` is e.g. ``{"t4-small": {"price_per_hour_usd": 0.5}}`` (from operator configuration). An unknown
    flavor or field raises :class:`BadRequest` so a typo in configuration is loud, not silently ignored.
    """
    flavors = {row[0]: Flavor(*row) for row in rows}
    fields = {f.name for f in dataclasses.fields(Flavor)} - {"name"}
    for name, changes in (overrides or {}).items():
        if name not in flavors:
            raise BadRequest(f"Hardware override for unknown flavor {name!r}; known: {', '.join(flavors)}")
        unknown = set(changes) - fields
        if unknown:
            raise BadRequest(
                f"Hardware override for {name!r} has unknown fields {sorted(unknown)}; known: {sorted(fields)}"
            )
        flavors[name] = dataclasses.replace(flavors[name], **changes)
    return flavors


#: the built-in flavors, in display order (CPU first, then GPUs)
FLAVORS: dict[str, Flavor] = build_flavors()


def get_flavor(name: str, flavors: Mapping[str, Flavor] = FLAVORS) -> Flavor:
    """Return the flavor called ``name``; raise :class:`BadRequest` listing the valid names otherwise."""
    try:
        return flavors[name]
    except (KeyError, TypeError):
        raise BadRequest(
            f"Unknown hardware flavor {name!r}. Valid flavors: {', '.join(flavors)}.", code="InvalidHardware"
        ) from None


def is_gpu(name: str, flavors: Mapping[str, Flavor] = FLAVORS) -> bool:
    """True when the flavor has at least one GPU (ZeroGPU counts). Raises for an unknown name."""
    return get_flavor(name, flavors).is_gpu


def default_sleep_seconds(flavor_name: str) -> int | None:
    """Idle seconds before a Space on this flavor sleeps by default: 172800 on cpu-basic, ``None`` (never) else."""
    return _DEFAULT_SLEEP_SECONDS.get(flavor_name)


def _amount(value: float, unit: str) -> str:
    # 2.0 -> "2 vCPU", 0.5 -> "0.5 vCPU": the HF API shows whole numbers without a decimal point
    text = str(int(value)) if float(value).is_integer() else f"{value:g}"
    return f"{text} {unit}"


def unit_cost_micro_usd(flavor: Flavor) -> int:
    """Price per minute in micro-USD, rounded to the nearest integer (e.g. $0.40/h -> 6667)."""
    return round(flavor.price_per_hour_usd * 1_000_000 / 60)


def hardware_json(flavor: Flavor) -> dict[str, Any]:
    """One item of ``GET /api/spaces/hardware`` (wire reference §5.9); prices are per minute."""
    accelerator = None
    if flavor.is_gpu:
        accelerator = {
            "type": "gpu",
            "model": flavor.gpu_model,
            "quantity": flavor.gpu_count,
            "vram": _amount(flavor.gpu_memory_gb, "GB") if flavor.gpu_memory_gb is not None else None,
            "manufacturer": "Nvidia",
        }
    micro = unit_cost_micro_usd(flavor)
    return {
        "name": flavor.name,
        "prettyName": flavor.pretty_name,
        "cpu": _amount(flavor.cpu, "vCPU"),
        "ram": _amount(flavor.memory_gb, "GB"),
        "ephemeralStorage": _amount(flavor.disk_gb, "GB"),
        "accelerator": accelerator,
        "unitCostMicroUSD": micro,
        "unitCostUSD": micro / 1_000_000,
        "unitLabel": "minute",
    }


def effective_sleep_time(sleep_time: int | None, flavor_name: str) -> int | None:
    """A Space's sleep time in seconds: its own setting, else its flavor's default; -1 or None = never."""
    return sleep_time if sleep_time is not None else default_sleep_seconds(flavor_name)
