"""The Kubernetes backend against the local backend, in one run, on the live cluster of infra/kubernetes/cluster.

    flock -o /tmp/spaces-live.lock .venv/bin/python bench/k8s.py [--wakes 5] [--kills 3]
                                                                 [--parts spaces,failover,cluster] [--ups 2]

Three parts, each printed as it finishes, ratios at the end:

* **spaces** - a Gradio Space (the template) on three ``spaces serve`` platforms, one after the other: the local
  backend as it runs by default when a Space is scaled to zero (**local-zygote**: sleep stops the process, a
  wake forks a new one from the environment's pre-warmed zygote), the local backend without the zygote
  (**local-cold**: a wake starts a fresh interpreter, as a first start does), and the Kubernetes backend
  (**kubernetes**: sleep deletes the Deployment, a wake creates one; the pod starts from the image already on the
  node). For each: push-to-RUNNING of a first Space (``create_repo`` + ``upload_folder`` with huggingface_hub
  until the stage is RUNNING: build, start, first health check) and of a second Space with the same files
  (the build is cached: the content-addressed environment, Docker's layer cache), then ``--wakes`` wakes from
  zero (``POST .../sleep``, wait until no process or pod is left, time the first 200 of 5 requests sent at once
  through the proxy, as bench/wake.py does). Build caches are as earlier runs on this machine left them.
* **failover** - the chart's replicated roles installed as tests/kubernetes_live/test_helm.py installs them
  (hub x2, proxy x2, builder, controller x2; the leader holds a PostgreSQL advisory lock); ``--kills`` times:
  ``kubectl delete pod`` of the leading controller (a graceful delete: SIGTERM, the leader stops acting and
  unlocks), time until the other pod's ``/readyz`` answers 200 (it leads: it has built its backend and adopted
  what runs); then wait for the Deployment's replacement pod to be up as the next standby.
* **cluster** - the cold build of the binaries, from the cache's build log (``[cluster] built X in N s``: a cold
  rebuild takes 20-40 minutes here and is not repeated), then ``--ups`` times ``cluster down`` + ``cluster up``
  (a start from cached binaries and an empty state: certificates, etcd, containerd, node Ready, kube-proxy
  healthy) and the ``up`` of a cluster that is already up. Run last: ``down`` removes everything on the cluster.

Needs root, Docker, the cluster's cache (``infra/kubernetes/cluster up`` once) and Helm (built by the chart's tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "platform"),
                str(ROOT / "tests" / "kubernetes_live")]

import chart_kit as chart
import platform_kit as kit
import wake

CLUSTER = ROOT / "infra" / "kubernetes" / "cluster"
BUILD_LOG = Path(os.environ.get("SPACES_K8S_CACHE", "/var/cache/spaces-k8s")) / "build.log"
# stopped at once when asleep, wakes fork the zygote; app ports of their own, below the ephemeral range (the
# platform's automatic port blocks in 20000-32767 can all be held by other platforms on a shared machine)
LOCAL_ZYGOTE = {"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "1.0", "SPACES_LOCAL__PORT_MIN": "17000",
                "SPACES_LOCAL__PORT_MAX": "17499"}
LOCAL_COLD = {**LOCAL_ZYGOTE, "SPACES_LOCAL__ZYGOTE": "false", "SPACES_LOCAL__PORT_MIN": "17500",
              "SPACES_LOCAL__PORT_MAX": "17999"}


@dataclass(frozen=True)
class Cluster:  # what chart_kit needs of the live cluster (tests/kubernetes_live/conftest.py has the same)
    kubeconfig: str
    registry: str
    node: str
    kubectl: str


def cluster_env() -> Cluster:
    found = subprocess.run([str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    env = dict(line.split("=", 1) for line in found.splitlines() if "=" in line)
    return Cluster(env["KUBECONFIG"], env["SPACES_K8S_REGISTRY"], env["SPACES_K8S_NODE"], env["SPACES_K8S_KUBECTL"])


def _s(x: float) -> str:
    return f"{x:7.2f} s"


# -- spaces: push-to-RUNNING and wake from zero ------------------------------------------------------------------

def push_and_wake(base: Path, name: str, env: dict[str, str], backend: str, wakes: int,
                  k8s: wake.Kubernetes | None) -> dict[str, list[float]]:
    platform = kit.start_platform(base, name, envs_dir=base / f"envs-{name}", extra_env=env)
    out: dict[str, list[float]] = {"push": [], "wake": []}
    try:
        actor = wake.Actor(platform.server, "bench")
        files = kit.space_files("gradio")
        for i in range(2):
            repo_id = f"bench/gradio-{i}"
            t0 = time.perf_counter()
            kit.create_space(actor.api, repo_id, files, sdk="gradio")
            kit.wait_stage(actor.api, repo_id, kit.RUNNING, timeout=1200)
            out["push"].append(time.perf_counter() - t0)
            print(f"  {name:<13} push #{i + 1} to RUNNING {_s(out['push'][-1])}", flush=True)
        space_id = kit.space_id(actor, repo_id)
        host = kit.app_host(platform.server, repo_id)
        assert kit.app_get(platform.server, repo_id, "/").status_code == 200
        asyncio.run(wake.wake_once(platform.port, host, 5))  # untimed: imports the client's async stack once
        failures = 0
        for _ in range(wakes):
            awake = {s["pid"] for s in kit.instance_states(platform) if s.get("space_id") == space_id}
            with actor.http() as c:
                c.post(f"/api/spaces/{repo_id}/sleep").raise_for_status()
            kit.wait_held(lambda awake=awake: wake.fully_asleep(platform, actor, repo_id, space_id, "cold", backend,
                                                                awake, k8s),
                          timeout=180, what=f"{repo_id} asleep")
            seconds, failed = asyncio.run(wake.wake_once(platform.port, host, 5))
            out["wake"].append(seconds)
            failures += failed
        print(f"  {name:<13} wake from zero: p50 {_s(statistics.median(out['wake']))}  "
              f"max {_s(max(out['wake']))}  failed requests {failures}/{wakes * 5}", flush=True)
    finally:
        platform.stop()
    return out


def spaces_part(wakes: int) -> dict[str, dict[str, list[float]]]:
    print(f"\n== spaces: a Gradio Space, push-to-RUNNING (2 pushes) and {wakes} wakes from zero per platform")
    k8s = wake.Kubernetes()
    base = kit.new_base("spaces-bench-k8s-")
    results = {}
    try:
        for name, env, backend in [("local-zygote", LOCAL_ZYGOTE, "local"), ("local-cold", LOCAL_COLD, "local"),
                                   ("kubernetes", k8s.env, "kubernetes")]:
            results[name] = push_and_wake(base, name, env, backend, wakes, k8s)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        k8s.close()
    return results


# -- failover: kubectl delete pod of the leading controller --------------------------------------------------------

def controllers_up(cluster: Cluster, ns: str) -> bool:
    """Two controller pods, both alive (/healthz): a standby ready to take over."""
    import httpx

    pods = chart.role_pods(cluster, ns, "controller")
    if len(pods) != 2:
        return False
    for pod in pods:
        try:
            if httpx.get(f"http://{pod['status']['podIP']}:9090/healthz", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


def failover_part(kills: int) -> list[float]:
    print(f"\n== failover: the chart's roles installed, {kills} x kubectl delete pod of the leading controller")
    cluster = cluster_env()
    helm = chart.helm_binary()
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    assert chart.kubectl(cluster, "create", "namespace", ns).returncode == 0
    base = Path(tempfile.mkdtemp(prefix="spaces-bench-failover-", dir="/var/tmp"))
    volumes = chart.static_volumes(cluster, ns, base)
    times = []
    try:
        t0 = time.monotonic()
        chart.install(helm, cluster, ns, chart.roles_values(cluster, ns))
        for role, n in (("hub", 2), ("proxy", 2), ("builder", 1)):
            chart.wait(f"{n} {role} Ready", lambda role=role, n=n: len(chart.ready_pods(
                cluster, ns, f"app.kubernetes.io/component={role}")) == n)
        chart.wait("two controllers, one leading", lambda: controllers_up(cluster, ns) and len(
            chart.leaders(cluster, ns)) == 1, timeout=300)
        print(f"  installed (images built and pushed, every role Ready) in {_s(time.monotonic() - t0)}", flush=True)
        for _ in range(kills):
            [leader] = chart.leaders(cluster, ns)
            t0 = time.monotonic()
            assert chart.kubectl(cluster, "delete", "pod", "-n", ns, leader, "--wait=false").returncode == 0
            new = chart.wait("a new leader", lambda leader=leader: [p for p in chart.leaders(cluster, ns)
                                                                    if p != leader],
                             every=0.05, timeout=120)
            times.append(time.monotonic() - t0)
            print(f"  {leader} deleted -> {new[0]} leads after {_s(times[-1])}", flush=True)
            chart.wait("the replacement standby", lambda: controllers_up(cluster, ns), timeout=600)
    finally:
        chart.run(helm, "uninstall", chart.RELEASE, "-n", ns, "--kubeconfig", cluster.kubeconfig, "--wait")
        chart.kubectl(cluster, "delete", "namespace", ns, "--wait=false")
        chart.kubectl(cluster, "delete", "pv", *volumes, "--wait=false")
        shutil.rmtree(base, ignore_errors=True)
    return times


# -- cluster: cold build (from the log), start from cached binaries --------------------------------------------

def cold_build() -> dict[str, int]:
    """The first 'built X in N s' of each component in the cache's build log (later lines are rebuilds)."""
    built: dict[str, int] = {}
    if BUILD_LOG.is_file():
        for m in re.finditer(r"^\[cluster\] built (\S+) in (\d+) s", BUILD_LOG.read_text(), re.MULTILINE):
            built.setdefault(m.group(1), int(m.group(2)))
    return built


def timed(*args: str) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"cluster {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.monotonic() - t0


def cluster_part(ups: int) -> dict[str, list[float] | dict[str, int]]:
    print(f"\n== cluster: cold build (from {BUILD_LOG}), {ups} x down + up from cached binaries, up when up")
    built = cold_build()
    if built:
        print("  cold build: " + ", ".join(f"{k} {v} s" for k, v in built.items()) + f"; total {sum(built.values())} s")
    starts, downs = [], []
    for _ in range(ups):
        downs.append(timed("down"))
        starts.append(timed("up"))
        print(f"  down {_s(downs[-1])}, up from an empty state {_s(starts[-1])}", flush=True)
    again = timed("up")
    print(f"  up when already up {_s(again)}", flush=True)
    return {"build": built, "up": starts, "down": downs, "again": [again]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="spaces,failover,cluster")
    ap.add_argument("--wakes", type=int, default=5)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--ups", type=int, default=2)
    args = ap.parse_args()
    parts = args.parts.split(",")
    if unknown := set(parts) - {"spaces", "failover", "cluster"}:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    warnings.filterwarnings("ignore", message="Warnings while validating metadata")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    report: dict = {}
    if "spaces" in parts:
        report["spaces"] = spaces_part(args.wakes)
    if "failover" in parts:
        report["failover"] = failover_part(args.kills)
    if "cluster" in parts:
        report["cluster"] = cluster_part(args.ups)
    print(f"\n== summary (load average now {os.getloadavg()[0]:.1f})")
    if "spaces" in report:
        res = report["spaces"]
        k8s = res["kubernetes"]
        print("platform       push #1      push #2     wake p50   | kubernetes / this: push #1  push #2  wake p50")
        for name, r in res.items():
            p1, p2, w = r["push"][0], r["push"][1], statistics.median(r["wake"])
            print(f"{name:<13} {_s(p1)}  {_s(p2)}  {_s(w)}   | {k8s['push'][0] / p1:16.2f}x "
                  f"{k8s['push'][1] / p2:7.2f}x {statistics.median(k8s['wake']) / w:8.2f}x")
    if report.get("failover"):
        t = report["failover"]
        print(f"leader failover (kubectl delete pod -> new leader ready): median {_s(statistics.median(t))}, "
              f"max {_s(max(t))} over {len(t)}")
    if "cluster" in report:
        c = report["cluster"]
        build = sum(c["build"].values()) if c["build"] else float("nan")
        up = statistics.median(c["up"])
        print(f"cluster: cold build {build:.0f} s (log), start from cached binaries {_s(up)} (median of "
              f"{len(c['up'])}), cold build + start {build + up:.0f} s = {(build + up) / up:.0f}x the warm start; "
              f"up when up {_s(c['again'][0])}")
    print("\n" + json.dumps(report))


if __name__ == "__main__":
    main()
