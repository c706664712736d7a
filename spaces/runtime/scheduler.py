"""Placement: which node runs a Space, and which GPUs it gets. Pure functions over plain records, no I/O.

* :func:`place` places one :class:`Request` and returns a :class:`Placement` (node + exclusive GPU device
  indices, which the caller passes on as ``CUDA_VISIBLE_DEVICES`` / Docker device requests) or an
  :class:`Unschedulable` with a reason code and a sentence for the Space's stage message.
* :func:`plan_queue` drains a FIFO queue of requests against the same inputs: head-of-line blocking **per
  flavor** (a waiting t4-small does not hold up cpu-basic), strict FIFO within a flavor, and a message per
  waiting Space ("waiting for t4-small capacity: 2 ahead of you").

Inputs:

* ``nodes``: every schedulable :class:`~spaces.runtime.nodes.Node`.
* ``usage``: ``{node name: NodeUsage}`` of what is *holding* capacity now: Spaces running or starting. Sleeping,
  paused, stopped and queued Spaces hold nothing; the caller leaves them out (build it with :func:`tally` over
  the placements of the Spaces that hold capacity). Whatever is queued therefore gets capacity back the moment a
  Space goes to sleep: call :func:`plan_queue` again on every such change.
* ``policy``: :class:`Policy`, with the overcommit factors.

Requests, limits and overcommit (the Kubernetes model): a Space's *request* (``flavors.Reservation``) is what
placement counts; its *limit* is what its cgroup enforces. A node offers its *allocatable* capacity, what the
system and the platform leave (``Node.reserved_*``), times the policy's overcommit factor per resource:
``cpu_overcommit`` 16 offers a 2-core node's 1.5 allocatable cores as 24 cores of requests. GPUs are never
overcommitted. :func:`holds` says how many Spaces of one request an empty node takes.

Algorithm: a node fits when its free cores, MiB and GPUs (of the flavor's model, if the policy says so) cover the
reservation and its labels include the request's ``node_selector``. Among fitting nodes, **best fit on the
dominant resource**: the request's dominant resource on a node is GPUs if it asks for any, else whichever of
cores and memory it takes the larger share of; the node left with the smallest free fraction of that resource
wins (ties: name order, so results are deterministic). CPU-only requests prefer nodes without GPUs, so GPU nodes'
cores stay free for GPU Spaces. Nodes are grouped into pools of identical shape and labels with free capacity
kept sorted, so a placement costs a bisection per pool rather than a scan of every node.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel, Field

from spaces import errors
from spaces.runtime.nodes import Node


@dataclass(frozen=True)
class Request:
    """One Space asking to run: what it reserves (see ``flavors.Reservation``)."""

    space_id: str
    flavor: str
    cpu: float
    memory_mb: int
    gpus: int = 0
    gpu_model: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_flavor(cls, space_id: str, flavor) -> "Request":
        """From a :class:`spaces.runtime.flavors.RuntimeFlavor`."""
        r = flavor.reservation
        return cls(space_id, flavor.name, r.cpu, r.memory_mb, r.gpus, r.gpu_model, dict(r.node_selector))

    def need(self) -> str:
        if self.gpus:
            return f"{self.gpus}x {self.gpu_model or 'GPU'}"
        return f"{self.cpu:g} core{'' if self.cpu == 1 else 's'} and {self.memory_mb} MB"


@dataclass(frozen=True)
class Placement:
    """Where a Space runs and what it holds there; also the unit of ``usage`` (see :func:`tally`)."""

    space_id: str
    flavor: str
    node: str
    cpu: float
    memory_mb: int
    gpus: tuple[int, ...] = ()  # device indices on ``node``, exclusively this Space's

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(str(i) for i in self.gpus)


@dataclass(frozen=True)
class Unschedulable:
    """Why a request cannot be placed. ``transient``: capacity may free up (queue it); else it never fits here."""

    reason: str  # NoNodes | NoGpu | NoGpuModel | NoMatchingNode | TooLarge | Full
    message: str
    transient: bool = False

    def error(self) -> errors.Unschedulable:
        kind = errors.WaitingForCapacity if self.transient else errors.Unschedulable  # the reconciler queues those
        return kind(self.message, code=self.reason)


@dataclass(frozen=True)
class NodeUsage:
    """What the Spaces holding capacity on one node take from it."""

    cpu: float = 0.0
    memory_mb: int = 0
    gpus: frozenset[int] = frozenset()
    spaces: int = 0


@dataclass(frozen=True)
class Policy:
    #: GPU flavors only on GPUs whose model names the flavor's (t4-small on a "Tesla T4"); off by default, so a
    #: self-hosted RTX card serves any GPU flavor
    match_gpu_model: bool = False
    #: CPU-only Spaces go to GPU nodes only when no CPU node fits
    keep_gpu_nodes_for_gpu: bool = True
    #: a node offers its allocatable cores (less ``reserved_cpu``) times this of CPU requests
    cpu_overcommit: float = 1.0
    #: the same for memory (MiB less ``reserved_memory_mb``); above 1 the OOM killer is the price
    memory_overcommit: float = 1.0

    def allocatable(self, node: Node) -> tuple[int, int]:
        """(millicores, MiB) of requests ``node`` offers: what it leaves Spaces, times the overcommit."""
        cpu = max(0.0, node.cpu - node.reserved_cpu) * self.cpu_overcommit
        return _milli(cpu), int(max(0, node.memory_mb - node.reserved_memory_mb) * self.memory_overcommit)


class SchedulerSettings(BaseModel):
    """Placement policy (nest as ``Settings.scheduler``; env ``SPACES_SCHEDULER__...``)."""

    match_gpu_model: bool = Field(False, description="GPU flavors only on GPUs of their model (t4-small on a T4)")
    keep_gpu_nodes_for_gpu: bool = Field(True, description="CPU-only Spaces use GPU nodes only when no CPU node fits")
    cpu_overcommit: float = Field(
        16.0, gt=0, description="CPU requests a node offers per allocatable core (its cores less nodes.reserved_cpu). "
        "16: a 2-core machine offers 24 cores of requests, 240 cpu-basic Spaces (0.1 core each). CPU is "
        "compressible: when many Spaces are busy at once the kernel shares the cores by weight and each runs "
        "slower; nothing is killed. An idle Gradio or Streamlit Space uses well under 1% of a core.")
    memory_overcommit: float = Field(
        1.0, gt=0, description="memory requests a node offers per allocatable MiB (its memory less "
        "nodes.reserved_memory_mb). 1: requests never add up to more than the machine has. Memory is not "
        "compressible: above 1 the price is the OOM killer (within the Spaces' own cgroup, never the platform). "
        "Requests are what an idle Space holds (flavors.requests: cpu-basic 96 MiB); limits let each grow to its "
        "flavor's size, and sleeping Spaces give their memory back first when it runs short.")

    def policy(self) -> Policy:
        return Policy(self.match_gpu_model, self.keep_gpu_nodes_for_gpu, self.cpu_overcommit, self.memory_overcommit)


class Waiting(NamedTuple):
    """A queued request that was not placed, with the sentence for its stage message."""

    item: Request
    message: str
    reason: str  # the Unschedulable reason, or "Queued" behind an earlier request of its flavor
    ahead: int  # requests of the same flavor ahead of it in the queue


def tally(placements: Iterable[Placement]) -> dict[str, NodeUsage]:
    """Sum placements per node into the ``usage`` mapping :func:`place` takes."""
    acc: dict[str, list] = {}
    for p in placements:
        a = acc.setdefault(p.node, [0, 0, set(), 0])
        a[0] += _milli(p.cpu)
        a[1] += p.memory_mb
        a[2].update(p.gpus)
        a[3] += 1
    return {n: NodeUsage(c / 1000, m, frozenset(g), k) for n, (c, m, g, k) in acc.items()}


def holds(node: Node, request: Request, policy: Policy = Policy()) -> int:
    """How many Spaces of ``request`` an empty ``node`` takes (its allocatable capacity with overcommit; GPUs
    whole). The README's table of Spaces per machine size is this."""
    cpu, mem = policy.allocatable(node)
    counts = [cpu // _milli(request.cpu) if _milli(request.cpu) else None,
              mem // request.memory_mb if request.memory_mb else None,
              len(node.gpus) // request.gpus if request.gpus else None]
    known = [c for c in counts if c is not None]
    return min(known) if known else 0


def place(request: Request, nodes: Sequence[Node], usage: Mapping[str, NodeUsage],
          policy: Policy = Policy()) -> Placement | Unschedulable:
    """Place one request; inputs are not modified."""
    return _Packer(nodes, usage, policy).place(request)


def plan_queue(queue: Sequence[Request], nodes: Sequence[Node], usage: Mapping[str, NodeUsage],
               policy: Policy = Policy()) -> tuple[list[Placement], list[Waiting]]:
    """Drain ``queue`` (oldest first) onto the nodes; return the placements made and the requests left waiting.

    Each placement takes its capacity before the next request is considered. Once a request of a flavor has to
    wait for capacity, every later request of that flavor waits behind it (strict FIFO per flavor), while other
    flavors go on. A request that can never fit on these nodes (no GPU, no matching node, too large) waits with
    that reason and blocks nobody.
    """
    packer = _Packer(nodes, usage, policy)
    placements: list[Placement] = []
    waiting: list[Waiting] = []
    behind: dict[str, int] = {}  # flavor -> requests of it already waiting for capacity
    for item in queue:
        ahead = behind.get(item.flavor)
        if ahead is not None:
            waiting.append(Waiting(item, f"waiting for {item.flavor} capacity: {ahead} ahead of you", "Queued", ahead))
            behind[item.flavor] = ahead + 1
            continue
        result = packer.place(item, commit=True)
        if isinstance(result, Placement):
            placements.append(result)
        elif result.transient:
            waiting.append(Waiting(item, f"waiting for {item.flavor} capacity: next in line ({result.message})",
                                   result.reason, 0))
            behind[item.flavor] = 1
        else:
            waiting.append(Waiting(item, result.message, result.reason, 0))
    return placements, waiting


# -- internals ----------------------------------------------------------------------------------------------


def _milli(cpu: float) -> int:
    # integer millicores: sums of 0.25 and 0.1 must not drift
    return round(cpu * 1000)


def gpu_model_matches(wanted: str | None, model: str) -> bool:
    """``T4`` matches "Tesla T4", ``A100`` matches "NVIDIA A100-SXM4-80GB", ``L4`` does not match "L40S"."""
    if not wanted:
        return True
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(wanted)}(?![A-Za-z0-9])", model, re.IGNORECASE) is not None


class _Slot:
    """Mutable free capacity of one node while packing."""

    __slots__ = ("node", "name", "free_cpu", "free_mem", "free_gpus", "pool")

    def __init__(self, node: Node, used: NodeUsage | None, policy: Policy) -> None:
        self.node = node
        self.name = node.name
        used = used or NodeUsage()
        cpu, mem = policy.allocatable(node)
        self.free_cpu = cpu - _milli(used.cpu)
        self.free_mem = mem - used.memory_mb
        self.free_gpus = sorted(g.index for g in node.gpus if g.index not in used.gpus)
        self.pool: _Pool


class _Pool:
    """Nodes with identical capacity, GPU models and labels; free capacity kept sorted per resource."""

    def __init__(self, node: Node, policy: Policy) -> None:
        self.labels = node.labels
        self.cap_cpu, self.cap_mem = policy.allocatable(node)
        self.models = {g.index: g.model for g in node.gpus}
        self.cap_gpu = len(node.gpus)
        self.slots: list[_Slot] = []
        self.by: dict[str, list[tuple[int, str]]] = {"cpu": [], "mem": [], "gpu": []}

    @staticmethod
    def keys(slot: _Slot) -> dict[str, tuple[int, str]]:
        return {"cpu": (slot.free_cpu, slot.name), "mem": (slot.free_mem, slot.name),
                "gpu": (len(slot.free_gpus), slot.name)}

    def add(self, slot: _Slot) -> None:
        slot.pool = self
        self.slots.append(slot)
        for dim, key in self.keys(slot).items():
            bisect.insort(self.by[dim], key)

    def update(self, slot: _Slot, cpu: int, mem: int, gpus: tuple[int, ...]) -> None:
        for dim, key in self.keys(slot).items():
            lst = self.by[dim]
            del lst[bisect.bisect_left(lst, key)]
        slot.free_cpu -= cpu
        slot.free_mem -= mem
        slot.free_gpus = [g for g in slot.free_gpus if g not in gpus]
        for dim, key in self.keys(slot).items():
            bisect.insort(self.by[dim], key)


class _Packer:
    def __init__(self, nodes: Sequence[Node], usage: Mapping[str, NodeUsage], policy: Policy) -> None:
        self.policy = policy
        self.nodes = list(nodes)
        self.slots: dict[str, _Slot] = {}
        pools: dict[tuple, _Pool] = {}
        for node in self.nodes:
            if node.name in self.slots:
                raise ValueError(f"two nodes are called {node.name!r}")
            key = (policy.allocatable(node), tuple((g.index, g.model) for g in node.gpus),
                   tuple(sorted(node.labels.items())))
            pool = pools.get(key) or pools.setdefault(key, _Pool(node, policy))
            slot = self.slots[node.name] = _Slot(node, usage.get(node.name), policy)
            pool.add(slot)
        self.pools = list(pools.values())

    def _usable_gpus(self, pool: _Pool, free: list[int], req: Request) -> list[int]:
        if not self.policy.match_gpu_model or not req.gpu_model:
            return free
        return [i for i in free if gpu_model_matches(req.gpu_model, pool.models[i])]

    def place(self, req: Request, commit: bool = False) -> Placement | Unschedulable:
        cpu, mem, ngpu = _milli(req.cpu), req.memory_mb, req.gpus
        best: tuple | None = None
        candidates = 0  # pools that could hold the request when empty
        for pool in self.pools:
            if not all(pool.labels.get(k) == v for k, v in req.node_selector.items()):
                continue
            if ngpu and len(self._usable_gpus(pool, list(pool.models), req)) < ngpu:
                continue
            if pool.cap_cpu < cpu or pool.cap_mem < mem:
                continue
            candidates += 1
            if ngpu:
                dim, need, cap = "gpu", ngpu, pool.cap_gpu
            elif cpu * pool.cap_mem >= mem * pool.cap_cpu:  # cpu share >= memory share, without division
                dim, need, cap = "cpu", cpu, pool.cap_cpu
            else:
                dim, need, cap = "mem", mem, pool.cap_mem
            lst = pool.by[dim]
            for free, name in lst[bisect.bisect_left(lst, (need, "")):]:
                slot = self.slots[name]
                if slot.free_cpu < cpu or slot.free_mem < mem:
                    continue
                if ngpu and len(self._usable_gpus(pool, slot.free_gpus, req)) < ngpu:
                    continue
                penalty = 1 if (not ngpu and pool.cap_gpu and self.policy.keep_gpu_nodes_for_gpu) else 0
                score = (penalty, (free - need) / cap if cap else 0.0, name)
                if best is None or score < best[0]:
                    best = (score, slot)
                break  # sorted by free amount then name: the first fit is this pool's best fit
        if best is None:
            return self._why(req, candidates)
        slot = best[1]
        gpus = tuple(self._usable_gpus(slot.pool, slot.free_gpus, req)[:ngpu])
        if commit:
            slot.pool.update(slot, cpu, mem, gpus)
        return Placement(req.space_id, req.flavor, slot.name, req.cpu, req.memory_mb, gpus)

    def _why(self, req: Request, candidates: int) -> Unschedulable:
        nodes = self.nodes
        need = f"{req.flavor} needs {req.need()}"
        if not nodes:
            return Unschedulable("NoNodes", f"no nodes are registered; {need}")
        if req.gpus and not any(n.gpus for n in nodes):
            return Unschedulable("NoGpu", f"no node has a GPU; {need}")
        matching = [n for n in nodes if n.matches(req.node_selector)]
        if not matching:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(req.node_selector.items()))
            return Unschedulable("NoMatchingNode", f"no node has the labels {labels}; {need}")
        if req.gpus:
            wanted = req.gpu_model if self.policy.match_gpu_model and req.gpu_model else None
            most = max(sum(gpu_model_matches(wanted, g.model) for g in n.gpus) for n in matching)
            if most < req.gpus:
                what = f"{req.gpus}x {wanted}" if wanted else f"{req.gpus} GPUs"
                return Unschedulable("NoGpuModel" if wanted else "NoGpu",
                                     f"no node has {what}; {need} (largest: {most})")
        if not candidates:
            offered = [self.policy.allocatable(n) for n in matching]
            cores = max(c for c, _ in offered) / 1000
            mem = max(m for _, m in offered)
            return Unschedulable(
                "TooLarge",
                f"no node is large enough: {req.flavor} reserves {req.cpu:g} cores and {req.memory_mb} MB; "
                f"nodes offer at most {cores:g} cores and {mem} MB (overcommit included)",
            )
        return Unschedulable("Full", f"all nodes that fit {req.flavor} are busy; it needs {req.need()}",
                             transient=True)
