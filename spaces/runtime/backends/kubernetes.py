"""The Kubernetes backend: one Deployment + Service + Secret per running Space revision (see ``k8s_objects``).

Lifecycle against the :class:`~spaces.runtime.contracts.Backend` protocol:

* ``start(spec)``: create (or, when it already exists after a crash of ours, replace) the env Secret, the
  Deployment and the Service, then hand the Secret to the Deployment as owner so Kubernetes collects it with the
  Deployment. Returns at once; the kube-scheduler places the pod inside the flavor's pool (node selector,
  tolerations, ``nvidia.com/gpu``) while our quotas still apply before ``start`` is ever called. The namespace's
  NetworkPolicy for Space pods (``network_policy.enabled``) is made or corrected first, so no pod runs without it.
* ``poll(handle)``: read the Deployment and its pods: ready replica -> RUNNING (address: the Service's cluster
  DNS name, or the pod IP with ``address: pod`` when the control plane runs outside the cluster network);
  crash-looping, OOM-killed or unpullable image -> EXITED with the log tail; unschedulable -> STARTING with
  kube-scheduler's reason; Deployment gone -> GONE.
* ``stop(handle)``: delete the three objects; 404 is success. Idempotent. The namespace's NetworkPolicy stays
  (it still covers the pod during its grace period).
* ``list(labels)``: Deployments matching the label selector in our namespace (re-adoption after a restart).
* ``logs(handle, follow)``: ``read_namespaced_pod_log`` of the instance's newest pod.
* ``claims()``/``forget_claim(bucket_id)`` (``HoldsClaims``): a bucket a Space mounts is a PersistentVolumeClaim
  made by the first ``start`` that mounts it; the platform deletes the claims of deleted buckets.
* ``freeze``/``thaw``: not supported: a pod cannot be paused; scaling to 0 is a stop, which the sleeper does.

The ``kubernetes`` package is imported lazily, only when this backend is built.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field

from spaces.errors import SpacesError
from spaces.runtime import k8s_objects as k8s
from spaces.runtime.contracts import (LABEL_SHA, LABEL_SPACE, Claim, Handle, InstanceSpec, Observed, Phase,
                                     StartFailed)
from spaces.runtime.flavors import FlavorCatalog

log = logging.getLogger(__name__)

# the generated client defaults patches to JSON Patch (a list of operations); our bodies are partial objects
_MERGE = "application/strategic-merge-patch+json"
# what the kubelet streams, with status 200, for an instance whose log it no longer has
_NO_LOG = "unable to retrieve container logs"


class NetworkPolicySettings(BaseModel):
    """Each Space pod's NetworkPolicy (env ``SPACES_KUBERNETES__NETWORK_POLICY__...``; see
    :func:`spaces.runtime.k8s_objects.build_network_policy`). The CNI plugin enforces it, or not: the bridge
    plugin does not, Calico, Cilium and kube-router do."""

    enabled: bool = Field(True, description="create a NetworkPolicy per Space pod")
    proxy_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/component": "proxy"},
        description="labels of the in-cluster proxy's pods, the only pods that may connect to a Space")
    proxy_namespace: str | None = Field(None, description="namespace of those pods; default the Spaces' namespace")
    proxy_cidrs: list[str] = Field(default_factory=list,
                                   description="source CIDRs of a proxy outside the pod network (e.g. the node's)")
    dns_pod_labels: dict[str, str] = Field(default_factory=lambda: {"k8s-app": "kube-dns"},
                                           description="the cluster DNS pods Spaces may query (port 53)")
    dns_namespace: str = Field("kube-system", description="namespace of the cluster DNS pods")
    dns_cidrs: list[str] = Field(default_factory=list, description="resolvers outside the pod network (port 53)")
    blocked_cidrs: list[str] = Field(
        default_factory=lambda: list(k8s.DEFAULT_BLOCKED_CIDRS),
        description="IPv4 ranges Spaces may not reach: the cluster's pod and Service CIDRs, node addresses and "
                    "169.254.169.254 (default: the private, CGNAT and link-local ranges)")

    def options(self) -> k8s.NetworkPolicyOptions | None:
        if not self.enabled:
            return None
        return k8s.NetworkPolicyOptions(
            proxy_pod_labels=tuple(sorted(self.proxy_pod_labels.items())), proxy_namespace=self.proxy_namespace,
            proxy_cidrs=tuple(self.proxy_cidrs), dns_pod_labels=tuple(sorted(self.dns_pod_labels.items())),
            dns_namespace=self.dns_namespace, dns_cidrs=tuple(self.dns_cidrs), blocked_cidrs=tuple(self.blocked_cidrs))


class KubernetesSettings(BaseModel):
    """Kubernetes backend configuration (nest as ``Settings.kubernetes``; env ``SPACES_KUBERNETES__...``)."""

    namespace: str = Field("spaces", description="namespace Spaces run in (must exist)")
    kubeconfig: str | None = Field(None, description="kubeconfig path; default KUBECONFIG or ~/.kube/config")
    context: str | None = Field(None, description="kubeconfig context; default the current one")
    in_cluster: bool | None = Field(None, description="use the pod's service account; default: when running in a pod")
    address: Literal["service", "pod"] = Field(
        "service", description="how the proxy reaches apps: the Service's cluster DNS name, or the pod IP"
    )
    image_pull_secrets: list[str] = Field(default_factory=list, description="Secrets for pulling Space images")
    gpu_runtime_class: str | None = Field(None, description='runtimeClassName for GPU pods, e.g. "nvidia"')
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field("IfNotPresent")
    log_tail_lines: int = Field(30, ge=1, description="log lines quoted in a crash message")
    network_policy: NetworkPolicySettings = Field(default_factory=NetworkPolicySettings)
    storage_class: str | None = Field(None, description="StorageClass of buckets' PersistentVolumeClaims (a "
                                      "Space's /data); default: the cluster's default class")
    claim_access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = Field(
        "ReadWriteOnce", description="access mode of buckets' claims: ReadWriteMany where the storage allows a "
        "bucket on several nodes at once (a read-only mount by another Space elsewhere)")


def _load_api_client(settings: KubernetesSettings):
    import os

    from kubernetes import client, config

    in_cluster = settings.in_cluster if settings.in_cluster is not None else "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=settings.kubeconfig, context=settings.context)
    except (config.ConfigException, OSError) as exc:
        where = "the pod's service account" if in_cluster else (settings.kubeconfig or "KUBECONFIG / ~/.kube/config")
        raise SpacesError(f"Cannot use the Kubernetes cluster from {where}: {exc}", code="KubernetesUnavailable",
                          status=503) from None


#: the API classes KubernetesBackend uses
APIS = ("AppsV1Api", "CoreV1Api", "NetworkingV1Api")


def load_client() -> None:
    """Load what the backend uses of the client now (``spaces.platform.preload_backend``): the client imports each
    API class, and the models it names, at first attribute access (``kubernetes/client/__init__.py``)."""
    from kubernetes import client, config  # noqa: F401
    from kubernetes.client.exceptions import ApiException  # noqa: F401

    for name in APIS:
        getattr(client, name)


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings | None = None, flavors: FlavorCatalog | None = None,
                 api_client: Any = None) -> None:
        from kubernetes import client

        self.settings = settings or KubernetesSettings()
        self.flavors = flavors or FlavorCatalog()
        self.options = k8s.PodOptions(
            namespace=self.settings.namespace, image_pull_secrets=tuple(self.settings.image_pull_secrets),
            gpu_runtime_class=self.settings.gpu_runtime_class, image_pull_policy=self.settings.image_pull_policy,
            network_policy=self.settings.network_policy.options(),
            storage_class=self.settings.storage_class, claim_access_mode=self.settings.claim_access_mode,
        )
        self._client = client
        self.api_client = api_client or _load_api_client(self.settings)
        self.apps = client.AppsV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.net = client.NetworkingV1Api(self.api_client)

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def _dict(self, obj: Any) -> dict:
        return self.api_client.sanitize_for_serialization(obj)

    # -- start ------------------------------------------------------------------------------------------------

    def start(self, spec: InstanceSpec) -> Handle:
        from kubernetes.client.exceptions import ApiException

        if spec.artifact.kind != "image":
            raise StartFailed(f"The Kubernetes backend runs images; this build produced a {spec.artifact.kind}.")
        host_dirs = [m.target for m in spec.mounts if m.claim is None]
        if host_dirs:  # a directory of the platform's machine, which no pod sees (spaces.runtime.volumes)
            raise StartFailed("The Kubernetes backend mounts buckets only, not directories of the platform's "
                              f"machine: {', '.join(host_dirs)}.")
        flavor = self.flavors.get(spec.flavor)
        name = k8s.instance_name(spec.space_id, spec.sha)
        c, ns = self._client, self.namespace
        secret = c.V1Secret.from_dict(k8s.build_secret(spec, name, self.options))
        deployment = c.V1Deployment.from_dict(
            k8s.build_deployment(spec, name, flavor.reservation, flavor.tolerations, self.options))
        try:
            self._ensure_network_policy()  # before the Deployment: no Space pod runs without it
            for m in spec.mounts:
                self._ensure_claim(m.claim)
            self._create_or(lambda: self.core.create_namespaced_secret(ns, secret),
                            lambda: self.core.replace_namespaced_secret(f"{name}-env", ns, secret))
            created = self._create_or(lambda: self.apps.create_namespaced_deployment(ns, deployment),
                                      lambda: self.apps.replace_namespaced_deployment(name, ns, deployment))
            owner = [k8s.owner_reference(name, created.metadata.uid)]
            service = k8s.build_service(spec, name, self.options)
            service["metadata"]["ownerReferences"] = owner
            # a Service's clusterIP is immutable: patch, never replace, when it already exists
            self._create_or(lambda: self.core.create_namespaced_service(ns, c.V1Service.from_dict(service)),
                            lambda: self.core.patch_namespaced_service(name, ns, service, _content_type=_MERGE))
            self.core.patch_namespaced_secret(f"{name}-env", ns, {"metadata": {"ownerReferences": owner}},
                                              _content_type=_MERGE)
        except ApiException as exc:
            raise StartFailed(f"Kubernetes refused to start {spec.repo_id}: {exc.status} {exc.reason}: "
                              f"{_api_message(exc)}") from None
        # node: kube-scheduler picks the machine inside the flavor's pool, not us
        return Handle("kubernetes", name, "kubernetes",
                      {"namespace": ns, "port": spec.port, "space_id": spec.space_id, "sha": spec.sha})

    def _ensure_network_policy(self) -> None:
        """Create the namespace's NetworkPolicy for Space pods, or bring it back to what the settings say (someone
        edited it, or the settings changed). Never deleted by us: it outlives every Space, which costs nothing."""
        if self.options.network_policy is None:
            return
        ns, name = self.namespace, k8s.NETWORK_POLICY_NAME
        wanted = k8s.build_network_policy(ns, self.options.network_policy)

        def replace_if_changed():
            current = self._dict(self.net.read_namespaced_network_policy(name, ns))
            if current.get("spec") != wanted["spec"]:
                body = {**wanted, "metadata": {**wanted["metadata"],
                                               "resourceVersion": current["metadata"]["resourceVersion"]}}
                self.net.replace_namespaced_network_policy(name, ns, body)

        self._create_or(lambda: self.net.create_namespaced_network_policy(ns, wanted), replace_if_changed)

    def _ensure_claim(self, claim: Claim) -> None:
        """The bucket's PersistentVolumeClaim, made on its first mount; one that exists is the bucket's files."""
        body = k8s.build_claim(claim, self.options)
        self._create_or(lambda: self.core.create_namespaced_persistent_volume_claim(self.namespace, body),
                        lambda: None)

    def claims(self) -> set[str]:
        """The ids of the buckets that have a claim here (``contracts.HoldsClaims``)."""
        found = self.core.list_namespaced_persistent_volume_claim(self.namespace, label_selector=k8s.LABEL_BUCKET)
        prefix = k8s.claim_name("")
        return {c.metadata.name[len(prefix):] for c in found.items if c.metadata.name.startswith(prefix)}

    def forget_claim(self, bucket_id: str) -> None:
        """Delete a deleted bucket's claim: its volume goes with it where the class reclaims by deleting (the
        claim's protection waits for a pod still stopping)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespaced_persistent_volume_claim(k8s.claim_name(bucket_id), self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    @staticmethod
    def _create_or(create, on_conflict):
        from kubernetes.client.exceptions import ApiException

        try:
            return create()
        except ApiException as exc:
            if exc.status != 409:
                raise
            return on_conflict()

    # -- observe ----------------------------------------------------------------------------------------------

    def _pods(self, handle: Handle) -> list[dict]:
        ns = handle.data.get("namespace", self.namespace)
        pods = self.core.list_namespaced_pod(ns, label_selector=f"{k8s.LABEL_INSTANCE}={handle.ref}")
        return [self._dict(p) for p in pods.items]

    def poll(self, handle: Handle) -> Observed:
        from kubernetes.client.exceptions import ApiException

        ns = handle.data.get("namespace", self.namespace)
        try:
            deployment = self._dict(self.apps.read_namespaced_deployment(handle.ref, ns))
        except ApiException as exc:
            if exc.status == 404:
                return Observed(Phase.GONE)
            raise
        pods = self._pods(handle)
        port = int(handle.data.get("port") or 0)
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
        if self.settings.address == "pod":
            ip = (pod or {}).get("status", {}).get("podIP")
            address = (ip, port) if ip else None
        else:
            address = (f"{handle.ref}.{ns}.svc", port)
        tail = ""
        if pod is not None and k8s.crashed_container(pod) is not None:
            tail = self._log_tail(pod["metadata"]["name"], ns)
        return k8s.observe(deployment, pods, address, tail)

    def _log_tail(self, pod: str, ns: str) -> str:
        from kubernetes.client.exceptions import ApiException

        # the newest instance first: while it waits in CrashLoopBackOff it is the one that crashed, and the kubelet
        # has already removed the one before (a real kubelet 1.36 answers `previous` with a placeholder line then);
        # the previous instance when the newest has been restarted and said nothing yet
        for previous in (False, True):
            try:
                text = self.core.read_namespaced_pod_log(pod, ns, container=k8s.CONTAINER, previous=previous,
                                                         tail_lines=self.settings.log_tail_lines)
            except ApiException:
                continue
            if text and not text.startswith(_NO_LOG):
                return text
        return ""

    def list(self, labels: dict[str, str]) -> list[Handle]:
        deployments = self.apps.list_namespaced_deployment(self.namespace, label_selector=k8s.label_selector(labels))
        handles = []
        for d in deployments.items:
            meta = d.metadata
            ports = d.spec.template.spec.containers[0].ports or []
            handles.append(Handle("kubernetes", meta.name, "kubernetes", {
                "namespace": meta.namespace, "port": ports[0].container_port if ports else 0,
                "space_id": (meta.labels or {}).get(LABEL_SPACE, ""), "sha": (meta.labels or {}).get(LABEL_SHA, ""),
            }))
        return handles

    # -- stop, logs -------------------------------------------------------------------------------------------

    def stop(self, handle: Handle) -> None:
        from kubernetes.client.exceptions import ApiException

        ns = handle.data.get("namespace", self.namespace)
        for delete in (lambda: self.apps.delete_namespaced_deployment(handle.ref, ns, propagation_policy="Background"),
                       lambda: self.core.delete_namespaced_service(handle.ref, ns),
                       lambda: self.core.delete_namespaced_secret(f"{handle.ref}-env", ns)):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:  # already gone is success
                    raise

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        from kubernetes.client.exceptions import ApiException

        ns = handle.data.get("namespace", self.namespace)
        pods = self._pods(handle)
        if not pods:
            return
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")["metadata"]["name"]
        try:
            if not follow:
                yield from self.core.read_namespaced_pod_log(pod, ns, container=k8s.CONTAINER).splitlines()
                return
            resp = self.core.read_namespaced_pod_log(pod, ns, container=k8s.CONTAINER, follow=True,
                                                     _preload_content=False)
        except ApiException as exc:
            if exc.status in (400, 404):  # container not started yet, or pod gone: no lines
                return
            raise
        buf = b""
        try:
            for chunk in resp.stream(4096):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if buf:
                yield buf.decode("utf-8", "replace")
        finally:
            resp.release_conn()

    def freeze(self, handle: Handle) -> None:
        raise NotImplementedError("Kubernetes cannot pause a pod; sleeping a Space on Kubernetes stops it")

    def thaw(self, handle: Handle) -> None:
        raise NotImplementedError("Kubernetes cannot pause a pod; sleeping a Space on Kubernetes stops it")


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")
