"""What the chart's live tests and bench/k8s.py share: running helm and kubectl against the live cluster,
installing the chart (with the host aliases this DNS-less cluster needs), the images it installs, static volumes,
and which controller pod leads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from harness import HOST_CA

CHART = ROOT / "infra" / "helm" / "spaces"
RELEASE = "sp"
FULLNAME = "sp-spaces"


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=120, check=False)


def kubectl(cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run(cluster.kubectl, "--kubeconfig", cluster.kubeconfig, *args, input=input)


def build_image(script: str) -> list[str]:
    """infra/images/<script> --push: images built from the project's base image into the cluster's registry."""
    proc = subprocess.run([str(ROOT / "infra" / "images" / script), "--push"], capture_output=True, text=True,
                          timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def static_volumes(cluster, namespace: str, base: Path) -> list[str]:
    """Static hostPath PersistentVolumes under base bound to the chart's two claims (the cluster has no
    provisioner). Returns their names (cluster-scoped: delete them afterwards)."""
    names = []
    for sub, claim, size in [("data", f"{FULLNAME}-data", "20Gi"), ("pg", f"data-{FULLNAME}-postgresql-0", "8Gi")]:
        path = base / sub
        path.mkdir()
        path.chmod(0o777)  # hostPath ignores fsGroup; the platform (uid 1000) and postgres write here
        name = f"{namespace}-{sub}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
              "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                       "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": namespace, "name": claim},
                       "hostPath": {"path": str(path), "type": "Directory"}}}
        assert kubectl(cluster, "apply", "-f", "-", input=json.dumps(pv)).returncode == 0
        names.append(name)
    return names


def roles_values(cluster, namespace: str) -> list[str]:
    """Values installing the replicated roles from images built here: the platform, PostgreSQL and Redis images
    pushed to the cluster's registry, builds on the node's Docker engine, apps at their pod IPs, small CPU
    requests (ten processes on a 2-core node)."""
    platform = build_image("build-platform.sh")[-1]
    postgres, redis = build_image("build-trial-services.sh")
    repository, tag = platform.rsplit(":", 1)
    values = ["--set", "roles.enabled=true", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
              "--set", f"postgresql.image={postgres}", "--set", f"redis.image={redis}",
              "--set", "kubernetes.address=pod", "--set", "appsDomain=apps.test",
              "--set", "builder.hostDockerSocket.enabled=true",
              "--set", f"builder.hostDockerSocket.gid={os.stat('/var/run/docker.sock').st_gid}",
              "--set", f"builder.imagePrefix={cluster.registry}/spaces",
              "--set", "resources.requests.cpu=50m", "--set", "resources.requests.memory=128Mi"]
    if HOST_CA.is_file():  # package indexes are reachable from builds here only with the host's CA bundle
        assert kubectl(cluster, "create", "configmap", "build-ca", "-n", namespace,
                       f"--from-file=ca-certificates.crt={HOST_CA}").returncode == 0
        values += ["--set", "builder.caBundle.configMap=build-ca"]
    return values


def helm_binary() -> str:
    """infra/helm/build-helm.sh: Helm built from its Go module (cached); the binary's path."""
    proc = subprocess.run([str(ROOT / "infra" / "helm" / "build-helm.sh")], capture_output=True, text=True,
                          check=False, timeout=3000)
    if proc.returncode != 0:
        raise RuntimeError(f"building Helm failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def services(cluster, namespace: str) -> dict[str, str]:
    """Service name -> ClusterIP in the namespace (kube-proxy routes ClusterIPs here; names do not resolve)."""
    items = json.loads(kubectl(cluster, "get", "svc", "-n", namespace, "-o", "json").stdout)["items"]
    return {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in items}


def ready_pods(cluster, namespace: str, selector: str) -> list[dict]:
    """The Ready pods matching selector that carry the chart's host aliases (the upgraded revision)."""
    items = json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and p["spec"].get("hostAliases")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]


def wait(what: str, check, timeout: float = 600, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(every)


ROLES = ("hub", "proxy", "builder", "controller")


def install(helm, cluster, namespace: str, values: list[str]) -> str:
    """``helm install`` with the platform's processes at zero replicas, then, once the bundled PostgreSQL and Redis
    are Ready, a ``helm upgrade`` to the chart's replicas naming the chart's Services in its pods' /etc/hosts
    (``hostAliases``: no cluster DNS here, but kube-proxy routes the ClusterIPs, which are known once the Services
    exist) and making the hub's Service its public URL. Returns that URL.

    Why in two steps: pods started before the upgrade cannot resolve the database's name and crash, and the
    upgrade replaces them anyway; on a busy 2-core node those extra starts, beside PostgreSQL's first start, are
    what made every process miss its probes."""
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    held = ["--set", "replicaCount=0", *[a for role in ROLES for a in ("--set", f"roles.{role}.replicas=0")]]
    proc = run(helm, "install", RELEASE, str(CHART), "-n", namespace, "--kubeconfig", cluster.kubeconfig,
               *values, *held)
    assert proc.returncode == 0, proc.stderr
    for name in ("postgresql", "redis"):
        proc = subprocess.run([cluster.kubectl, "--kubeconfig", cluster.kubeconfig, "rollout", "status", "-n",
                               namespace, f"statefulset/{FULLNAME}-{name}", "--timeout=600s"],
                              capture_output=True, text=True, timeout=660, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    ips = services(cluster, namespace)
    hub = f"http://{ips[FULLNAME]}"
    release = ["--set", f"publicUrl={hub}", "--set", f"replicaCount={chart['replicaCount']}"]
    release += [a for role in ROLES for a in ("--set", f"roles.{role}.replicas={chart['roles'][role]['replicas']}")]
    for i, (name, ip) in enumerate(sorted(ips.items())):
        release += ["--set", f"hostAliases[{i}].ip={ip}", "--set", f"hostAliases[{i}].hostnames[0]={name}"]
    proc = run(helm, "upgrade", RELEASE, str(CHART), "-n", namespace, "--kubeconfig", cluster.kubeconfig,
               "--reuse-values", *release)
    assert proc.returncode == 0, proc.stderr
    return hub


def role_pods(cluster, namespace: str, role: str) -> list[dict]:
    items = json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/component={role}",
                               "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and p["status"].get("podIP")]


def leaders(cluster, namespace: str) -> list[str]:
    """The controller pods whose /readyz is 200 (a controller is ready only while it leads)."""
    found = []
    for pod in role_pods(cluster, namespace, "controller"):
        try:
            r = httpx.get(f"http://{pod['status']['podIP']}:9090/readyz", timeout=2)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            found.append(pod["metadata"]["name"])
    return found
