"""Flavors as the runtime sees them: what the scheduler reserves (request) against what a Space may use (limit).

A flavor's *shape* (``spaces.domain.hardware``: cpu-basic is 2 vCPU / 16 GB) is its **limit**: the most the
Space may use (cgroup, ``docker --cpus/--memory``, Kubernetes ``limits``). What the scheduler **reserves** on a
node is a separate, smaller **request**: what an idle Space of the flavor holds (the same overcommit Kubernetes
makes with requests < limits). Nodes offer their requests with the scheduler's overcommit factors
(``SchedulerSettings.cpu_overcommit``, ``memory_overcommit``), so one 2-core, 24 GB machine holds 225 awake
cpu-basic Spaces (see ``scheduler.holds`` and the README). Only awake Spaces hold a request: a sleeping one gives
it back, a static one (files the platform serves) never takes one. GPUs are never overcommitted: a GPU flavor
reserves its GPUs whole.

Defaults (all operator-overridable through :class:`FlavorSettings`):

=================  ======================  ======================================
flavor             reserves (request)      limit
=================  ======================  ======================================
cpu-basic          0.1 core, 96 MiB        2 vCPU, 16 GB
cpu-upgrade        1 core, 2048 MiB        8 vCPU, 32 GB
GPU flavors        n GPUs + n cores, n*4 GB  the flavor's shape (n = its GPU count)
=================  ======================  ======================================

cpu-basic's 96 MiB is an idle Gradio app forked from its environment's zygote with a margin (``bench/density.py``
measures it); its 0.1 core is an idle app's use with a wide margin.

Memory is in MiB throughout the runtime (``memory_mb``); a flavor's "16 GB" is 16 * 1024 MiB, matching the
``MEMORY=16Gi`` an app sees. Prices per hour come from the hardware table, overridable here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from spaces.domain import hardware as hw
from spaces.errors import BadRequest
from spaces.runtime.contracts import Limits
from spaces.runtime.nodes import Node

#: the taint GPU node pools usually carry (GKE, AKS, the NVIDIA GPU operator); GPU flavors tolerate it
GPU_TOLERATION: dict[str, str] = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


class RequestOverride(BaseModel):
    """An operator's change to what one flavor reserves; unset fields keep the default."""

    cpu: float | None = Field(None, ge=0, description="cores reserved on the node")
    memory_mb: int | None = Field(None, ge=0, description="MiB reserved on the node")


class FlavorSettings(BaseModel):
    """Runtime flavor configuration (nest as ``Settings.flavors``; env ``SPACES_FLAVORS__...``)."""

    requests: dict[str, RequestOverride] = Field(
        default_factory=dict, description='what each flavor reserves, e.g. {"cpu-basic": {"cpu": 0.5}}'
    )
    hardware: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='flavor shape/price overrides, e.g. {"t4-small": {"price_per_hour_usd": 0.5}}',
    )
    disabled: list[str] = Field(
        default_factory=list, description='flavors this instance does not offer, e.g. ["a100x8"]: not listed, '
        'refused when asked for (a Space already on one is refused at its next start, saying so)')
    node_selectors: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='node labels a flavor needs (our scheduler and Kubernetes nodeSelector), '
        'e.g. {"t4-small": {"pool": "t4"}}',
    )
    tolerations: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Kubernetes tolerations per flavor; GPU flavors tolerate the nvidia.com/gpu taint by default",
    )
    gpu_cpu_per_gpu: float = Field(1.0, ge=0, description="cores a GPU flavor reserves per GPU")
    gpu_memory_mb_per_gpu: int = Field(4096, ge=0, description="MiB of host memory a GPU flavor reserves per GPU")
    disk_mb: int = Field(5120, ge=0, description="MiB a Space may write (home, files next to its code), every "
                         "flavor: Hugging Face gives 50 GB of ephemeral disk; 5 GiB keeps a few dozen Spaces within "
                         "one small host's free disk (the files are sparse: a Space takes what it wrote). 0: no limit")
    disk_mb_per_flavor: dict[str, int] = Field(default_factory=dict, description='per flavor, e.g. {"a10g-large": '
                                               '51200}')


@dataclass(frozen=True)
class Reservation:
    """What the scheduler takes from a node for one Space of a flavor."""

    cpu: float
    memory_mb: int
    gpus: int = 0
    gpu_model: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeFlavor:
    """One flavor resolved for the runtime: shape and price, reservation, limit, node pool."""

    flavor: hw.Flavor
    reservation: Reservation
    tolerations: tuple[Mapping[str, Any], ...] = ()
    disk_mb: int = 0

    @property
    def name(self) -> str:
        return self.flavor.name

    @property
    def limits(self) -> Limits:
        """The flavor's shape as a limit (GPU indices are filled in from the placement)."""
        return Limits(cpu=float(self.flavor.cpu), memory_mb=int(self.flavor.memory_gb * 1024), disk_mb=self.disk_mb)

    @property
    def price_per_hour_usd(self) -> float:
        return self.flavor.price_per_hour_usd


_CPU_DEFAULTS: dict[str, tuple[float, int]] = {"cpu-basic": (0.1, 96), "cpu-upgrade": (1.0, 2048)}


def fit_limits(flavor: RuntimeFlavor, node: Node, gpus: tuple[int, ...] = ()) -> tuple[Limits, str | None]:
    """The flavor's limits on ``node``: never above what the node leaves one Space (``Node.space_cpu``,
    ``space_memory_mb``: a cpu-basic Space may not take a 2-core machine whole). Returns the limits and, when they
    were clamped, a sentence saying so for the Space's run log; None otherwise."""
    want = flavor.limits
    cpu, memory = min(want.cpu, node.space_cpu), min(want.memory_mb, node.space_memory_mb)
    limits = Limits(cpu=cpu, memory_mb=memory, gpus=gpus, disk_mb=want.disk_mb)
    if (cpu, memory) == (want.cpu, want.memory_mb):
        return limits, None
    return limits, (f"{flavor.name} allows {want.cpu:g} CPUs and {want.memory_mb} MiB, more than node {node.name} "
                    f"leaves one Space ({node.space_cpu:g} CPUs, {node.space_memory_mb} MiB): this Space's limits "
                    f"are {cpu:g} CPUs and {memory} MiB.")


class FlavorCatalog:
    """Every flavor resolved from the hardware table plus :class:`FlavorSettings`. Immutable after init.

    The one catalog of a process: built once from ``Settings.flavors`` (``spaces.hub.app.build_hub``) and passed
    to whatever lists, validates, prices, places or limits a flavor (hub API and pages, Space service, quota and
    bill, scheduler, backends), so that an operator's override reads the same everywhere."""

    def __init__(self, settings: FlavorSettings | None = None) -> None:
        settings = settings or FlavorSettings()
        base = hw.build_flavors(overrides=settings.hardware)
        unknown = (set(settings.requests) | set(settings.node_selectors) | set(settings.tolerations)
                   | set(settings.disk_mb_per_flavor) | set(settings.disabled)) - set(base)
        if unknown:
            # a typo in configuration must be loud, like hardware.build_flavors does for shapes
            raise BadRequest(f"Flavor settings name unknown flavors {sorted(unknown)}; known: {', '.join(base)}")
        if hw.DEFAULT_FLAVOR in settings.disabled:
            raise BadRequest(f"{hw.DEFAULT_FLAVOR} is every new Space's flavor: it cannot be disabled")
        self._flavors: dict[str, RuntimeFlavor] = {}
        for name, flavor in base.items():
            if name in settings.disabled:
                continue
            if flavor.is_gpu:
                cpu = settings.gpu_cpu_per_gpu * flavor.gpu_count
                mem = settings.gpu_memory_mb_per_gpu * flavor.gpu_count
                tolerations: tuple[Mapping[str, Any], ...] = (GPU_TOLERATION,)
            else:
                # a CPU flavor not in the defaults (an operator-added one) reserves a quarter of its shape
                cpu, mem = _CPU_DEFAULTS.get(name, (flavor.cpu / 4, int(flavor.memory_gb * 1024 / 4)))
                tolerations = ()
            override = settings.requests.get(name)
            if override is not None:
                cpu = override.cpu if override.cpu is not None else cpu
                mem = override.memory_mb if override.memory_mb is not None else mem
            if name in settings.tolerations:
                tolerations = tuple(settings.tolerations[name])
            reservation = Reservation(
                cpu=float(cpu), memory_mb=int(mem), gpus=flavor.gpu_count, gpu_model=flavor.gpu_model,
                node_selector=dict(settings.node_selectors.get(name, {})),
            )
            disk = settings.disk_mb_per_flavor.get(name, settings.disk_mb)
            self._flavors[name] = RuntimeFlavor(flavor, reservation, tolerations, disk)

    def get(self, name: str) -> RuntimeFlavor:
        """The flavor called ``name``; :class:`spaces.errors.BadRequest` listing valid names otherwise."""
        if name not in self._flavors:  # the standard "Unknown hardware flavor" error, naming the valid ones
            hw.get_flavor(name, {n: f.flavor for n, f in self._flavors.items()})
        return self._flavors[name]

    def names(self) -> list[str]:
        return list(self._flavors)

    def shapes(self) -> list[hw.Flavor]:
        """Every flavor's shape and price, in display order: what the hub's API lists and its pages offer."""
        return [f.flavor for f in self._flavors.values()]

    def prices(self) -> dict[str, "Price"]:
        """Per-flavor billing rates for :func:`spaces.runtime.quota.bill`."""
        return {n: Price(f.price_per_hour_usd, f.flavor.gpu_count) for n, f in self._flavors.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._flavors

    def __iter__(self):
        return iter(self._flavors.values())


@dataclass(frozen=True)
class Price:
    """What one running hour of a flavor costs, and how many GPUs it counts for GPU-minute quotas."""

    per_hour_usd: float
    gpus: int = 0
