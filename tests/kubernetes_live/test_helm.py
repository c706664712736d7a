"""The Helm chart (infra/helm/spaces) against the live cluster's own API: ``helm lint``, ``helm template`` applied
with a server-side dry run for bundled and external databases, the Role checked as the chart's service account,
and the render's refusals; then ``helm install`` for real and a Gradio Space pushed through the installed platform
with huggingface_hub, built by the node's Docker engine (``builder.hostDockerSocket``), run as a pod, answering
gradio_client through the chart's proxy. Helm is built from its Go module by infra/helm/build-helm.sh (cached)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "platform"))
import platform_kit as kit
from chart_kit import (
    CHART,
    FULLNAME,
    RELEASE,
    build_image,
    helm_binary,
    install,
    kubectl,
    leaders,
    ready_pods,
    roles_values,
    run,
    services,
    static_volumes,
    wait,
)
from harness import HOST_CA

EXTERNAL = CHART / "ci" / "external-values.yaml"


@pytest.fixture(scope="session")
def helm() -> str:
    try:
        return helm_binary()
    except subprocess.TimeoutExpired:
        pytest.fail("building Helm did not finish in 50 minutes", pytrace=False)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def render(helm: str, namespace: str, *extra: str) -> str:
    proc = run(helm, "template", RELEASE, str(CHART), "--namespace", namespace, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def objects(manifest: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


VALUE_SETS = {
    "bundled": [],
    "external": ["--values", str(EXTERNAL)],
    "node-engine builds": ["--set", "builder.hostDockerSocket.enabled=true", "--set", "builder.hostDockerSocket.gid=106",
                           "--set", "builder.caBundle.configMap=ca", "--set", "networkPolicy.proxyCidrs[0]=10.0.0.1/32",
                           "--set", "persistence.enabled=false", "--set", "ingress.enabled=true",
                           "--set", "publicUrl=https://s.example.com", "--set", "appsDomain=apps.example.com"],
    "roles": ["--set", "roles.enabled=true", "--set", "metrics.enabled=true",
              "--set", "builder.hostDockerSocket.enabled=true",
              "--set", "builder.hostDockerSocket.gid=106", "--set", "ingress.enabled=true",
              "--set", "publicUrl=https://s.example.com", "--set", "appsDomain=apps.example.com"],
}


@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_helm_lint_is_clean(helm, values) -> None:
    proc = run(helm, "lint", "--strict", str(CHART), *VALUE_SETS[values])
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
                           ("patch", "secrets"), ("delete", "secrets"), ("list", "pods"), ("get", "pods/log"),
                           ("get", "networkpolicies.networking.k8s.io"),
                           ("create", "networkpolicies.networking.k8s.io"),
                           ("update", "networkpolicies.networking.k8s.io"),
                           ("list", "persistentvolumeclaims"), ("create", "persistentvolumeclaims"),
                           ("delete", "persistentvolumeclaims")]:
        assert can(verb, resource), f"{verb} {resource}"
    # and nothing more: not other namespaces, not reading secrets back, not the cluster
    assert not can("create", "deployments.apps", "default")
    assert not can("get", "secrets")
    assert not can("list", "secrets")
    assert not can("create", "pods/exec")
    assert not can("delete", "networkpolicies.networking.k8s.io")
    assert not can("create", "persistentvolumes", "")  # claims only: the cluster's provisioner makes volumes
    assert not can("list", "nodes", "")


@pytest.mark.parametrize("version", ["1.31", "1.37"])
@pytest.mark.parametrize("values", list(VALUE_SETS))
def test_every_rendered_object_is_valid_against_the_official_schemas(helm, values, version) -> None:
    """Beside the server-side dry run (this cluster's 1.36 API): the OpenAPI JSON schemas kubernetes-validate
    bundles, strict (an unknown field is an error, where the API server would only warn and drop it)."""
    kv = pytest.importorskip("kubernetes_validate")
    docs = objects(render(helm, "spaces", *VALUE_SETS[values]))
    assert len(docs) >= 4
    for doc in docs:
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            raise AssertionError(f"{doc['kind']}/{doc['metadata']['name']}: {exc}") from None


def test_the_schema_validation_catches_a_misspelt_field(helm) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    deploy = next(d for d in objects(render(helm, "spaces")) if d["kind"] == "Deployment")
    deploy["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(deploy, "1.37", strict=True)


def test_the_roles_render_is_accepted_by_the_cluster_api(helm, cluster, namespace) -> None:
    manifest = render(helm, namespace, *VALUE_SETS["roles"])
    docs = objects(manifest)
    proc = kubectl(cluster, "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("(server dry run)") == len(docs), proc.stdout
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {
        f"{FULLNAME}-hub": 2, f"{FULLNAME}-proxy": 2, f"{FULLNAME}-builder": 1, f"{FULLNAME}-controller": 2}

    def container(role: str) -> dict:
        return deployments[f"{FULLNAME}-{role}"]["spec"]["template"]["spec"]["containers"][0]

    assert container("hub")["args"][:3] == ["serve", "--roles", "hub"]
    assert container("proxy")["args"][-2:] == ["--ops-port", "9090"]
    # probes: the hub on its port, the others on the ops port; a controller's readiness (it leads) is not probed
    assert container("hub")["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container("proxy")["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert "readinessProbe" not in container("controller")
    assert container("controller")["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    # only the builder reaches the node's Docker engine
    mounts = {role: [m["name"] for m in container(role)["volumeMounts"]] for role in ("hub", "proxy", "builder",
                                                                                      "controller")}
    assert [role for role, names in mounts.items() if "docker-socket" in names] == ["builder"]
    env = {e["name"]: e.get("value") for e in container("proxy")["env"]}
    assert env["SPACES_HUB_UPSTREAM"] == f"{FULLNAME}:80"
    assert json.loads(env["SPACES_KUBERNETES__NETWORK_POLICY__PROXY_POD_LABELS"]) == {
        "app.kubernetes.io/name": "spaces", "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "proxy"}
    services = {d["metadata"]["name"]: d["spec"]["selector"] for d in docs if d["kind"] == "Service"}
    assert services[FULLNAME]["app.kubernetes.io/component"] == "hub"
    assert services[f"{FULLNAME}-proxy"]["app.kubernetes.io/component"] == "proxy"
    ingress = next(d for d in docs if d["kind"] == "Ingress")
    assert [(r["host"], r["http"]["paths"][0]["backend"]["service"]["name"]) for r in ingress["spec"]["rules"]] == [
        ("s.example.com", FULLNAME), ("*.apps.example.com", f"{FULLNAME}-proxy")]


def test_metrics_a_headless_service_and_a_service_monitor_where_the_crd_is(helm) -> None:
    plain = objects(render(helm, "spaces", *VALUE_SETS["roles"]))
    service = next(d for d in plain if d["metadata"]["name"] == f"{FULLNAME}-metrics")
    assert service["spec"]["clusterIP"] == "None"
    assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [("http", "http"), ("ops", "ops")]
    assert not [d for d in plain if d["kind"] == "ServiceMonitor"]  # no Prometheus Operator CRD: none
    with_crd = objects(render(helm, "spaces", *VALUE_SETS["roles"], "--api-versions", "monitoring.coreos.com/v1",
                              "--set", "metrics.serviceMonitor.labels.release=prometheus"))
    monitor = next(d for d in with_crd if d["kind"] == "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/instance": RELEASE,
                                                          "app.kubernetes.io/component": "metrics"}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http", "ops"]
    assert service["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()


@pytest.mark.parametrize("args, why", [
    (["--set", "replicaCount=2"], "runs as ONE replica"),
    (["--set", "postgresql.bundled=false"], "externalDatabase.url is needed"),
    (["--set", "ingress.enabled=true"], "ingress.enabled needs publicUrl"),
    (["--set", "builder.hostDockerSocket.enabled=true"], "builder.hostDockerSocket.gid"),
    (["--set", "builder.hostDockerSocket.enabled=true", "--set", "builder.hostDockerSocket.gid=1",
      "--set", "builder.dockerHost=tcp://x:2375"], "not both"),
    (["--set", "roles.enabled=true", "--set", "redis.bundled=false"], "the roles talk through Redis"),
], ids=["replicas", "no-database", "ingress-without-host", "socket-without-gid", "two-engines",
        "roles-without-redis"])
def test_the_render_refuses_what_the_process_cannot_do(helm, args, why) -> None:
    proc = run(helm, "template", RELEASE, str(CHART), *args)
    assert proc.returncode != 0
    assert why in proc.stderr


# -- installed for real -------------------------------------------------------------------------------------------

@pytest.fixture
def volumes(cluster, namespace, tmp_path):
    names = static_volumes(cluster, namespace, tmp_path)
    yield
    kubectl(cluster, "delete", "pv", *names, "--wait=false")


GRADIO_CLIENT = """
import json, sys
from gradio_client import Client
c = Client(sys.argv[1], verbose=False, download_files=False)
print(json.dumps(c.predict(sys.argv[2], api_name="/greet")))
"""


@pytest.mark.timeout(2400)  # a fresh cluster's registry is empty: images pushed, pulled, a Space built
def test_helm_install_runs_the_platform_and_a_space_pushed_through_it(helm, cluster, namespace, volumes) -> None:
    platform = build_image("build-platform.sh")[-1]
    postgres, redis = build_image("build-trial-services.sh")
    repository, tag = platform.rsplit(":", 1)
    values = ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
              "--set", f"postgresql.image={postgres}", "--set", f"redis.image={redis}",
              "--set", "kubernetes.address=pod", "--set", "appsDomain=apps.test",
              # builds: the node's Docker engine through its socket, images pushed to the node's registry
              "--set", "builder.hostDockerSocket.enabled=true",
              "--set", f"builder.hostDockerSocket.gid={os.stat('/var/run/docker.sock').st_gid}",
              "--set", f"builder.imagePrefix={cluster.registry}/spaces"]
    if HOST_CA.is_file():  # package indexes are reachable from builds here only with the host's CA bundle
        assert kubectl(cluster, "create", "configmap", "build-ca", "-n", namespace,
                       f"--from-file=ca-certificates.crt={HOST_CA}").returncode == 0
        values += ["--set", "builder.caBundle.configMap=build-ca"]
    try:
        hub = install(helm, cluster, namespace, values)
        wait(f"{FULLNAME} Ready with its host aliases",
             lambda: ready_pods(cluster, namespace, "app.kubernetes.io/name=spaces"))
        assert httpx.get(f"{hub}/api/health", timeout=10).json() == {"status": "ok"}
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
        push_a_space_through_the_platform(cluster, namespace, hub)
    finally:
        run(helm, "uninstall", RELEASE, "-n", namespace, "--kubeconfig", cluster.kubeconfig, "--wait")


def push_a_space_through_the_platform(cluster, namespace: str, hub: str) -> None:
    """huggingface_hub -> the hub in the platform's pod -> build on the node's engine, push to the node's registry
    -> a Deployment in the release's namespace -> pod Running -> the platform's proxy -> gradio_client."""
    from huggingface_hub import HfApi

    # an operator command in the platform's pod: same environment, same database
    proc = kubectl(cluster, "exec", "-n", namespace, f"deploy/{FULLNAME}", "--",
                   "spaces", "token", "create", "kate", "--role", "write")
    assert proc.returncode == 0, proc.stderr
    hf = HfApi(endpoint=hub, token=proc.stdout.strip())
    repo_id = "kate/on-the-chart"
    hf.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    hf.upload_folder(folder_path=str(kit.TEMPLATES / "gradio"), repo_id=repo_id, repo_type="space")
    try:
        kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=1200)
    except AssertionError as exc:
        log = kubectl(cluster, "logs", "-n", namespace, f"deploy/{FULLNAME}", "--tail=40").stdout
        raise AssertionError(f"{exc}\nplatform log:\n{log}") from None

    pods = json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", "spaces.managed=true",
                              "-o", "json").stdout)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    image = pods[0]["spec"]["containers"][0]["image"]
    assert image.startswith(f"{cluster.registry}/spaces/"), image  # built here, pulled from the node's registry
    # the platform made the Spaces' NetworkPolicy, letting in its own pod (the proxy) only
    policy = json.loads(kubectl(cluster, "get", "networkpolicy", "spaces-space-pods", "-n", namespace,
                                "-o", "json").stdout)
    assert policy["spec"]["ingress"] == [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": "spaces"}}}]}]

    # through the chart's proxy: the Space's host names the platform's Service (no DNS or Ingress here)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(HF_ENDPOINT=hub, HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
    with kit.hosts_entries(f"{kit.subdomain(repo_id)}.apps.test", ip=hub.removeprefix("http://")):
        res = subprocess.run([sys.executable, "-c", GRADIO_CLIENT, repo_id, "Helm"], env=env,
                             capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1]) == "Hello, Helm!"

    hf.delete_repo(repo_id, repo_type="space")
    deadline = time.monotonic() + 120
    while kubectl(cluster, "get", "deploy", "-n", namespace, "-l", "spaces.managed=true", "-o", "name").stdout:
        assert time.monotonic() < deadline, "the Space's Deployment outlived its repository"
        time.sleep(1)


# -- the replicated control plane ---------------------------------------------------------------------------------

@pytest.mark.timeout(2400)
def test_the_roles_apart_keep_a_space_answering_while_the_leader_is_deleted(
        helm, cluster, namespace, volumes) -> None:
    """hub x2, proxy x2 behind a Service, builder, controller x2 (leader: a PostgreSQL advisory lock): a Space
    pushed through the hubs' Service answers through the proxies' Service; `kubectl delete pod` of the leading
    controller: the standby leads, the Space answers all along and its pod is not restarted."""
    values = roles_values(cluster, namespace)
    try:
        hub = install(helm, cluster, namespace, values)
        proxy = services(cluster, namespace)[f"{FULLNAME}-proxy"]
        for role, n in (("hub", 2), ("proxy", 2), ("builder", 1)):
            wait(f"{n} {role} Ready", lambda role=role, n=n: len(ready_pods(
                cluster, namespace, f"app.kubernetes.io/component={role}")) == n)
        wait("one leading controller", lambda: len(leaders(cluster, namespace)) == 1, timeout=300)

        from huggingface_hub import HfApi

        proc = kubectl(cluster, "exec", "-n", namespace, f"deploy/{FULLNAME}-hub", "--",
                       "spaces", "token", "create", "lea", "--role", "write")
        assert proc.returncode == 0, proc.stderr
        hf = HfApi(endpoint=hub, token=proc.stdout.strip())
        repo_id = "lea/apart"
        hf.create_repo(repo_id, repo_type="space", space_sdk="gradio")
        hf.upload_folder(folder_path=str(kit.TEMPLATES / "gradio"), repo_id=repo_id, repo_type="space")
        kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=1200)
        host = f"{kit.subdomain(repo_id)}.apps.test"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
        env.update(HF_ENDPOINT=hub, HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
                   HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
        with kit.hosts_entries(host, ip=proxy):
            res = subprocess.run([sys.executable, "-c", GRADIO_CLIENT, repo_id, "roles"], env=env,
                                 capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stderr[-3000:]
        assert json.loads(res.stdout.strip().splitlines()[-1]) == "Hello, roles!"

        space_pods = json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", "spaces.managed=true",
                                        "-o", "json").stdout)["items"]
        before = [(p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"]) for p in space_pods]
        assert len(before) == 1

        # a visitor through the proxies' Service all along
        answers, failures, stop = [], [], threading.Event()

        def visit() -> None:
            with httpx.Client(base_url=f"http://{proxy}", headers={"host": host}, timeout=10) as c:
                while not stop.is_set():
                    try:
                        r = c.get("/config")
                        (answers if r.status_code == 200 else failures).append(r.status_code)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                    time.sleep(0.1)

        visitor = threading.Thread(target=visit, daemon=True)
        visitor.start()
        try:
            [leader] = leaders(cluster, namespace)
            t0 = time.monotonic()
            assert kubectl(cluster, "delete", "pod", "-n", namespace, leader, "--wait=false").returncode == 0
            new = wait("a new leader", lambda: [p for p in leaders(cluster, namespace) if p != leader], every=0.1)
            took = time.monotonic() - t0
            time.sleep(3)  # the new leader adopts; the Space keeps answering
        finally:
            stop.set()
            visitor.join(15)
        print(f"\nleader {leader} deleted -> {new[0]} leads after {took:.2f} s; "
              f"{len(answers)} answers, {len(failures)} failures during the failover")
        assert not failures, failures[:5]
        assert len(answers) > 10
        space_pods = json.loads(kubectl(cluster, "get", "pods", "-n", namespace, "-l", "spaces.managed=true",
                                        "-o", "json").stdout)["items"]
        assert [(p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"])
                for p in space_pods] == before  # adopted, not restarted
        hf.delete_repo(repo_id, repo_type="space")
    finally:
        run(helm, "uninstall", RELEASE, "-n", namespace, "--kubeconfig", cluster.kubeconfig, "--wait")
