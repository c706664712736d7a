"""The cluster is real: a Ready node running the pinned release, and a pod from an image built here, pushed to the
local registry, pulled by the node, running and answering over its pod IP."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from live_images import build_and_push

pytest.importorskip("kubernetes.client")
from kubernetes import client  # noqa: E402

KUBE_VERSION = "v1.36.3"  # the pin in infra/kubernetes/cluster


def wait_pod_ready(core, ns: str, name: str, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, ns)
        ready = [c for c in pod.status.conditions or [] if c.type == "Ready" and c.status == "True"]
        if ready and pod.status.pod_ip:
            return pod
        if time.monotonic() > deadline:
            events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
            raise AssertionError(f"pod {name} not ready: {pod.status.phase} "
                                 f"{[(e.reason, e.message) for e in events]}")
        time.sleep(0.5)


def test_the_node_is_ready_and_runs_the_pinned_release(cluster, api) -> None:
    node = client.CoreV1Api(api).read_node(cluster.node)
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions["Ready"] == "True", conditions
    info = node.status.node_info
    assert info.kubelet_version == KUBE_VERSION
    assert info.container_runtime_version.startswith("containerd://1.")
    assert client.VersionApi(api).get_code().git_version == KUBE_VERSION
    # the not-ready taint is gone, so ordinary pods can land
    assert not [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]


def test_a_locally_built_image_is_pulled_from_the_registry_and_answers(cluster, api, namespace,
                                                                       tmp_path: Path) -> None:
    ref, token = build_and_push(cluster.registry, tmp_path)
    core = client.CoreV1Api(api)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="token-app"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(
                name="app", image=ref, image_pull_policy="Always",
                ports=[client.V1ContainerPort(container_port=8080)],
                readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=1),
            )],
            termination_grace_period_seconds=1,
        ),
    )
    core.create_namespaced_pod(namespace, pod)
    running = wait_pod_ready(core, namespace, "token-app")
    status = running.status.container_statuses[0]
    # pulled from the registry by digest, not found locally
    assert status.image_id.startswith(f"{ref.rsplit(':', 1)[0]}@sha256:"), status.image_id
    assert running.status.pod_ip.startswith("10.244.")
    answer = httpx.get(f"http://{running.status.pod_ip}:8080/token", timeout=10)
    assert answer.status_code == 200 and answer.text == token
    # the apiserver reaches the kubelet (logs through the API, as the backend reads crash tails)
    assert "GET /token" in core.read_namespaced_pod_log("token-app", namespace, container="app")


def test_pods_reach_out_as_spaces_do(cluster, api, namespace, tmp_path: Path) -> None:
    """A pod resolves and connects to PyPI (the one outside service this machine reaches), through the masquerade
    and FORWARD rules of ``cluster up``; without them its DNS query is dropped."""
    ref, _ = build_and_push(cluster.registry, tmp_path)
    core = client.CoreV1Api(api)
    probe = ("import socket; a = socket.getaddrinfo('pypi.org', 443, type=socket.SOCK_STREAM)[0][4]; "
             "socket.create_connection(a[:2], timeout=20).close(); print('reached', a[0])")
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="egress"),
        spec=client.V1PodSpec(restart_policy="Never", containers=[
            client.V1Container(name="probe", image=ref, command=["python3", "-c", probe])])))
    deadline = time.monotonic() + 120
    while core.read_namespaced_pod("egress", namespace).status.phase not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, "the probe pod did not finish"
        time.sleep(0.5)
    log = core.read_namespaced_pod_log("egress", namespace)
    assert log.startswith("reached "), log


def test_services_route_from_pods_and_the_host(cluster, api, namespace, tmp_path: Path) -> None:
    """kube-proxy (iptables mode): a Service's ClusterIP reaches its pod from the host and from another pod (the
    same bridge: hairpin and bridge netfilter), and the ``kubernetes`` Service reaches the API from a pod, as
    in-cluster clients (the chart's platform) expect. No cluster DNS: the probe uses the IPs."""
    ref, token = build_and_push(cluster.registry, tmp_path)
    core = client.CoreV1Api(api)
    labels = {"app": "token"}
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="token-app", labels=labels),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[client.V1Container(
            name="app", image=ref, ports=[client.V1ContainerPort(container_port=8080)],
            readiness_probe=client.V1Probe(tcp_socket=client.V1TCPSocketAction(port=8080), period_seconds=1))])))
    service = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="token"),
        spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    ip = service.spec.cluster_ip
    assert ip.startswith("10.245.")
    wait_pod_ready(core, namespace, "token-app")
    deadline = time.monotonic() + 60
    while True:  # kube-proxy writes the rules once the endpoints are ready
        try:
            answer = httpx.get(f"http://{ip}/token", timeout=3)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the ClusterIP never answered from the host"
            time.sleep(0.5)
    assert answer.text == token
    probe = ("import ssl, urllib.request as u\n"
             f"print(u.urlopen('http://{ip}/token', timeout=10).read().decode())\n"
             "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
             "print(u.urlopen('https://kubernetes.default.svc.cluster.local:443/readyz', context=ctx, timeout=10)"
             ".read().decode())")
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="client"),
        spec=client.V1PodSpec(restart_policy="Never", host_aliases=[
            client.V1HostAlias(ip=core.read_namespaced_service("kubernetes", "default").spec.cluster_ip,
                               hostnames=["kubernetes.default.svc.cluster.local"])],
            containers=[client.V1Container(name="probe", image=ref, command=["python3", "-c", probe])])))
    deadline = time.monotonic() + 120
    while core.read_namespaced_pod("client", namespace).status.phase not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, "the probe pod did not finish"
        time.sleep(0.5)
    assert core.read_namespaced_pod_log("client", namespace).split() == [token, "ok"]
