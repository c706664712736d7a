"""Kubernetes object builders (spaces.runtime.k8s_objects): dict equality, and validation against the official
Kubernetes OpenAPI schema two ways: the JSON schemas ``kubernetes-validate`` bundles per Kubernetes version
(strict: unknown fields are errors), and the official client's typed models (required fields and types)."""

from __future__ import annotations

import copy
import json

import pytest

from spaces.builder.plan import Artifact
from spaces.runtime import k8s_objects as k8s
from spaces.runtime.contracts import Claim, InstanceSpec, Mount
from spaces.runtime.flavors import FlavorCatalog, FlavorSettings

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate carries the OpenAPI JSON schemas")
client = pytest.importorskip("kubernetes.client")

SCHEMA_VERSIONS = ["1.28", "1.31", "1.37"]
SHA = "0123456789abcdef0123456789abcdef01234567"
CAT = FlavorCatalog()
BASIC = CAT.get("cpu-basic").reservation


def make_spec(flavor: str = "cpu-basic", catalog: FlavorCatalog = CAT, **kw) -> InstanceSpec:
    base = dict(
        space_id="65f0c0ffee0123456789abcd", repo_id="alice/demo", sha=SHA, sdk="gradio",
        artifact=Artifact("image", "registry.local/spaces/demo:0123456789ab", "digest", SHA), workdir="/unused",
        app_file="app.py", port=7860, env={"GREETING": "hi", "HF_TOKEN": "hf_s3cret_value"},
        limits=catalog.get(flavor).limits, flavor=flavor,
    )
    base.update(kw)
    return InstanceSpec(**base)


NAME = "space-65f0c0ffee0123456789abcd-0123456789"
LABELS = {"spaces.managed": "true", "spaces.space-id": "65f0c0ffee0123456789abcd", "spaces.sha": SHA,
          "spaces.flavor": "cpu-basic", "spaces.instance": NAME}
META = {"name": NAME, "namespace": "spaces", "labels": LABELS, "annotations": {"spaces.repo-id": "alice/demo"}}


RW_BUCKET, RO_BUCKET = "0a1b2c3d4e5f60718293a4b5", "ffeeddccbbaa998877665544"
BUCKET_MOUNTS = (Mount("", "/data", False, Claim(RW_BUCKET, 20480)),
                 Mount("", "/shared/models", True, Claim(RO_BUCKET, 512, "weights/v1")))


def objects(spec: InstanceSpec, catalog: FlavorCatalog = CAT, options: k8s.PodOptions | None = None):
    options = options or k8s.PodOptions()
    f = catalog.get(spec.flavor)
    name = k8s.instance_name(spec.space_id, spec.sha)
    return (k8s.build_secret(spec, name, options),
            k8s.build_deployment(spec, name, f.reservation, f.tolerations, options),
            k8s.build_service(spec, name, options))


def test_cpu_basic_deployment_exactly() -> None:
    _, deployment, _ = objects(make_spec())
    assert deployment == {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": META,
        "spec": {
            "replicas": 1, "revisionHistoryLimit": 1, "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"spaces.instance": NAME}},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {"spaces.repo-id": "alice/demo"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "registry.local/spaces/demo:0123456789ab",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"name": "http", "containerPort": 7860, "protocol": "TCP"}],
                        "envFrom": [{"secretRef": {"name": f"{NAME}-env"}}],
                        # requests: the flavor's reservation (the scheduler's own, from the flavor catalogue)
                        "resources": {"requests": {"cpu": k8s.cpu_quantity(BASIC.cpu),
                                                   "memory": k8s.memory_quantity(BASIC.memory_mb)},
                                      "limits": {"cpu": "2", "memory": "16384Mi"}},
                        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2, "timeoutSeconds": 1,
                                           "failureThreshold": 3, "successThreshold": 1},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                    }],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                },
            },
        },
    }


def test_secret_and_service_exactly() -> None:
    secret, _, service = objects(make_spec())
    assert secret == {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {**META, "name": f"{NAME}-env"},
                      "stringData": {"GREETING": "hi", "HF_TOKEN": "hf_s3cret_value"}}
    assert service == {"apiVersion": "v1", "kind": "Service", "metadata": META, "spec": {
        "type": "ClusterIP", "selector": {"spaces.instance": NAME},
        "ports": [{"name": "http", "port": 7860, "targetPort": "http", "protocol": "TCP"}]}}


def test_secrets_never_inline_in_the_deployment() -> None:
    _, deployment, service = objects(make_spec())
    text = json.dumps(deployment) + json.dumps(service)
    assert "hf_s3cret_value" not in text and "HF_TOKEN" not in text
    assert "env" not in deployment["spec"]["template"]["spec"]["containers"][0]


def test_gpu_flavor_pool_tolerations_and_gpu_limits() -> None:
    pool = {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    catalog = FlavorCatalog(FlavorSettings(node_selectors={"t4-small": pool}))
    options = k8s.PodOptions(namespace="apps", image_pull_secrets=("regcred",), gpu_runtime_class="nvidia")
    _, deployment, _ = objects(make_spec("t4-small", catalog), catalog, options)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "4096Mi", "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": "15360Mi", "nvidia.com/gpu": "1"},
    }
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["runtimeClassName"] == "nvidia" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert deployment["metadata"]["namespace"] == "apps"
    # CPU flavors get neither the GPU runtime class nor tolerations
    _, cpu, _ = objects(make_spec(), catalog, options)
    assert {"runtimeClassName", "tolerations", "nodeSelector"}.isdisjoint(cpu["spec"]["template"]["spec"])


VARIANTS = {
    "cpu-basic": lambda: objects(make_spec()),
    "t4-small": lambda: objects(make_spec("t4-small")),
    "l4x4 with pools and pull secrets": lambda: objects(
        make_spec("l4x4", FlavorCatalog(FlavorSettings(node_selectors={"l4x4": {"pool": "l4"}}))),
        FlavorCatalog(FlavorSettings(node_selectors={"l4x4": {"pool": "l4"}})),
        k8s.PodOptions(image_pull_secrets=("a", "b"), gpu_runtime_class="nvidia")),
    "odd ids and labels": lambda: objects(make_spec(space_id="Alice_Demo/ÜBER.space", labels={"team": "a b/c"})),
    "docker port": lambda: objects(make_spec(sdk="docker", port=8080)),
    "buckets": lambda: objects(make_spec(mounts=BUCKET_MOUNTS)),
}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_valid_against_openapi_json_schema(variant: str, version: str) -> None:
    for obj in VARIANTS[variant]():
        kv.validate(obj, version, strict=True)  # raises kubernetes_validate.ValidationError


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_valid_as_official_client_models(variant: str) -> None:
    secret, deployment, service = VARIANTS[variant]()
    for model, obj in ((client.V1Secret, secret), (client.V1Deployment, deployment), (client.V1Service, service)):
        typed = model.from_dict(obj)
        # round trip: nothing we wrote was dropped as unknown by the client's models
        assert client.ApiClient().sanitize_for_serialization(typed) == obj


@pytest.mark.parametrize("breakage", [
    lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
    lambda d: d["spec"]["template"]["spec"]["containers"][0].update(bogus=1),
    lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="7860"),
    lambda d: d["spec"].pop("selector"),
])
def test_the_schema_check_can_fail(breakage) -> None:
    _, deployment, _ = objects(make_spec())
    broken = copy.deepcopy(deployment)
    breakage(broken)
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, SCHEMA_VERSIONS[-1], strict=True)


NAME_TABLE = [
    ("65f0c0ffee0123456789abcd", "space-65f0c0ffee0123456789abcd-0123456789"),
    ("abc", "space-abc-0123456789"),
]


@pytest.mark.parametrize("space_id,expected", NAME_TABLE)
def test_instance_name(space_id: str, expected: str) -> None:
    assert k8s.instance_name(space_id, SHA) == expected


@pytest.mark.parametrize("space_id", ["Alice/Demo", "alice/demo", "x" * 80, "Ünïcode", "-lead", "UPPER"])
def test_instance_names_are_dns_labels_and_distinct(space_id: str) -> None:
    name = k8s.instance_name(space_id, SHA)
    assert k8s._DNS_LABEL.match(name) and len(name + "-env") <= 63
    assert name != k8s.instance_name(space_id + "x", SHA) != k8s.instance_name(space_id, "f" * 40)


@pytest.mark.parametrize("value,expected", [
    ("true", "true"), (SHA, SHA), ("t4-small", "t4-small"),
    ("alice/demo", "alice-demo-" + k8s._short_hash("alice/demo")),
    ("x" * 70, "x" * 54 + "-" + k8s._short_hash("x" * 70)),
])
def test_label_values(value: str, expected: str) -> None:
    assert k8s.label_value(value) == expected


def test_invalid_label_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid Kubernetes label key"):
        objects(make_spec(labels={"bad key!": "v"}))


@pytest.mark.parametrize("cores,q", [(0.25, "250m"), (1, "1"), (2.0, "2"), (0.1, "100m"), (1.5, "1500m")])
def test_cpu_quantities(cores: float, q: str) -> None:
    assert k8s.cpu_quantity(cores) == q


def test_label_selector_matches_labels_written() -> None:
    assert k8s.label_selector({"spaces.managed": "true", "spaces.space-id": "a/b"}) == \
        f"spaces.managed=true,spaces.space-id={k8s.label_value('a/b')}"


# -- the namespace's NetworkPolicy for Space pods -------------------------------------------------------------

NP_DEFAULT = k8s.NetworkPolicyOptions()


def test_network_policy_defaults_exactly() -> None:
    assert k8s.build_network_policy("spaces", NP_DEFAULT) == {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "spaces-space-pods", "namespace": "spaces",
                     "labels": {"app.kubernetes.io/managed-by": "spaces"}},
        "spec": {
            "podSelector": {"matchLabels": {"spaces.managed": "true"}},
            "policyTypes": ["Ingress", "Egress"],
            # in: the proxy's pods of the Spaces' namespace, nothing else
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}}}]}],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                         "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [
                    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]}}]},
            ],
        },
    }


def test_every_space_pod_is_selected_by_the_policy() -> None:
    _, deployment, _ = objects(make_spec(labels={"team": "x"}))
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = k8s.build_network_policy("spaces", NP_DEFAULT)["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()


def test_network_policy_for_a_proxy_in_another_namespace_and_on_the_node() -> None:
    np = k8s.NetworkPolicyOptions(proxy_pod_labels=(("app.kubernetes.io/instance", "sp"),), proxy_namespace="platform",
                                  proxy_cidrs=("10.231.0.1/32",), dns_pod_labels=(), dns_cidrs=("10.231.0.1/32",),
                                  blocked_cidrs=("10.244.0.0/16", "10.245.0.0/24", "169.254.169.254/32"))
    spec = k8s.build_network_policy("apps", np)["spec"]
    assert spec["ingress"] == [{"from": [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "sp"}},
         "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "platform"}}},
        {"ipBlock": {"cidr": "10.231.0.1/32"}}]}]
    assert spec["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.231.0.1/32"}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.245.0.0/24", "169.254.169.254/32"]}}]},
    ]


def test_a_rule_without_peers_is_left_out_never_open_to_all() -> None:
    """An empty ``from``/``to`` would mean everyone: with no proxy and no resolver there is no rule at all."""
    np = k8s.NetworkPolicyOptions(proxy_pod_labels=(), dns_pod_labels=())
    spec = k8s.build_network_policy("spaces", np)["spec"]
    assert spec["ingress"] == []  # with policyTypes Ingress: nothing may connect
    assert [rule["to"][0]["ipBlock"]["cidr"] for rule in spec["egress"]] == ["0.0.0.0/0"]
    assert all(rule.get("to") for rule in spec["egress"])


NP_VARIANTS = {
    "defaults": NP_DEFAULT,
    "proxy elsewhere, node resolver": k8s.NetworkPolicyOptions(
        proxy_namespace="platform", proxy_cidrs=("10.231.0.1/32",), dns_cidrs=("10.231.0.1/32",)),
    "closed": k8s.NetworkPolicyOptions(proxy_pod_labels=(), dns_pod_labels=(), blocked_cidrs=()),
}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", list(NP_VARIANTS))
def test_network_policy_valid_against_openapi_json_schema(variant: str, version: str) -> None:
    kv.validate(k8s.build_network_policy("spaces", NP_VARIANTS[variant]), version, strict=True)


@pytest.mark.parametrize("variant", list(NP_VARIANTS))
def test_network_policy_valid_as_official_client_model(variant: str) -> None:
    obj = k8s.build_network_policy("spaces", NP_VARIANTS[variant])
    typed = client.V1NetworkPolicy.from_dict(obj)
    assert client.ApiClient().sanitize_for_serialization(typed) == obj


def test_the_network_policy_schema_check_can_fail() -> None:
    broken = k8s.build_network_policy("spaces", NP_DEFAULT)
    broken["spec"]["egress"][1]["to"][0]["ipBlock"]["exceptions"] = broken["spec"]["egress"][1]["to"][0][
        "ipBlock"].pop("except")
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, SCHEMA_VERSIONS[-1], strict=True)


class NoCluster:  # any call to the API server fails the test
    def __getattr__(self, name: str):  # noqa: ANN204
        raise AssertionError(f"the API server was called: {name}")


def test_a_directory_of_the_platforms_machine_is_refused_before_any_object_is_made() -> None:
    """A repository volume is files of the platform's disk, which no pod sees: the start says so instead of running
    the app without it (``spaces.runtime.volumes`` refuses it first; this is the backend's own guard)."""
    from spaces.runtime.backends.kubernetes import KubernetesBackend
    from spaces.runtime.contracts import StartFailed

    backend = KubernetesBackend(api_client=NoCluster())
    with pytest.raises(StartFailed, match="mounts buckets only.*: /assets"):
        backend.start(make_spec(mounts=(Mount("/srv/volumes/space/a/sha", "/assets", True),)))


def test_buckets_are_claims_mounted_where_the_space_asked() -> None:
    _, deployment, _ = objects(make_spec(mounts=BUCKET_MOUNTS))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "bucket-0", "persistentVolumeClaim": {"claimName": f"bucket-{RW_BUCKET}", "readOnly": False}},
        {"name": "bucket-1", "persistentVolumeClaim": {"claimName": f"bucket-{RO_BUCKET}", "readOnly": True}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "bucket-0", "mountPath": "/data", "readOnly": False},
        {"name": "bucket-1", "mountPath": "/shared/models", "readOnly": True, "subPath": "weights/v1"}]
    assert pod["securityContext"] == {"fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"}
    # only what the app writes is given to its user, by root holding CHOWN and nothing else
    (init,) = pod["initContainers"]
    assert init["command"] == ["chown", "1000:1000", "/data"]
    assert init["volumeMounts"] == [{"name": "bucket-0", "mountPath": "/data", "readOnly": False}]
    assert init["image"] == pod["containers"][0]["image"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    # the pods writing one bucket share a node (a ReadWriteOnce volume attaches to one)
    key = f"bucket.spaces/{RW_BUCKET}"
    assert deployment["spec"]["template"]["metadata"]["labels"][key] == "true"
    assert key not in deployment["metadata"]["labels"]
    assert pod["affinity"] == {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {key: "true"}}, "topologyKey": "kubernetes.io/hostname"}]}}


def test_a_space_reading_buckets_only_gets_no_init_container_and_no_affinity() -> None:
    _, deployment, _ = objects(make_spec(mounts=BUCKET_MOUNTS[1:]))
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod and "affinity" not in pod
    assert not any(k.startswith("bucket.spaces/") for k in deployment["spec"]["template"]["metadata"]["labels"])


def test_no_volumes_no_pod_security_context() -> None:
    pod = objects(make_spec())[1]["spec"]["template"]["spec"]
    assert not {"volumes", "securityContext", "initContainers", "affinity"} & set(pod)


def test_a_buckets_claim_exactly() -> None:
    assert k8s.build_claim(Claim(RW_BUCKET, 20480), k8s.PodOptions(namespace="apps", storage_class="fast")) == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"bucket-{RW_BUCKET}", "namespace": "apps",
                     "labels": {"spaces.bucket": RW_BUCKET, "app.kubernetes.io/managed-by": "spaces"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20480Mi"}},
                 "storageClassName": "fast"}}
    # no class named: the cluster's default class provisions it
    assert "storageClassName" not in k8s.build_claim(Claim(RW_BUCKET, 16))["spec"]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_a_buckets_claim_is_valid_against_openapi_json_schema(version: str) -> None:
    claim = k8s.build_claim(Claim(RW_BUCKET, 64), k8s.PodOptions(storage_class="standard"))
    kv.validate(claim, version, strict=True)
    assert client.ApiClient().sanitize_for_serialization(client.V1PersistentVolumeClaim.from_dict(claim)) == claim
