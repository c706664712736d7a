"""The Helm chart (infra/helm/spaces) against the live cluster's own API: ``helm lint``, ``helm template`` applied
with a server-side dry run for bundled and external databases, the Role checked as the chart's service account,
and the render's refusals. Helm is built from its Go module by infra/helm/build-helm.sh (cached)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra" / "helm" / "spaces"
EXTERNAL = CHART / "ci" / "external-values.yaml"
RELEASE = "sp"
FULLNAME = "sp-spaces"


@pytest.fixture(scope="session")
def helm() -> str:
    try:
        proc = subprocess.run([str(ROOT / "infra" / "helm" / "build-helm.sh")], capture_output=True, text=True, check=False,
                              timeout=3000)
    except subprocess.TimeoutExpired:
        pytest.fail("building Helm did not finish in 50 minutes", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"building Helm failed: {proc.stderr[-2000:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=120, check=False)


def render(helm: str, namespace: str, *extra: str) -> str:
    proc = run(helm, "template", RELEASE, str(CHART), "--namespace", namespace, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def objects(manifest: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def kubectl(cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return run(cluster.kubectl, "--kubeconfig", cluster.kubeconfig, *args, input=input)


@pytest.mark.parametrize("values", [[], ["--values", str(EXTERNAL)]], ids=["bundled", "external"])
def test_helm_lint_is_clean(helm, values) -> None:
    proc = run(helm, "lint", "--strict", str(CHART), *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def _kinds(docs: list[dict]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_bundled_render_is_accepted_by_the_cluster_api(helm, cluster, namespace) -> None:
    manifest = render(helm, namespace)
    docs = objects(manifest)
    assert _kinds(docs) >= {
        ("Deployment", FULLNAME), ("Service", FULLNAME), ("PersistentVolumeClaim", f"{FULLNAME}-data"),
        ("ServiceAccount", FULLNAME), ("Role", f"{FULLNAME}-spaces"), ("RoleBinding", f"{FULLNAME}-spaces"),
        ("StatefulSet", f"{FULLNAME}-postgresql"), ("Service", f"{FULLNAME}-postgresql"),
        ("StatefulSet", f"{FULLNAME}-redis"), ("Service", f"{FULLNAME}-redis"), ("Secret", f"{FULLNAME}-credentials"),
    }
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Ingress")]
    proc = kubectl(cluster, "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout
    # a dry run changed nothing
    assert "No resources found" in kubectl(cluster, "get", "deploy,sts,pvc,role", "-n", namespace).stderr

    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SPACES_RUNTIME__BACKEND"]["value"] == "kubernetes"
    assert env["SPACES_KUBERNETES__NAMESPACE"]["value"] == namespace
    assert env["SPACES_DATABASE_URL"]["value"] == f"postgresql+psycopg://spaces@{FULLNAME}-postgresql:5432/spaces"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-credentials",
                                                             "key": "postgres-password"}
    assert env["SPACES_REDIS_URL"]["value"] == f"redis://:$(SPACES_REDIS_PASSWORD)@{FULLNAME}-redis:6379/0"
    # the generated passwords are only in the Secret
    secret = next(d for d in docs if d["kind"] == "Secret")
    for value in secret["data"].values():
        assert value not in json.dumps(deploy)


def test_external_render_is_accepted_by_the_cluster_api(helm, cluster, namespace) -> None:
    manifest = render(helm, namespace, "--values", str(EXTERNAL))
    docs = objects(manifest)
    kinds = {d["kind"] for d in docs}
    assert "StatefulSet" not in kinds and "Secret" not in kinds  # nothing bundled, no generated passwords
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["spaces.example.com", "*.apps.example.com"]
    assert ingress["spec"]["tls"] == [{"hosts": ["spaces.example.com"], "secretName": "spaces-hub-tls"},
                                      {"hosts": ["*.apps.example.com"], "secretName": "spaces-apps-wildcard-tls"}]
    proc = kubectl(cluster, "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout

    deploy = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SPACES_DATABASE_URL"]["value"] == \
        "postgresql+psycopg://spaces@db.example.com:5432/spaces?sslmode=require"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "spaces-db", "key": "password"}
    assert env["SPACES_REDIS_URL"]["value"] == "rediss://:$(SPACES_REDIS_PASSWORD)@redis.example.com:6380/0"
    assert env["SPACES_APPS_DOMAIN"]["value"] == "apps.example.com"
    assert env["SPACES_APPS_SCHEME"]["value"] == "https"


def test_the_role_allows_what_the_backend_calls_in_its_namespace_only(helm, cluster, namespace) -> None:
    docs = [d for d in objects(render(helm, namespace))
            if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    manifest = yaml.safe_dump_all(docs)
    assert kubectl(cluster, "apply", "-n", namespace, "-f", "-", input=manifest).returncode == 0
    who = f"system:serviceaccount:{namespace}:{FULLNAME}"

    def can(verb: str, resource: str, ns: str = namespace) -> bool:
        resource, _, sub = resource.partition("/")
        proc = kubectl(cluster, "auth", "can-i", verb, resource, *(["--subresource", sub] if sub else []),
                       "-n", ns, "--as", who)
        assert proc.stdout.strip() in ("yes", "no"), proc.stderr
        return proc.stdout.strip() == "yes"

    # every call of spaces/runtime/backends/kubernetes.py
    for verb, resource in [("create", "deployments.apps"), ("update", "deployments.apps"),
                           ("get", "deployments.apps"), ("list", "deployments.apps"),
                           ("delete", "deployments.apps"), ("create", "services"), ("patch", "services"),
                           ("delete", "services"), ("create", "secrets"), ("update", "secrets"),
                           ("patch", "secrets"), ("delete", "secrets"), ("list", "pods"), ("get", "pods/log")]:
        assert can(verb, resource), f"{verb} {resource}"
    # and nothing more: not other namespaces, not reading secrets back, not the cluster
    assert not can("create", "deployments.apps", "default")
    assert not can("get", "secrets")
    assert not can("list", "secrets")
    assert not can("create", "pods/exec")
    assert not can("list", "nodes", "")


@pytest.mark.parametrize("args, why", [
    (["--set", "replicaCount=2"], "runs as ONE replica"),
    (["--set", "metrics.enabled=true"], "no /metrics endpoint yet"),
    (["--set", "postgresql.bundled=false"], "externalDatabase.url is needed"),
    (["--set", "ingress.enabled=true"], "ingress.enabled needs publicUrl"),
], ids=["replicas", "metrics", "no-database", "ingress-without-host"])
def test_the_render_refuses_what_the_process_cannot_do(helm, args, why) -> None:
    proc = run(helm, "template", RELEASE, str(CHART), *args)
    assert proc.returncode != 0
    assert why in proc.stderr


# -- installed for real -------------------------------------------------------------------------------------------

def build_image(script: str) -> list[str]:
    """infra/images/<script> --push: images built from the project's base image into the cluster's registry."""
    proc = subprocess.run([str(ROOT / "infra" / "images" / script), "--push"], capture_output=True, text=True,
                          timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def pod_ip(cluster, namespace: str, selector: str, timeout: float = 300) -> str:
    """The IP of the Ready pod matching selector (this cluster has no kube-proxy or DNS: pod IPs route)."""
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(cluster, "get", "pods", "-n", namespace, "-l", selector, "-o", "json")
        for pod in json.loads(proc.stdout or '{"items": []}')["items"]:
            ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
            if ready and not pod["metadata"].get("deletionTimestamp"):
                return pod["status"]["podIP"]
        if time.monotonic() > deadline:
            events = kubectl(cluster, "get", "events", "-n", namespace).stdout
            raise AssertionError(f"no Ready pod for {selector} in {timeout} s:\n{events[-3000:]}")
        time.sleep(1)


@pytest.fixture
def volumes(cluster, namespace, tmp_path):
    """Static hostPath PersistentVolumes bound to the chart's two claims (the cluster has no provisioner)."""
    names = []
    for sub, claim, size in [("data", f"{FULLNAME}-data", "20Gi"), ("pg", f"data-{FULLNAME}-postgresql-0", "8Gi")]:
        path = tmp_path / sub
        path.mkdir()
        path.chmod(0o777)  # hostPath ignores fsGroup; the platform (uid 1000) and postgres write here
        name = f"{namespace}-{sub}"
        pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
              "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                       "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": namespace, "name": claim},
                       "hostPath": {"path": str(path), "type": "Directory"}}}
        assert kubectl(cluster, "apply", "-f", "-", input=json.dumps(pv)).returncode == 0
        names.append(name)
    yield
    kubectl(cluster, "delete", "pv", *names, "--wait=false")


@pytest.mark.timeout(1500)  # a fresh cluster's registry is empty: three images pushed, then pulled by the node
def test_helm_install_runs_the_platform_on_bundled_postgres_and_redis(helm, cluster, namespace, volumes) -> None:
    platform = build_image("build-platform.sh")[-1]
    postgres, redis = build_image("build-trial-services.sh")
    repository, tag = platform.rsplit(":", 1)
    node_ip = kubectl(cluster, "get", "node", cluster.node, "-o",
                      'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}').stdout.strip()
    values = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
              "--set", f"postgresql.image={postgres}", "--set", f"redis.image={redis}",
              "--set", "kubernetes.address=pod",
              # the in-cluster API address: the `kubernetes` Service IP does not route without kube-proxy
              "--set", "extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", f"extraEnv[0].value={node_ip}",
              "--set", "extraEnv[1].name=KUBERNETES_SERVICE_PORT", "--set-string", "extraEnv[1].value=6443"]
    try:
        proc = run(helm, "install", RELEASE, str(CHART), "-n", namespace, "--kubeconfig", cluster.kubeconfig, *values)
        assert proc.returncode == 0, proc.stderr
        # no cluster DNS here: once the bundled services run, name them in /etc/hosts (hostAliases) and upgrade;
        # the Recreate strategy replaces the platform's pod
        pg_ip = pod_ip(cluster, namespace, "app.kubernetes.io/component=postgresql")
        redis_ip = pod_ip(cluster, namespace, "app.kubernetes.io/component=redis")
        proc = run(helm, "upgrade", RELEASE, str(CHART), "-n", namespace, "--kubeconfig", cluster.kubeconfig,
                   "--reuse-values", "--set", f"hostAliases[0].ip={pg_ip}",
                   "--set", f"hostAliases[0].hostnames[0]={FULLNAME}-postgresql",
                   "--set", f"hostAliases[1].ip={redis_ip}", "--set", f"hostAliases[1].hostnames[0]={FULLNAME}-redis")
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 300
        while True:  # the upgraded pod (revision 2) Ready
            ip = pod_ip(cluster, namespace, "app.kubernetes.io/name=spaces")
            hosts = kubectl(cluster, "exec", "-n", namespace, f"deploy/{FULLNAME}", "--", "cat", "/etc/hosts").stdout
            if pg_ip in hosts or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert pg_ip in hosts
        assert httpx.get(f"http://{ip}:8000/api/health", timeout=10).json() == {"status": "ok"}
        # the platform migrated the bundled PostgreSQL (not a SQLite file)
        proc = kubectl(cluster, "exec", "-n", namespace, f"{FULLNAME}-postgresql-0", "--", "psql", "-h", "/tmp",
                       "-U", "spaces", "-d", "spaces", "-tAc", "select count(*) from alembic_version")
        assert proc.stdout.strip() == "1", proc.stderr
        # its service account reaches the API in its namespace, and is refused elsewhere
        probe = ("from kubernetes import client, config; config.load_incluster_config(); a = client.AppsV1Api()\n"
                 f"print(len(a.list_namespaced_deployment('{namespace}').items))\n"
                 "try: a.list_namespaced_deployment('default')\n"
                 "except client.ApiException as e: print(e.status)")
        proc = kubectl(cluster, "exec", "-n", namespace, f"deploy/{FULLNAME}", "--", "python3", "-c", probe)
        assert proc.stdout.split() == ["1", "403"], proc.stderr
    finally:
        run(helm, "uninstall", RELEASE, "-n", namespace, "--kubeconfig", cluster.kubeconfig, "--wait")
