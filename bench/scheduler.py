"""Scheduler bench (not a test): 10,000 Spaces placed on 1,000 simulated nodes, against first-fit decreasing.

    .venv/bin/python bench/scheduler.py            # both scenarios, seed 1
    .venv/bin/python bench/scheduler.py --seed 7 --spaces 10000 --nodes 1000

The cluster: 70% CPU-only nodes (4/8/16 cores), 30% GPU nodes (1x T4, 4x L4, 8x A100). The Spaces: a realistic
mix, mostly cpu-basic, some cpu-upgrade, a few GPU flavors, arriving in random order. Reservations are the
defaults of ``spaces.runtime.flavors`` (cpu-basic 0.25 core / 512 MB, ...).

Ours: ``plan_queue`` (online, arrival order, best fit on the dominant resource, FIFO per flavor).
Reference, run in the same process on the same input: **first-fit decreasing** (FFD), the classic offline bin
packing heuristic: it sees every Space up front, sorts them largest first (GPUs, then cores, then memory) and puts
each on the first node that fits (CPU-only nodes first, as ours prefers). FFD is not available online, which is
why it serves as the bound.

Two scenarios, because "efficiency" means something different when everything fits and when it does not:

* **fits** (demand below capacity): every Space is placed by both; efficiency = capacity opened by FFD / capacity
  opened by ours, where "capacity opened" is the sum of cores of the nodes holding at least one Space (fewer,
  fuller nodes are better: the rest can be powered down or given to other work). Node counts are printed too.
* **oversubscribed** (GPU and CPU demand above capacity): efficiency = Spaces placed by ours / Spaces placed by FFD.

Goals from the issue: placement of all 10,000 under 1 s; efficiency >= 95% of the FFD bound.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spaces.runtime.flavors import FlavorCatalog  # noqa: E402
from spaces.runtime.nodes import Gpu, Node  # noqa: E402
from spaces.runtime.scheduler import Policy, Request, plan_queue  # noqa: E402

NODE_MIX = [  # (share, cores, GiB, gpus, gpu model)
    (0.30, 4, 16, 0, None), (0.25, 8, 32, 0, None), (0.15, 16, 64, 0, None),
    (0.15, 8, 32, 1, "Tesla T4"), (0.10, 48, 192, 4, "NVIDIA L4"), (0.05, 96, 1024, 8, "NVIDIA A100"),
]
SCENARIOS = {
    "fits": {"cpu-basic": 0.75, "cpu-upgrade": 0.20, "t4-small": 0.02, "t4-medium": 0.01, "l4x1": 0.01,
             "l4x4": 0.005, "a100-large": 0.005},
    "oversubscribed": {"cpu-basic": 0.30, "cpu-upgrade": 0.50, "t4-small": 0.06, "t4-medium": 0.04, "l4x1": 0.05,
                       "a10g-small": 0.02, "l4x4": 0.02, "a100-large": 0.01},
}


def make_nodes(n: int) -> list[Node]:
    nodes = []
    for share, cores, gib, gpus, model in NODE_MIX:
        for _ in range(round(n * share)):
            gs = tuple(Gpu(i, model, 16384) for i in range(gpus))
            nodes.append(Node(f"n{len(nodes):04d}", cores, gib * 1024, gs))
    return nodes[:n]


def make_queue(n: int, mix: dict[str, float], rnd: random.Random) -> list[Request]:
    cat = FlavorCatalog()
    names, weights = zip(*mix.items(), strict=True)
    return [Request.for_flavor(f"s{i:05d}", cat.get(f)) for i, f in enumerate(rnd.choices(names, weights, k=n))]


def ffd(queue: list[Request], nodes: list[Node]) -> dict[str, str]:
    """First-fit decreasing: Space id -> node name."""
    order = sorted(nodes, key=lambda n: (bool(n.gpus), n.name))  # CPU-only nodes first
    free = [[round(n.cpu * 1000), n.memory_mb, len(n.gpus)] for n in order]
    items = sorted(queue, key=lambda r: (r.gpus, round(r.cpu * 1000), r.memory_mb), reverse=True)
    placed: dict[str, str] = {}
    # identical items are consecutive after the sort and nothing before the last fit gained room, so first fit
    # for the next identical item starts where the previous one landed: same result as a scan from 0, faster
    start, last_size = 0, None
    for r in items:
        size = (r.gpus, round(r.cpu * 1000), r.memory_mb)
        if size != last_size:
            start, last_size = 0, size
        for i in range(start, len(order)):
            f = free[i]
            if f[0] >= size[1] and f[1] >= size[2] and f[2] >= size[0]:
                f[0] -= size[1]
                f[1] -= size[2]
                f[2] -= size[0]
                placed[r.space_id] = order[i].name
                start = i
                break
        else:
            start = len(order)
    return placed


def opened(assignment: dict[str, str], nodes: list[Node]) -> tuple[int, float]:
    used = set(assignment.values())
    return len(used), sum(n.cpu for n in nodes if n.name in used)


def run(scenario: str, n_spaces: int, n_nodes: int, seed: int) -> dict:
    rnd = random.Random(seed)
    nodes = make_nodes(n_nodes)
    queue = make_queue(n_spaces, SCENARIOS[scenario], rnd)
    t0 = time.perf_counter()
    placements, waiting = plan_queue(queue, nodes, {}, Policy())
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = ffd(queue, nodes)
    t_ffd = time.perf_counter() - t0
    ours = {p.space_id: p.node for p in placements}
    assert len(ours) + len(waiting) == n_spaces
    return {"scenario": scenario, "t_ours": t_ours, "t_ffd": t_ffd, "placed": (len(ours), len(ref)),
            "nodes": (opened(ours, nodes), opened(ref, nodes))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spaces", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{args.spaces} Spaces on {args.nodes} nodes, seed {args.seed}; ours = plan_queue (online best fit), "
          f"reference = first-fit decreasing (offline)\n")
    header = f"{'scenario':<15} {'ours s':>7} {'FFD s':>7} {'time ratio':>10} {'placed ours/FFD':>17} " \
             f"{'nodes ours/FFD':>15} {'cores opened ours/FFD':>22} {'efficiency':>11}"
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        r = run(scenario, args.spaces, args.nodes, args.seed)
        (n_o, c_o), (n_f, c_f) = r["nodes"]
        p_o, p_f = r["placed"]
        if scenario == "fits":
            eff, what = c_f / c_o, "cores opened FFD/ours"
        else:
            eff, what = p_o / p_f, "placed ours/FFD"
        print(f"{scenario:<15} {r['t_ours']:>7.3f} {r['t_ffd']:>7.3f} {r['t_ours'] / r['t_ffd']:>9.2f}x "
              f"{f'{p_o}/{p_f}':>17} {f'{n_o}/{n_f}':>15} {f'{c_o:g}/{c_f:g}':>22} {eff:>10.1%}  ({what})")
    print("\ngoals: ours under 1 s for all Spaces; efficiency >= 95% of FFD")


if __name__ == "__main__":
    main()
