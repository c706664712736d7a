"""The project's Kubernetes backend (spaces.runtime.backends.kubernetes) against the real API server: a Space's
Deployment, Secret and Service created, its pod pulled from the local registry, RUNNING at the pod IP and answering,
its secret delivered through the Secret only, listed by label, its log read, a crashing app reported EXITED with its
log tail, an unpullable image saying why, and stop removing everything."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from harness import wait_until
from live_images import build_and_push

pytest.importorskip("kubernetes.client")

from spaces.builder.plan import Artifact  # noqa: E402
from spaces.runtime.backends.kubernetes import KubernetesBackend, KubernetesSettings  # noqa: E402
from spaces.runtime.contracts import LABEL_MANAGED, LABEL_SPACE, InstanceSpec, Phase  # noqa: E402
from spaces.runtime.flavors import FlavorCatalog, FlavorSettings  # noqa: E402

CAT = FlavorCatalog()


def make_spec(ref: str, env: dict[str, str] | None = None) -> InstanceSpec:
    sha = uuid.uuid4().hex + "00000000"
    return InstanceSpec(
        space_id=uuid.uuid4().hex[:24], repo_id="live/k8s", sha=sha, sdk="docker",
        artifact=Artifact("image", ref, "d", sha), workdir="/unused", app_file=None, port=7860,
        env={"PORT": "7860", "GREETING": "hi from a pod", "SECRET_TOKEN": "s3cret-" + sha[:6], **(env or {})},
        limits=CAT.get("cpu-basic").limits, labels={LABEL_MANAGED: "true"},
    )


def wait_phase(backend: KubernetesBackend, handle, timeout: float = 180):
    deadline = time.monotonic() + timeout
    observed = backend.poll(handle)
    while observed.phase is Phase.STARTING and time.monotonic() < deadline:
        time.sleep(0.5)
        observed = backend.poll(handle)
    return observed


@pytest.fixture
def backend(cluster, namespace) -> KubernetesBackend:
    # the proxy runs on the host, outside the pod network's DNS: reach apps at the pod IP (no cluster DNS here)
    return KubernetesBackend(KubernetesSettings(namespace=namespace, kubeconfig=cluster.kubeconfig, address="pod"))


@pytest.fixture(scope="module")
def app_image(cluster, tmp_path_factory) -> str:
    return build_and_push(cluster.registry, tmp_path_factory.mktemp("app"))[0]


def test_a_space_runs_as_a_pod_and_answers(backend: KubernetesBackend, app_image: str) -> None:
    spec = make_spec(app_image)
    handle = backend.start(spec)
    try:
        observed = wait_phase(backend, handle)
        assert observed.phase is Phase.RUNNING, observed.message
        host, port = observed.address
        assert port == 7860 and host.startswith("10.244.")
        assert httpx.get(f"http://{host}:{port}/", timeout=10).text == "hi from a pod"
        assert [h.ref for h in backend.list({LABEL_SPACE: spec.space_id})] == [handle.ref]
        deployment = backend._dict(backend.apps.read_namespaced_deployment(handle.ref, backend.namespace))
        assert spec.env["SECRET_TOKEN"] not in str(deployment)  # only the Secret carries it
        assert any("GET /" in line for line in backend.logs(handle))
    finally:
        backend.stop(handle)
    deadline = time.monotonic() + 60
    while backend.poll(handle).phase is not Phase.GONE and time.monotonic() < deadline:
        time.sleep(0.5)
    assert backend.poll(handle).phase is Phase.GONE
    # the Secret and Service went with the Deployment
    assert not backend.core.list_namespaced_secret(backend.namespace, label_selector=f"{LABEL_SPACE}={spec.space_id}"
                                                   ).items


def test_a_crashing_space_is_exited_with_its_log_tail(backend: KubernetesBackend, tmp_path: Path,
                                                      cluster) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM spaces/base-python:3.11\nCMD [\"python3\", \"-c\", \"print('boom: no model file', flush=True); "
        "raise SystemExit(3)\"]\n")
    from live_images import docker

    ref = f"{cluster.registry}/live/crash:{uuid.uuid4().hex[:12]}"
    docker("build", "-q", "-t", ref, str(tmp_path))
    docker("push", ref)
    docker("image", "rm", ref)
    handle = backend.start(make_spec(ref))
    try:
        observed = wait_phase(backend, handle)
        assert observed.phase is Phase.EXITED
        assert "boom: no model file" in observed.message
    finally:
        backend.stop(handle)


def test_an_image_that_cannot_be_pulled_says_why(backend: KubernetesBackend, cluster) -> None:
    handle = backend.start(make_spec(f"{cluster.registry}/live/missing:{uuid.uuid4().hex[:8]}"))
    try:
        observed = wait_phase(backend, handle)
        assert observed.phase is Phase.EXITED
        assert "live/missing" in observed.message or "pull" in observed.message.lower(), observed.message
    finally:
        backend.stop(handle)


def test_a_gpu_flavor_waits_saying_why_then_lands_on_a_labelled_node_advertising_gpus(cluster, namespace,
                                                                                     app_image: str, api) -> None:
    """No GPU here: the node is given the flavor's pool label and an advertised ``nvidia.com/gpu`` extended
    resource (what a device plugin would publish), which is all the scheduler looks at."""
    from kubernetes import client

    pool = f"t4-{uuid.uuid4().hex[:6]}"
    catalog = FlavorCatalog(FlavorSettings(node_selectors={"t4-small": {"spaces.test/pool": pool}}))
    backend = KubernetesBackend(KubernetesSettings(namespace=namespace, kubeconfig=cluster.kubeconfig,
                                                   address="pod"), catalog)
    core = client.CoreV1Api(api)
    spec = make_spec(app_image)
    spec = InstanceSpec(**{**spec.__dict__, "flavor": "t4-small", "limits": catalog.get("t4-small").limits})
    handle = backend.start(spec)
    gpu = "/status/capacity/nvidia.com~1gpu"
    try:
        def waiting(why: str):
            def reason() -> str:
                o = backend.poll(handle)
                assert o.phase is Phase.STARTING, o
                return o.message if "waiting for a node" in o.message and why in o.message else ""
            return reason

        # no node in the flavor's pool; then a node in the pool without GPUs; each time the scheduler's reason
        wait_until(waiting("node affinity/selector"), timeout=60, what="the pool reason")
        core.patch_node(cluster.node, {"metadata": {"labels": {"spaces.test/pool": pool}}})
        wait_until(waiting("Insufficient nvidia.com/gpu"), timeout=60, what="the GPU reason")
        core.patch_node_status(cluster.node, [{"op": "add", "path": gpu, "value": "1"}])
        observed = wait_phase(backend, handle, timeout=120)
        assert observed.phase is Phase.RUNNING, observed.message
        pod = backend.core.list_namespaced_pod(namespace).items[0]
        assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
        assert pod.spec.node_selector == {"spaces.test/pool": pool}
        host, port = observed.address
        assert httpx.get(f"http://{host}:{port}/", timeout=10).text == "hi from a pod"
    finally:
        backend.stop(handle)
        core.patch_node(cluster.node, {"metadata": {"labels": {"spaces.test/pool": None}}})
        try:
            core.patch_node_status(cluster.node, [{"op": "remove", "path": gpu}])
        except client.ApiException:
            pass  # never advertised (the test failed before)


def test_space_pods_get_the_namespace_network_policy_before_they_run(cluster, namespace, app_image: str) -> None:
    """The API accepts the NetworkPolicy, it is there before the pod, selects it, is corrected when edited or when
    the settings change, and stays after the Space stops (it covers the pod's grace period; it goes with the
    namespace). NOT ENFORCED HERE: the bridge CNI plugin ignores NetworkPolicy (a cluster with Calico, Cilium or
    kube-router's policy controller enforces the same object), so this checks the objects, not the packets."""
    from kubernetes import client

    from spaces.runtime import k8s_objects as k8s

    settings = KubernetesSettings(namespace=namespace, kubeconfig=cluster.kubeconfig, address="pod",
                                  network_policy={"proxy_cidrs": ["10.244.0.1/32"]})  # the host proxy, via cni0
    backend = KubernetesBackend(settings)
    net = client.NetworkingV1Api(backend.api_client)
    name = k8s.NETWORK_POLICY_NAME
    spec = make_spec(app_image)
    handle = backend.start(spec)
    try:
        policy = backend._dict(net.read_namespaced_network_policy(name, namespace))
        pod = backend.core.list_namespaced_pod(namespace, label_selector=f"{k8s.LABEL_INSTANCE}={handle.ref}").items
        assert not pod or policy["metadata"]["creationTimestamp"] <= pod[0].metadata.creation_timestamp.isoformat()
        wanted = k8s.build_network_policy(namespace, settings.network_policy.options())
        assert policy["spec"] == wanted["spec"]
        observed = wait_phase(backend, handle)
        assert observed.phase is Phase.RUNNING, observed.message
        pod_labels = backend.core.list_namespaced_pod(namespace).items[0].metadata.labels
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
        # the proxy on the host still reaches the app (and would where the policy is enforced: 10.244.0.1 is let in)
        host, port = observed.address
        assert httpx.get(f"http://{host}:{port}/", timeout=10).text == "hi from a pod"

        # someone opens it up by hand: the next start puts it back
        net.patch_namespaced_network_policy(name, namespace, {"spec": {"egress": [{}]}})
        other = make_spec(app_image)
        other_handle = backend.start(other)
        backend.stop(other_handle)
        assert backend._dict(net.read_namespaced_network_policy(name, namespace))["spec"] == wanted["spec"]
        # another configuration (a proxy in another namespace): the policy follows it
        moved = KubernetesSettings(namespace=namespace, kubeconfig=cluster.kubeconfig, address="pod",
                                   network_policy={"proxy_namespace": "platform"})
        backend2 = KubernetesBackend(moved)
        backend2.stop(backend2.start(make_spec(app_image)))
        spec_now = backend._dict(net.read_namespaced_network_policy(name, namespace))["spec"]
        assert spec_now["ingress"][0]["from"][0]["namespaceSelector"] == {
            "matchLabels": {"kubernetes.io/metadata.name": "platform"}}
    finally:
        backend.stop(handle)
    assert [p.metadata.name for p in net.list_namespaced_network_policy(namespace).items] == [name]


def test_no_network_policy_when_disabled(cluster, namespace, app_image: str) -> None:
    from kubernetes import client

    backend = KubernetesBackend(KubernetesSettings(namespace=namespace, kubeconfig=cluster.kubeconfig, address="pod",
                                                   network_policy={"enabled": False}))
    backend.stop(backend.start(make_spec(app_image)))
    assert client.NetworkingV1Api(backend.api_client).list_namespaced_network_policy(namespace).items == []
