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
    # the proxy runs on the host, outside the pod network's DNS: reach apps at the pod IP (no kube-proxy here)
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
