"""Nodes: the machines Spaces are placed on, detected (this machine) or declared (Docker engines).

* :class:`Node` is the scheduler's view of a machine: capacity (cores, MiB, GPUs by device index), labels for
  flavor pools, and how the runtime reaches it (``backend`` + ``url``).
* :func:`detect_local_node` registers the machine the control plane runs on with its real CPUs (the affinity
  mask, so ``taskset``/cpusets are honoured), memory (``/proc/meminfo``, capped by a cgroup memory limit) and
  NVIDIA GPUs (NVML through ``pynvml`` when importable, else ``nvidia-smi``; none when neither answers).
* :class:`NodeConfig` declares more nodes in configuration (Docker engines at ``unix://``, ``tcp://`` or
  ``ssh://`` URLs with labels and GPUs); :func:`node_from_config` turns one into a :class:`Node`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

log = logging.getLogger(__name__)

BackendKind = Literal["local", "docker", "kubernetes"]


@dataclass(frozen=True)
class Gpu:
    index: int  # the device index CUDA_VISIBLE_DEVICES / Docker device requests use
    model: str  # e.g. "Tesla T4", "NVIDIA H100 80GB HBM3"
    memory_mb: int


@dataclass(frozen=True)
class Node:
    name: str
    cpu: float  # cores
    memory_mb: int
    gpus: tuple[Gpu, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    backend: BackendKind = "local"
    url: str | None = None  # Docker engine URL for docker nodes; None for local
    #: what the system and the platform keep of the machine (the local node: they run on it); no Space's limit
    #: goes above the rest, see :attr:`space_cpu`
    reserved_cpu: float = 0.0
    reserved_memory_mb: int = 0

    @property
    def space_cpu(self) -> float:
        """The most cores one Space may use here (its flavor's limit is clamped to it)."""
        return max(min(self.cpu, 0.1), self.cpu - self.reserved_cpu)

    @property
    def space_memory_mb(self) -> int:
        """The most MiB one Space may use here (its flavor's limit is clamped to it)."""
        return max(min(self.memory_mb, 64), self.memory_mb - self.reserved_memory_mb)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """True when every ``key: value`` of ``selector`` is among this node's labels."""
        return all(self.labels.get(k) == v for k, v in selector.items())


# -- configuration ------------------------------------------------------------------------------------------


class GpuConfig(BaseModel):
    index: int = Field(ge=0)
    model: str
    memory_mb: int = Field(0, ge=0)


class NodeConfig(BaseModel):
    """One declared node (nest a list as ``Settings.nodes.nodes``)."""

    name: str = Field(min_length=1, max_length=63)
    url: str | None = Field(None, description="Docker engine: unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host")
    cpu: float | None = Field(None, gt=0, description="cores offered; default: what the engine reports")
    memory_mb: int | None = Field(None, gt=0, description="MiB offered; default: what the engine reports")
    labels: dict[str, str] = Field(default_factory=dict, description="for flavor node selectors, e.g. {pool: t4}")
    gpus: list[GpuConfig] = Field(default_factory=list, description="GPUs declared on that node, by device index")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("unix://", "tcp://", "ssh://", "http://", "https://")):
            raise ValueError(f"node url {v!r} must start with unix://, tcp://, ssh://, http:// or https://")
        return v

    @field_validator("gpus")
    @classmethod
    def _unique_indices(cls, v: list[GpuConfig]) -> list[GpuConfig]:
        indices = [g.index for g in v]
        if len(set(indices)) != len(indices):
            raise ValueError(f"GPU indices must be unique on a node, got {indices}")
        return v


class NodesSettings(BaseModel):
    """Node configuration (nest as ``Settings.nodes``; env ``SPACES_NODES__...``)."""

    detect_local: bool = Field(True, description="register this machine as node 'local' with its real capacity")
    local_labels: dict[str, str] = Field(default_factory=dict, description="labels of the local node")
    reserved_cpu: float = Field(0.5, ge=0, description="cores of the local node kept for the system and the "
                                "platform: no Space's CPU limit goes above the node's cores less this")
    reserved_memory_mb: int | None = Field(None, ge=0, description="MiB of the local node kept for the system and "
                                           "the platform (no Space's memory limit, nor all Spaces' together, go "
                                           "above the rest); default a tenth of the node, at least 1024")
    nodes: list[NodeConfig] = Field(default_factory=list, description="more nodes: Docker engines")


def node_from_config(cfg: NodeConfig, *, cpu: float | None = None, memory_mb: int | None = None) -> Node:
    """A :class:`Node` from configuration; ``cpu``/``memory_mb`` are what the engine reported, used when the
    configuration does not say (configuration wins: an operator may offer less than the machine has)."""
    cores = cfg.cpu if cfg.cpu is not None else cpu
    mem = cfg.memory_mb if cfg.memory_mb is not None else memory_mb
    if cores is None or mem is None:
        raise ValueError(f"node {cfg.name!r}: cpu and memory_mb are neither configured nor reported by its engine")
    gpus = tuple(Gpu(g.index, g.model, g.memory_mb) for g in sorted(cfg.gpus, key=lambda g: g.index))
    return Node(cfg.name, float(cores), int(mem), gpus, dict(cfg.labels), "docker" if cfg.url else "local", cfg.url)


# -- local detection ----------------------------------------------------------------------------------------


def detect_local_node(name: str = "local", labels: Mapping[str, str] | None = None, *, reserved_cpu: float = 0.0,
                      reserved_memory_mb: int | None = 0) -> Node:
    """This machine as a node: real CPUs, memory and NVIDIA GPUs (none when no driver answers). What the system
    and the platform keep: ``reserved_*`` (``reserved_memory_mb`` None: a tenth of the memory, at least 1024 MiB)."""
    memory = _memory_mb()
    keep = reserved_memory_mb if reserved_memory_mb is not None else max(1024, memory // 10)
    return Node(name, float(_cpu_count()), memory, detect_gpus(), dict(labels or {}), "local", None,
                reserved_cpu=reserved_cpu, reserved_memory_mb=keep)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int:
    total_kb = 0
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_kb = int(line.split()[1])
                break
    except OSError:
        pass
    total = total_kb // 1024
    limit = _cgroup_memory_limit_mb()
    # inside a container the cgroup limit is what we really have; /proc/meminfo shows the host
    return min(total, limit) if limit and total else (total or limit or 0)


def _cgroup_memory_limit_mb() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # v1 reports "no limit" as a huge number, v2 as "max"
            return int(raw) // (1024 * 1024)
    return None


def detect_gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs by index, model and memory: NVML first, then ``nvidia-smi``; ``()`` when neither answers."""
    gpus = _gpus_from_nvml()
    if gpus is None:
        gpus = _gpus_from_nvidia_smi()
    return gpus or ()


def _gpus_from_nvml() -> tuple[Gpu, ...] | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver: NVMLError_LibraryNotFound / DriverNotLoaded
        log.debug("NVML unavailable: %s", exc)
        return None
    try:
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            model = pynvml.nvmlDeviceGetName(h)
            model = model.decode() if isinstance(model, bytes) else model
            found.append(Gpu(i, model, int(pynvml.nvmlDeviceGetMemoryInfo(h).total) // (1024 * 1024)))
        return tuple(found)
    except Exception as exc:
        log.warning("NVML failed while listing GPUs: %s", exc)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _gpus_from_nvidia_smi() -> tuple[Gpu, ...] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed: %s", exc)
        return None
    return parse_nvidia_smi(out)


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """Parse ``nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader[,nounits]`` output.

    Memory is MiB with or without the `` MiB`` unit; malformed lines are skipped (logged), not fatal.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.rsplit(",", 1)[0].split(",", 1)] + [line.rsplit(",", 1)[-1].strip()]
        try:
            index, model, mem = int(parts[0]), parts[1], parts[2]
            memory_mb = int(float(mem.split()[0])) if mem and mem[0].isdigit() else 0
        except (ValueError, IndexError):
            log.warning("ignoring unparsable nvidia-smi line %r", line)
            continue
        gpus.append(Gpu(index, model, memory_mb))
    return tuple(sorted(gpus, key=lambda g: g.index))
