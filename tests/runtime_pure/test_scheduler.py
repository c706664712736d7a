"""The pure placement function and the FIFO queue (spaces.runtime.scheduler), table-driven."""

from __future__ import annotations

import random

import pytest

from spaces import errors
from spaces.runtime.flavors import FlavorCatalog, FlavorSettings
from spaces.runtime.nodes import Gpu, Node
from spaces.runtime.scheduler import (
    NodeUsage,
    Placement,
    Policy,
    Request,
    Unschedulable,
    gpu_model_matches,
    place,
    plan_queue,
    tally,
)

CAT = FlavorCatalog()


def req(space: str, flavor: str = "cpu-basic", catalog: FlavorCatalog = CAT) -> Request:
    return Request.for_flavor(space, catalog.get(flavor))


def t4_node(name: str, n: int = 1, cpu: float = 8, mem: int = 32768, **labels: str) -> Node:
    return Node(name, cpu, mem, tuple(Gpu(i, "Tesla T4", 15360) for i in range(n)), labels)


SMALL = Node("small", 2, 24576)
BIG = Node("big", 16, 65536)
T4 = t4_node("t4")
T4X2 = t4_node("t4x2", 2)
A100 = Node("a100", 32, 262144, (Gpu(0, "NVIDIA A100-SXM4-80GB", 81920),))

# (case, request, nodes, usage, policy, expected node or Unschedulable reason, expected GPU indices)
PLACE_TABLE = [
    ("cpu fits the only node", req("s"), [SMALL], {}, Policy(), "small", ()),
    ("best fit: fullest node that still fits wins", req("s"), [BIG, SMALL], {}, Policy(), "small", ()),
    ("best fit follows usage", req("s"), [SMALL, Node("small2", 2, 24576)],
     {"small2": NodeUsage(1.0, 2048)}, Policy(), "small2", ()),
    ("a full node is skipped", req("s"), [SMALL, BIG], {"small": NodeUsage(1.95, 1000)}, Policy(), "big", ()),
    ("memory decides too", req("s"), [SMALL, BIG], {"small": NodeUsage(0, 24500)}, Policy(), "big", ()),
    ("cpu Spaces keep off GPU nodes", req("s"), [T4, BIG], {}, Policy(), "big", ()),
    ("...unless only a GPU node fits", req("s"), [T4, SMALL], {"small": NodeUsage(2, 0)}, Policy(), "t4", ()),
    ("...or the policy allows it (best fit then picks the smaller)", req("s"), [T4, BIG], {},
     Policy(keep_gpu_nodes_for_gpu=False), "t4", ()),
    ("gpu flavor gets a GPU by index", req("s", "t4-small"), [SMALL, T4], {}, Policy(), "t4", (0,)),
    ("a used GPU is never shared", req("s", "t4-small"), [T4X2], {"t4x2": NodeUsage(1, 4096, frozenset({0}))},
     Policy(), "t4x2", (1,)),
    ("best fit on GPUs: the node left with fewest free GPUs", req("s", "t4-small"), [T4X2, t4_node("t4b")], {},
     Policy(), "t4b", (0,)),
    ("multi-GPU flavor takes all it needs", req("s", "l4x4"),
     [Node("l4", 64, 262144, tuple(Gpu(i, "NVIDIA L4", 23034) for i in range(4)))], {}, Policy(), "l4", (0, 1, 2, 3)),
    ("no GPU anywhere", req("s", "t4-small"), [SMALL, BIG], {}, Policy(), "NoGpu", ()),
    ("no nodes at all", req("s"), [], {}, Policy(), "NoNodes", ()),
    ("all GPUs busy is transient", req("s", "t4-small"), [T4], {"t4": NodeUsage(1, 4096, frozenset({0}))},
     Policy(), "Full", ()),
    ("any GPU model serves by default", req("s", "t4-small"), [A100], {}, Policy(), "a100", (0,)),
    ("model matching refuses an A100 for a T4 flavor", req("s", "t4-small"), [A100], {},
     Policy(match_gpu_model=True), "NoGpuModel", ()),
    ("model matching accepts a Tesla T4", req("s", "t4-small"), [A100, T4], {}, Policy(match_gpu_model=True),
     "t4", (0,)),
    ("too few GPUs on any node", req("s", "a10g-largex2"), [T4], {}, Policy(), "NoGpu", ()),
    ("reservation larger than any node", req("s", "cpu-upgrade"), [Node("tiny", 0.5, 1024)], {}, Policy(),
     "TooLarge", ()),
]


@pytest.mark.parametrize("case,request_,nodes,usage,policy,expected,gpus", PLACE_TABLE, ids=[r[0] for r in PLACE_TABLE])
def test_place(case, request_, nodes, usage, policy, expected, gpus) -> None:
    result = place(request_, nodes, usage, policy)
    if isinstance(result, Placement):
        assert (result.node, result.gpus) == (expected, gpus), case
        assert (result.cpu, result.memory_mb) == (request_.cpu, request_.memory_mb)
    else:
        assert result.reason == expected, result.message


def test_gpu_flavor_on_cpu_cluster_says_why() -> None:
    result = place(req("s", "t4-small"), [SMALL], {})
    assert result == Unschedulable("NoGpu", "no node has a GPU; t4-small needs 1x T4", transient=False)
    err = result.error()
    assert isinstance(err, errors.Unschedulable) and err.status == 503 and err.code == "NoGpu"


def test_node_selectors_pick_the_pool() -> None:
    catalog = FlavorCatalog(FlavorSettings(node_selectors={"cpu-upgrade": {"pool": "fast"}}))
    nodes = [SMALL, Node("fast1", 8, 32768, labels={"pool": "fast"})]
    assert place(req("s", "cpu-upgrade", catalog), nodes, {}).node == "fast1"
    assert place(req("s", "cpu-basic", catalog), nodes, {}).node == "small"  # no selector: any node
    result = place(req("s", "cpu-upgrade", catalog), [SMALL], {})
    assert result.reason == "NoMatchingNode" and "pool=fast" in result.message


def test_place_does_not_modify_inputs_and_is_deterministic() -> None:
    nodes = [SMALL, Node("small2", 2, 24576)]
    usage = {"small": NodeUsage(0.5, 1024)}
    first = place(req("a"), nodes, usage)
    assert place(req("a"), nodes, usage) == first and usage == {"small": NodeUsage(0.5, 1024)}


def test_tally_sums_without_float_drift() -> None:
    ps = [Placement(str(i), "cpu-basic", "n", 0.1, 100) for i in range(10)] + [
        Placement("g", "t4-small", "n", 1, 4096, (1,))]
    assert tally(ps) == {"n": NodeUsage(2.0, 5096, frozenset({1}), 11)}


def test_dozens_of_cpu_basic_on_one_small_machine() -> None:
    # the promise: a 2-core, 24 GB machine holds dozens of cpu-basic Spaces (0.25 core each -> 8)
    catalog = FlavorCatalog(FlavorSettings(requests={"cpu-basic": {"cpu": 0.05, "memory_mb": 512}}))
    placed, waiting = plan_queue([req(str(i), catalog=catalog) for i in range(60)], [SMALL], {})
    assert len(placed) == 40 and len(waiting) == 20  # 2 cores / 0.05 = 40
    assert len(plan_queue([req(str(i)) for i in range(60)], [SMALL], {})[0]) == 20  # default 0.1 core, no overcommit


def test_gpu_model_match_words() -> None:
    assert gpu_model_matches("T4", "Tesla T4")
    assert gpu_model_matches("A100", "NVIDIA A100-SXM4-80GB")
    assert not gpu_model_matches("L4", "NVIDIA L40S")
    assert gpu_model_matches(None, "anything")


# -- the queue ----------------------------------------------------------------------------------------------


def test_queue_fifo_per_flavor_and_messages() -> None:
    queue = [req("g1", "t4-small"), req("g2", "t4-small"), req("c1"), req("g3", "t4-small"), req("g4", "t4-small"),
             req("c2")]
    placed, waiting = plan_queue(queue, [T4, BIG], {})
    assert [(p.space_id, p.node, p.gpus) for p in placed] == [("g1", "t4", (0,)), ("c1", "big", ()),
                                                              ("c2", "big", ())]
    assert [(w.item.space_id, w.ahead, w.reason) for w in waiting] == [
        ("g2", 0, "Full"), ("g3", 1, "Queued"), ("g4", 2, "Queued")]
    assert waiting[0].message.startswith("waiting for t4-small capacity: next in line")
    assert waiting[2].message == "waiting for t4-small capacity: 2 ahead of you"


def test_queue_strict_fifo_within_a_flavor_even_if_a_later_one_would_fit() -> None:
    # the head asks for a full pool; a later request of the same flavor that would fit elsewhere must not
    # overtake it (same flavor, same line), while another flavor goes on
    head = Request("u1", "cpu-upgrade", 1, 2048, node_selector={"pool": "fast"})
    later = Request("u2", "cpu-upgrade", 1, 2048)
    nodes = [Node("fast", 8, 32768, labels={"pool": "fast"}), BIG]
    placed, waiting = plan_queue([head, later, req("b1")], nodes, {"fast": NodeUsage(8, 0)})
    assert [p.space_id for p in placed] == ["b1"]
    assert [(w.item.space_id, w.ahead) for w in waiting] == [("u1", 0), ("u2", 1)]
    assert waiting[1].message == "waiting for cpu-upgrade capacity: 1 ahead of you"


def test_queue_drains_in_order_when_capacity_frees() -> None:
    queue = [req("g1", "t4-small"), req("g2", "t4-small"), req("g3", "t4-small")]
    busy = {"t4x2": NodeUsage(2, 8192, frozenset({0, 1}), 2)}
    placed, waiting = plan_queue(queue, [T4X2], busy)
    assert placed == [] and [w.ahead for w in waiting] == [0, 1, 2]
    # one running Space goes to sleep: the caller leaves it out of usage, the head of the line gets its GPU
    freed = {"t4x2": NodeUsage(1, 4096, frozenset({0}), 1)}
    placed, waiting = plan_queue(queue, [T4X2], freed)
    assert [(p.space_id, p.gpus) for p in placed] == [("g1", (1,))]
    assert [(w.item.space_id, w.message) for w in waiting] == [
        ("g2", waiting[0].message), ("g3", "waiting for t4-small capacity: 1 ahead of you")]


def test_never_schedulable_requests_block_nobody() -> None:
    placed, waiting = plan_queue([req("g1", "t4-small"), req("c1")], [SMALL], {})
    assert [p.space_id for p in placed] == ["c1"]
    assert waiting[0].message == "no node has a GPU; t4-small needs 1x T4" and waiting[0].ahead == 0


def test_duplicate_node_names_are_refused() -> None:
    with pytest.raises(ValueError, match="two nodes"):
        place(req("s"), [SMALL, SMALL], {})


# -- the indexed packer agrees with a brute-force best fit ---------------------------------------------------


def brute_force(request: Request, nodes: list[Node], used: dict[str, list], policy: Policy):
    best = None
    for n in nodes:
        u = used[n.name]
        free_cpu, free_mem = round(n.cpu * 1000) - u[0], n.memory_mb - u[1]
        free_gpus = [g.index for g in n.gpus if g.index not in u[2]]
        cpu = round(request.cpu * 1000)
        if free_cpu < cpu or free_mem < request.memory_mb or len(free_gpus) < request.gpus:
            continue
        if request.gpus:
            frac = (len(free_gpus) - request.gpus) / len(n.gpus)
        elif cpu * n.memory_mb >= request.memory_mb * round(n.cpu * 1000):
            frac = (free_cpu - cpu) / round(n.cpu * 1000)
        else:
            frac = (free_mem - request.memory_mb) / n.memory_mb
        penalty = 1 if (not request.gpus and n.gpus and policy.keep_gpu_nodes_for_gpu) else 0
        score = (penalty, frac, n.name)
        if best is None or score < best[0]:
            best = (score, n.name, tuple(free_gpus[: request.gpus]))
    return best and best[1:]


@pytest.mark.parametrize("seed", range(5))
def test_packer_matches_brute_force(seed: int) -> None:
    rnd = random.Random(seed)
    shapes = [(2, 8192, 0), (4, 16384, 0), (8, 32768, 1), (16, 65536, 2), (8, 16384, 0)]
    nodes = []
    for i in range(40):
        cpu, mem, g = rnd.choice(shapes)
        nodes.append(Node(f"n{i:02d}", cpu, mem, tuple(Gpu(j, "T4", 15360) for j in range(g))))
    flavors = ["cpu-basic"] * 6 + ["cpu-upgrade"] * 3 + ["t4-small", "t4-medium", "a10g-largex2"]
    queue = [req(f"s{k}", rnd.choice(flavors)) for k in range(300)]
    placed, _ = plan_queue(queue, nodes, {})
    by_id = {p.space_id: p for p in placed}
    used = {n.name: [0, 0, set()] for n in nodes}
    blocked: set[str] = set()
    for r in queue:  # replay with the brute force, same FIFO-per-flavor rule
        expect = None if r.flavor in blocked else brute_force(r, nodes, used, Policy())
        got = by_id.get(r.space_id)
        assert (got and (got.node, got.gpus)) == (expect or None), r
        if expect:
            u = used[expect[0]]
            u[0] += round(r.cpu * 1000)
            u[1] += r.memory_mb
            u[2].update(expect[1])
        else:
            blocked.add(r.flavor)


def test_scheduler_settings_make_the_policy() -> None:
    from spaces.runtime.scheduler import SchedulerSettings

    assert SchedulerSettings().policy() == Policy(cpu_overcommit=16)
    assert SchedulerSettings(match_gpu_model=True).policy() == Policy(match_gpu_model=True, cpu_overcommit=16)


# -- requests, limits and overcommit ------------------------------------------------------------------------

#: this machine: 2 cores, 24 GB, with what the platform keeps by default (0.5 core, a tenth of the memory)
HOST = Node("local", 2, 24105, reserved_cpu=0.5, reserved_memory_mb=2410)

# (case, node, policy, expected (millicores, MiB) of requests offered)
ALLOCATABLE_TABLE = [
    ("no overcommit: what the node leaves Spaces", HOST, Policy(), (1500, 21695)),
    ("cpu overcommit multiplies the allocatable cores", HOST, Policy(cpu_overcommit=16), (24000, 21695)),
    ("memory overcommit multiplies the allocatable MiB", HOST, Policy(memory_overcommit=1.5), (1500, 32542)),
    ("a node with nothing kept offers all of it", SMALL, Policy(cpu_overcommit=2), (4000, 24576)),
    ("a node keeping more than it has offers nothing", Node("tiny", 1, 512, reserved_cpu=2, reserved_memory_mb=1024),
     Policy(cpu_overcommit=16), (0, 0)),
]


@pytest.mark.parametrize("case,node,policy,expected", ALLOCATABLE_TABLE, ids=[c[0] for c in ALLOCATABLE_TABLE])
def test_allocatable(case, node, policy, expected) -> None:
    assert policy.allocatable(node) == expected


DEFAULT_POLICY = Policy(cpu_overcommit=16, memory_overcommit=1.0)  # SchedulerSettings' defaults

# (case, node, request, policy, how many an empty node holds)
HOLDS_TABLE = [
    ("cpu-basic on this 2-core 24 GB machine: memory decides", HOST, req("s"), DEFAULT_POLICY, 225),
    ("without overcommit cpu decides", HOST, req("s"), Policy(), 15),
    ("the old 0.25-core request without overcommit: the 6 the issue saw (8 on all 2 cores)", HOST,
     Request("s", "cpu-basic", 0.25, 512), Policy(), 6),
    ("cpu-upgrade", HOST, req("s", "cpu-upgrade"), DEFAULT_POLICY, 10),
    ("a GPU flavor: its GPUs, never overcommitted", t4_node("t", 2, cpu=8, mem=65536), req("s", "t4-small"),
     Policy(cpu_overcommit=100, memory_overcommit=100), 2),
    ("a request of nothing fits no count: 0, not infinity", HOST, Request("s", "x", 0, 0), DEFAULT_POLICY, 0),
]


@pytest.mark.parametrize("case,node,request_,policy,expected", HOLDS_TABLE, ids=[c[0] for c in HOLDS_TABLE])
def test_holds(case, node, request_, policy, expected) -> None:
    from spaces.runtime.scheduler import holds

    assert holds(node, request_, policy) == expected


def test_overcommit_places_up_to_what_holds_says_and_no_more() -> None:
    """The placements really made agree with ``holds``: 225 cpu-basic Spaces on this machine, the 226th waits."""
    queue = [req(f"s{i}") for i in range(230)]
    placed, waiting = plan_queue(queue, [HOST], {}, DEFAULT_POLICY)
    assert len(placed) == 225 and [w.item.space_id for w in waiting] == [f"s{i}" for i in range(225, 230)]
    assert waiting[0].reason == "Full" and waiting[1].message.startswith("waiting for cpu-basic capacity: 1 ahead")
    used = tally(placed)["local"]
    assert used.memory_mb == 225 * 96 and used.spaces == 225


def test_settings_defaults_reach_the_policy() -> None:
    from spaces.runtime.scheduler import SchedulerSettings

    p = SchedulerSettings().policy()
    assert (p.cpu_overcommit, p.memory_overcommit) == (16.0, 1.0)
    assert SchedulerSettings(cpu_overcommit=4, memory_overcommit=1.25).policy() == Policy(False, True, 4, 1.25)
