"""Wake through the whole platform: a sleeping Space to its first 200 through the proxy, per sleep tier, in one run.

    .venv/bin/python bench/wake.py [--rounds 20] [--concurrency 5] [--sdks gradio,streamlit] [--envs-dir DIR]
    .venv/bin/python bench/wake.py --backend docker     # the Docker backend (engine and base image set up first)
    .venv/bin/python bench/wake.py --sdks gradio,docker --tiers frozen  # Docker Spaces on the default set-up
    .venv/bin/python bench/wake.py --backend kubernetes # the live cluster of infra/kubernetes/cluster (brought up)
    WAKE_SAMPLES=1 .venv/bin/python bench/wake.py ...    # also print every wake's time, in order
    .venv/bin/python bench/wake.py --old-sandbox         # each local tier also without the host-hiding sandbox

Four ``spaces serve`` configurations, one after the other, each with a gradio and a streamlit template Space:

* **frozen** (defaults): ``spaces sleep`` freezes the app (cgroup freezer); a wake thaws it.
* **stopped** (``SPACES_RUNTIME__STOP_FROZEN_AFTER=0``): sleep freezes, then stops the process as after the long
  sleep. Gradio: a wake starts a new instance forked from the environment's pre-warmed zygote. Streamlit: the stop
  leaves a standby (a fresh server forked from the zygote and frozen once it listens; see
  ``spaces.runtime.reconciler``), and a wake thaws it.
* **evicted** (``SPACES_RUNTIME__MIN_AVAILABLE_MEMORY=1.0``: always short of memory): sleep freezes, then stops the
  process under memory pressure, and the pressure also stops a Streamlit Space's standby at the next sweep; a
  wake forks a new instance from the zygote (both SDKs).
* **cold** (the same plus ``SPACES_LOCAL__ZYGOTE=false``): a wake starts a fresh interpreter, as a first start
  does: the reference.

With ``--backend docker`` there are two tiers: **frozen** (``docker pause``; a wake unpauses) and **cold**
(``SPACES_RUNTIME__STOP_FROZEN_AFTER=0``: sleep removes the container, a wake starts a new one from the Space's
image, as a first start does). Docker has no zygote tier.

With ``--backend kubernetes`` (``infra/kubernetes/cluster up`` first, a namespace of its own) there is one tier,
**cold**: a pod cannot be paused, so sleep removes the Space's Deployment and a wake creates a new one, whose pod
starts from the image already on the node. Compare it with the local and Docker **cold** rows of runs on the same
machine.

Each round: ``POST /api/spaces/{id}/sleep``, wait until the Space is fully asleep (stage SLEEPING; in the
stopping tiers, its process gone, or in the stopped tier replaced by a frozen standby), then send ``--concurrency``
requests at once as an API client (held by the proxy until the app answers) and time the first 200. Any answer
other than 200 during a wake counts as a failure. The **awake** row (measured in the frozen tier's platform,
before its wakes) times the same requests to the Space while it runs: the floor that the client, the proxy and the
app's own answer put under every tier.
Prints p50/p95/p99 per (sdk, tier) (nearest rank: with 20 wakes p99 is the slowest), failures, and the ratios
of p50 against the cold start of the same run (goals: p50 <= 0.1x cold, p99 <= 2x p50, no failure).
With ``--old-sandbox`` each local tier runs twice, the second time as ``{tier}-old`` with
``SPACES_LOCAL__HIDE_HOST=false`` (the sandbox before it hid the host: private /tmp and HOME only, no PID namespace,
no root of its own, no disk): the sandbox's cost, side by side in one run.
Needs root (the local backend). ``--envs-dir`` reuses built environments across runs (content addressed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "platform")]

import platform_kit as kit  # noqa: E402
from benchstats import percentile  # noqa: E402
from harness import docker_backend_env, kubernetes_backend_env, setup_docker_engine  # noqa: E402
from huggingface_hub import HfApi  # noqa: E402

from spaces.runtime.cgroups import Cgroups  # noqa: E402
from spaces.runtime.contracts import LABEL_SPACE  # noqa: E402

TIERS = {
    "frozen": {},
    "stopped": {"SPACES_RUNTIME__STOP_FROZEN_AFTER": "0", "SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "0"},
    "evicted": {"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "1.0"},
    "cold": {"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "1.0", "SPACES_LOCAL__ZYGOTE": "false"},
}
DOCKER_TIERS = {"frozen": {}, "cold": {"SPACES_RUNTIME__STOP_FROZEN_AFTER": "0"}}
KUBERNETES_TIERS = {"cold": {}}


class Kubernetes:
    """The live cluster (``infra/kubernetes/cluster``), brought up if needed, and a namespace for this run."""

    def __init__(self) -> None:
        cluster = ROOT / "infra" / "kubernetes" / "cluster"
        up = subprocess.run([str(cluster), "up"], capture_output=True, text=True)
        if up.returncode != 0:
            raise SystemExit(f"the cluster could not be brought up: {up.stderr.strip()[-2000:]}")
        found = subprocess.run([str(cluster), "env"], capture_output=True, text=True, check=True).stdout
        env = dict(line.split("=", 1) for line in found.splitlines() if "=" in line)
        from kubernetes import client, config

        self.core = client.CoreV1Api(config.new_client_from_config(config_file=env["KUBECONFIG"]))
        self.ns = f"spaces-bench-{os.urandom(4).hex()}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        self.env = kubernetes_backend_env(env["KUBECONFIG"], env["SPACES_K8S_REGISTRY"], self.ns)

    def pods(self, space_id: str) -> list:
        return self.core.list_namespaced_pod(self.ns, label_selector=f"{LABEL_SPACE}={space_id}").items

    def close(self) -> None:
        self.core.delete_namespace(self.ns, propagation_policy="Background")


def docker_env() -> dict[str, str]:
    """Set up the engine and base images as the tests do; the settings that run the platform on Docker."""
    reason = setup_docker_engine()
    if reason:
        raise SystemExit(reason)
    return docker_backend_env()


def containers(space_id: str, running_only: bool = True) -> list[str]:
    """The ids of the Docker backend's containers of a Space."""
    args = ["docker", "ps", "-q", "--filter", f"label={LABEL_SPACE}={space_id}"]
    if not running_only:
        args.insert(2, "-a")
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()


class Actor:
    def __init__(self, server, name: str) -> None:  # noqa: ANN001
        self.name, self.token, self.url = name, server.token(name), server.url
        self.api = HfApi(endpoint=server.url, token=self.token)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.token}"}, timeout=30)


async def wake_once(port: int, host: str, concurrency: int) -> tuple[float, int]:
    """Fire ``concurrency`` requests at once; (seconds to the first 200, non-200 answers).

    The client is made before the clock starts: making an httpx client loads a CA bundle (about 30 ms here),
    which is the client's cost, not the wake's."""
    firsts: list[float] = []

    async def one(c: httpx.AsyncClient) -> int:
        r = await c.get("/", headers={"host": host})
        if r.status_code == 200:
            firsts.append(time.perf_counter() - t0)
        return r.status_code

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=180,
                                 limits=httpx.Limits(max_connections=concurrency)) as c:
        t0 = time.perf_counter()
        codes = await asyncio.gather(*(one(c) for _ in range(concurrency)), return_exceptions=True)
    failures = sum(1 for code in codes if code != 200)
    return (min(firsts) if firsts else float("nan")), failures


def fully_asleep(platform: kit.Platform, actor: Actor, repo_id: str, space_id: str, tier: str,
                 backend: str, awake_pids: set[int], k8s: Kubernetes | None = None) -> bool:
    """SLEEPING; for the stopping tiers no instance left, except in the stopped tier a frozen standby (a pid that
    did not run awake). Waited for with ``kit.wait_held``: a start in progress can look like no instance."""
    if actor.api.get_space_runtime(repo_id).stage != "SLEEPING":
        return False
    if tier == "frozen":
        return True
    if backend == "docker":
        return not containers(space_id)
    if backend == "kubernetes":
        return not k8s.pods(space_id)
    left = [s for s in kit.instance_states(platform) if s.get("space_id") == space_id]
    if tier != "stopped":
        return not left
    groups = Cgroups(platform.cgroup_root)
    return all(s["pid"] not in awake_pids and groups.frozen(s["instance"]) for s in left)


def run_tier(base: Path, envs: Path, tier: str, sdks: list[str], rounds: int, concurrency: int,
             backend: str, k8s: Kubernetes | None = None) -> dict:
    base_tier, old = tier.removesuffix("-old"), tier.endswith("-old")
    if backend == "docker":
        env = {**docker_env(), **DOCKER_TIERS[tier]}
    elif backend == "kubernetes":
        env = {**k8s.env, **KUBERNETES_TIERS[tier]}
    else:
        env = {**TIERS[base_tier], **({"SPACES_LOCAL__HIDE_HOST": "false"} if old else {})}
    platform = kit.start_platform(base, f"wake-{tier}", envs_dir=envs, extra_env=env)
    results = {}
    space_ids: list[str] = []
    try:
        actor = Actor(platform.server, "bench")
        for sdk in sdks:
            repo_id = f"bench/{sdk}-{tier}"
            kit.create_space(actor.api, repo_id, kit.space_files(sdk), sdk=sdk)
            kit.wait_stage(actor.api, repo_id, kit.RUNNING, timeout=600)
            space_id = kit.space_id(actor, repo_id)
            space_ids.append(space_id)
            host = kit.app_host(platform.server, repo_id)
            assert kit.app_get(platform.server, repo_id, "/").status_code == 200
            # the same requests once while the Space is awake, untimed: the client's first async request imports
            # httpx's async stack (tens of ms, once per process), which must not count as the first wake
            asyncio.run(wake_once(platform.port, host, concurrency))
            if base_tier == "frozen":  # the floor: the same requests to the Space awake (client, proxy, app; no wake)
                awake = [asyncio.run(wake_once(platform.port, host, concurrency)) for _ in range(rounds)]
                row = "awake-old" if old else "awake"
                results.setdefault(row, {})[sdk] = ([a[0] for a in awake], sum(a[1] for a in awake))
            samples, failures = [], 0
            for _ in range(rounds):
                awake = {s["pid"] for s in kit.instance_states(platform) if s.get("space_id") == space_id}
                with actor.http() as c:
                    c.post(f"/api/spaces/{repo_id}/sleep").raise_for_status()
                kit.wait_held(lambda: fully_asleep(platform, actor, repo_id, space_id, base_tier, backend, awake, k8s),
                              what=f"{repo_id} asleep")
                seconds, failed = asyncio.run(wake_once(platform.port, host, concurrency))
                samples.append(seconds)
                failures += failed
            results.setdefault(tier, {})[sdk] = (samples, failures)
            if os.environ.get("WAKE_SAMPLES"):  # every wake, in order: tells a one-off slow wake from a spread
                print("   ", " ".join(f"{x * 1000:.0f}" for x in samples), flush=True)
            print(f"  {sdk:<9} {tier:<11} p50 {_ms(statistics.median(samples))}  p99 {_ms(percentile(samples, 99))}  "
                  f"failed requests {failures}/{rounds * concurrency}", flush=True)
    finally:
        platform.stop()
        # Docker containers outlive their server (the docker backend, or docker Spaces on the default set-up)
        for space_id in space_ids if backend == "docker" or "docker" in sdks else ():
            for cid in containers(space_id, running_only=False):
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    return results


def _ms(s: float) -> str:
    return f"{s * 1000:8.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=5, help="requests sent at once per wake")
    ap.add_argument("--sdks", default="gradio,streamlit")
    ap.add_argument("--tiers", default=None, help="default: frozen,stopped,evicted,cold (local), frozen,cold (docker)")
    ap.add_argument("--backend", choices=("local", "docker", "kubernetes"), default="local")
    ap.add_argument("--envs-dir", type=Path, default=None, help="built environments to reuse (default: fresh)")
    ap.add_argument("--old-sandbox", action="store_true", help="each local tier also with SPACES_LOCAL__HIDE_HOST="
                    "false, as {tier}-old")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Warnings while validating metadata")  # sdk: streamlit is deprecated
    known = {"docker": DOCKER_TIERS, "kubernetes": KUBERNETES_TIERS}.get(args.backend, TIERS)
    tiers = (args.tiers or ",".join(known)).split(",")
    sdks = args.sdks.split(",")
    unknown = set(tiers) - set(known)
    if unknown:
        ap.error(f"unknown tiers for the {args.backend} backend: {', '.join(sorted(unknown))}")
    if args.old_sandbox and args.backend == "local":
        tiers = [name for tier in tiers for name in (tier, f"{tier}-old")]
    if args.backend == "docker":
        docker_env()  # engine and base images up before the first tier, or a clear exit
    k8s = Kubernetes() if args.backend == "kubernetes" else None
    base = kit.new_base("spaces-bench-wake-")
    envs = args.envs_dir or base / "envs"
    print(f"wake through the proxy ({args.backend} backend), {args.rounds} wakes per (sdk, tier), "
          f"{args.concurrency} requests per wake")
    table: dict[str, dict[str, tuple[list[float], int]]] = {}
    try:
        for tier in tiers:
            for row, by_sdk in run_tier(base, envs, tier, sdks, args.rounds, args.concurrency, args.backend,
                                        k8s).items():
                for sdk, res in by_sdk.items():
                    table.setdefault(sdk, {})[row] = res
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if k8s is not None:
            k8s.close()
    print("\nsdk       tier        p50          p95          p99     p99/p50  p50 vs cold  failed")
    for sdk, by_tier in table.items():
        for tier, (samples, failures) in by_tier.items():
            ref = "cold-old" if tier.endswith("-old") and "cold-old" in by_tier else "cold"
            cold = statistics.median(by_tier[ref][0]) if ref in by_tier else float("nan")
            p50, p95, p99 = statistics.median(samples), percentile(samples, 95), percentile(samples, 99)
            print(f"{sdk:<9} {tier:<11} {_ms(p50)} {_ms(p95)} {_ms(p99)}  {p99 / p50:6.2f}x  {p50 / cold:9.3f}x  "
                  f"{failures:6d}")


if __name__ == "__main__":
    main()
