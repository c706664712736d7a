"""Kubernetes objects for one Space instance, built by pure functions as plain dicts (the API's JSON).

One running instance is three objects with the same name (:func:`instance_name`: one per Space *and* revision,
so a new revision starts beside the old one and the runtime stops the old handle once the new one answers):

* a **Secret** ``<name>-env`` holding the whole environment (``spec.env`` mixes variables and secrets, and a
  secret must never sit inline in a Deployment, readable by anyone who may ``get deployments``);
* a **Deployment** of one replica: the container takes its environment through ``envFrom`` that Secret, resource
  *requests* from the flavor's reservation (what kube-scheduler reserves, as our scheduler does) and *limits*
  from the flavor's shape, ``nvidia.com/gpu`` limits for GPU flavors, the flavor's node selector and
  tolerations, a TCP readiness probe on the app port. Why a Deployment, not a bare Pod: a Pod dies with its node
  and nothing recreates it; the Deployment controller does, and the kubelet restarts a crashing container with
  exponential backoff (CrashLoopBackOff) for free. ``strategy: Recreate`` so a GPU Space never holds two GPUs
  during a rollout;
* a **Service** (ClusterIP) selecting that instance's pod, so the proxy has a stable address.

A bucket a Space mounts is a **PersistentVolumeClaim** of its own (:func:`build_claim`, ``bucket-<bucket id>``),
made on the first start that mounts it and outliving every instance (the platform deletes it with the bucket): its
size is the bucket's, its class the operator's (``storage_class``; the cluster's default when unset). Its files
belong to uid 1000, the user Space images run as (the Hub's convention): ``fsGroup`` for the volume types whose
ownership the kubelet manages, and, for those it does not (hostPath, NFS), an init container of the Space's own
image that gives the volume's top directory to that user as root with CHOWN alone (the app could run as root
anyway: its image is its author's). One Space writes a bucket at a time, but a new revision starts beside the old
one: a ReadWriteOnce volume attaches to one node, so the pods writing a bucket are tied to the node of any other
pod writing it (a required pod affinity on the bucket's label), else the new pod would wait for an attachment
the old one keeps until the new one answers.

One **NetworkPolicy** per namespace (:func:`build_network_policy`) isolates every Space pod (``spaces.managed``):
ingress only from the proxy; egress only to DNS and to the internet minus the cluster's own ranges (pods, Services,
nodes, the cloud metadata address). Without it any Space could call the control plane's pods and every other Space
directly. One for the namespace rather than one per instance: it covers a pod for its whole life, including the
grace period after its Deployment is deleted, and a pod whose start failed halfway.

Pods get no service-account token and no service links: an app has no business talking to the cluster API or
learning other services' addresses. :func:`observe` turns a Deployment and its pods (as dicts) into an
:class:`~spaces.runtime.contracts.Observed`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spaces.runtime.contracts import LABEL_MANAGED, LABEL_SHA, LABEL_SPACE, Claim, InstanceSpec, Observed, Phase
from spaces.runtime.flavors import Reservation

#: selects the pods of one instance (Deployment selector and Service selector)
LABEL_INSTANCE = "spaces.instance"
LABEL_FLAVOR = "spaces.flavor"
ANNOTATION_REPO = "spaces.repo-id"
CONTAINER = "app"
#: on a bucket's claim: the bucket's id (how the platform finds the claims of deleted buckets)
LABEL_BUCKET = "spaces.bucket"
#: on a pod writing a bucket, suffixed with the bucket's id (see the module docstring)
LABEL_WRITES_PREFIX = "bucket.spaces/"
#: the user Space images run as
APP_UID = 1000

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class PodOptions:
    """Cluster-specific knobs from :class:`spaces.runtime.backends.kubernetes.KubernetesSettings`."""

    namespace: str = "spaces"
    image_pull_secrets: tuple[str, ...] = ()
    gpu_runtime_class: str | None = None  # e.g. "nvidia" where the GPU operator installs one
    image_pull_policy: str = "IfNotPresent"
    network_policy: NetworkPolicyOptions | None = None  # None: no NetworkPolicy objects
    storage_class: str | None = None  # buckets' claims; None: the cluster's default StorageClass
    claim_access_mode: str = "ReadWriteOnce"


#: what a Space must not reach by default: RFC 1918 and CGNAT ranges (where pod, Service and node addresses sit in
#: nearly every cluster) and link-local (169.254.169.254, the cloud metadata service, hands out node credentials)
DEFAULT_BLOCKED_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")


@dataclass(frozen=True)
class NetworkPolicyOptions:
    """Who may talk to a Space pod, and where it may talk to (see :func:`build_network_policy`)."""

    #: labels of the proxy's pods (an in-cluster proxy), in ``proxy_namespace`` (None: the Spaces' namespace)
    proxy_pod_labels: tuple[tuple[str, str], ...] = (("app.kubernetes.io/component", "proxy"),)
    proxy_namespace: str | None = None
    #: source addresses of a proxy outside the pod network (on a node: its node IP or the CNI bridge address)
    proxy_cidrs: tuple[str, ...] = ()
    #: the cluster DNS pods (kube-system, ``k8s-app=kube-dns`` for CoreDNS and kube-dns alike); empty: none
    dns_pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)
    dns_namespace: str = "kube-system"
    #: resolvers outside the pod network (node-local DNS, a resolver on the node)
    dns_cidrs: tuple[str, ...] = ()
    #: IPv4 egress is to 0.0.0.0/0 except these: list the cluster's pod and Service CIDRs and node addresses when
    #: they are public addresses
    blocked_cidrs: tuple[str, ...] = DEFAULT_BLOCKED_CIDRS

def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def instance_name(space_id: str, sha: str) -> str:
    """A DNS-1035 label (valid for Deployments, Services and Secrets' ``-env``) for one Space revision."""
    slug = re.sub(r"[^a-z0-9-]+", "-", space_id.lower()).strip("-") or "x"
    name = f"space-{slug}-{sha[:10].lower()}"
    if len(name) > 58 or slug != space_id:
        # long or rewritten ids could collide after slugging: a hash of the real id keeps names unique
        name = f"space-{slug[:30].strip('-')}-{_short_hash(space_id)}-{sha[:10].lower()}"
    return name.rstrip("-")


def label_value(value: str) -> str:
    """A valid label value (63 chars, alphanumerics, ``-_.``, alphanumeric ends) standing for ``value``."""
    clean = _LABEL_VALUE_BAD.sub("-", value).strip("-_.")
    if clean == value and len(value) <= 63:
        return value
    return f"{clean[:54].strip('-_.')}-{_short_hash(value)}".strip("-")


def labels_for(spec: InstanceSpec, name: str) -> dict[str, str]:
    labels = {LABEL_MANAGED: "true", LABEL_SPACE: spec.space_id, LABEL_SHA: spec.sha, LABEL_FLAVOR: spec.flavor}
    labels.update(spec.labels)
    labels[LABEL_INSTANCE] = name
    for key in labels:
        prefix, _, key_name = key.rpartition("/")
        if not _LABEL_KEY_NAME.match(key_name) or len(key_name) > 63 or len(prefix) > 253:
            raise ValueError(f"{key!r} is not a valid Kubernetes label key")
    return {k: label_value(str(v)) for k, v in labels.items()}


def label_selector(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` for ``list`` calls, values made label-safe the same way :func:`labels_for` does."""
    return ",".join(f"{k}={label_value(str(v))}" for k, v in sorted(labels.items()))


def cpu_quantity(cores: float) -> str:
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(mb: int) -> str:
    return f"{int(mb)}Mi"


def _meta(spec: InstanceSpec, name: str, namespace: str, suffix: str = "") -> dict[str, Any]:
    return {"name": name + suffix, "namespace": namespace, "labels": labels_for(spec, name),
            "annotations": {ANNOTATION_REPO: spec.repo_id}}


def build_secret(spec: InstanceSpec, name: str, options: PodOptions = PodOptions()) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": _meta(spec, name, options.namespace, "-env"),
        "stringData": dict(spec.env),
    }


def build_deployment(spec: InstanceSpec, name: str, reservation: Reservation,
                     tolerations: Sequence[Mapping[str, Any]] = (),
                     options: PodOptions = PodOptions()) -> dict[str, Any]:
    """The Deployment running ``spec.artifact.ref`` (an image) with the flavor's requests, limits and pool."""
    requests: dict[str, str] = {"cpu": cpu_quantity(reservation.cpu), "memory": memory_quantity(reservation.memory_mb)}
    limits: dict[str, str] = {"cpu": cpu_quantity(spec.limits.cpu), "memory": memory_quantity(spec.limits.memory_mb)}
    if reservation.gpus:
        # extended resources: requests must equal limits; the device plugin picks the devices, so the
        # scheduler's device indices (spec.limits.gpus) do not apply here and CUDA_VISIBLE_DEVICES is not set
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(reservation.gpus)
    labels = labels_for(spec, name)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.artifact.ref,
        "imagePullPolicy": options.image_pull_policy,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "envFrom": [{"secretRef": {"name": f"{name}-env"}}],
        "resources": {"requests": requests, "limits": limits},
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2, "timeoutSeconds": 1,
                           "failureThreshold": 3, "successThreshold": 1},
        "securityContext": {"allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 10,
    }
    if reservation.node_selector:
        pod_spec["nodeSelector"] = dict(reservation.node_selector)
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    if reservation.gpus and options.gpu_runtime_class:
        pod_spec["runtimeClassName"] = options.gpu_runtime_class
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in options.image_pull_secrets]
    labels = dict(labels)
    _claim_volumes(spec, pod_spec, container, labels)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(spec, name, options.namespace),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {LABEL_INSTANCE: name}},
            "template": {"metadata": {"labels": labels, "annotations": {ANNOTATION_REPO: spec.repo_id}},
                         "spec": pod_spec},
        },
    }


def claim_name(bucket_id: str) -> str:
    return f"bucket-{bucket_id.lower()}"


def build_claim(claim: Claim, options: PodOptions = PodOptions()) -> dict[str, Any]:
    """The PersistentVolumeClaim holding a bucket's files."""
    spec: dict[str, Any] = {"accessModes": [options.claim_access_mode],
                            "resources": {"requests": {"storage": memory_quantity(claim.size_mb)}}}
    if options.storage_class is not None:
        spec["storageClassName"] = options.storage_class
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name(claim.bucket_id), "namespace": options.namespace,
                     "labels": {LABEL_BUCKET: label_value(claim.bucket_id),
                                "app.kubernetes.io/managed-by": "spaces"}},
        "spec": spec,
    }


def _claim_volumes(spec: InstanceSpec, pod_spec: dict[str, Any], container: dict[str, Any],
                   labels: dict[str, str]) -> None:
    """Mount the instance's buckets (``spec.mounts``, each a ``Claim``) into the pod being built."""
    claims = [m for m in spec.mounts if m.claim is not None]
    if not claims:
        return
    volumes, mounts, writes = [], [], []
    for i, m in enumerate(claims):
        volumes.append({"name": f"bucket-{i}", "persistentVolumeClaim": {"claimName": claim_name(m.claim.bucket_id),
                                                                          "readOnly": m.read_only}})
        mount = {"name": f"bucket-{i}", "mountPath": m.target, "readOnly": m.read_only}
        if m.claim.sub_path:
            mount["subPath"] = m.claim.sub_path
        mounts.append(mount)
        if not m.read_only:
            writes.append((mount, m.claim.bucket_id))
    pod_spec["volumes"] = volumes
    container["volumeMounts"] = mounts
    pod_spec["securityContext"] = {"fsGroup": APP_UID, "fsGroupChangePolicy": "OnRootMismatch"}
    if not writes:
        return
    pod_spec["initContainers"] = [{
        "name": "bucket-owner", "image": container["image"], "imagePullPolicy": container["imagePullPolicy"],
        "command": ["chown", f"{APP_UID}:{APP_UID}", *(m["mountPath"] for m, _ in writes)],
        "volumeMounts": [m for m, _ in writes], "resources": container["resources"],
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }]
    terms = []
    for _, bucket_id in writes:
        key = LABEL_WRITES_PREFIX + bucket_id.lower()
        labels[key] = "true"
        terms.append({"labelSelector": {"matchLabels": {key: "true"}}, "topologyKey": "kubernetes.io/hostname"})
    pod_spec["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}


def build_service(spec: InstanceSpec, name: str, options: PodOptions = PodOptions()) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": _meta(spec, name, options.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_INSTANCE: name},
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _peer(labels: tuple[tuple[str, str], ...], namespace: str | None) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(labels)}}
    if namespace is not None:
        peer["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    return peer


#: the namespace's one NetworkPolicy for Space pods
NETWORK_POLICY_NAME = "spaces-space-pods"


def build_network_policy(namespace: str, np: NetworkPolicyOptions) -> dict[str, Any]:
    """The NetworkPolicy selecting every Space pod of ``namespace``.

    Ingress: from the proxy's pods and ``proxy_cidrs`` only (nothing when neither is set). Egress: port 53 to the
    DNS pods and ``dns_cidrs``; anything to 0.0.0.0/0 except ``blocked_cidrs``. A rule's empty ``from``/``to``
    would mean *everyone*, so a rule with no peers is left out instead. Enforcement is the CNI plugin's: the bridge
    plugin ignores these objects (Calico, Cilium, kube-router enforce them).
    """
    sources = [_peer(np.proxy_pod_labels, np.proxy_namespace)] if np.proxy_pod_labels else []
    sources += [{"ipBlock": {"cidr": c}} for c in np.proxy_cidrs]
    resolvers = [_peer(np.dns_pod_labels, np.dns_namespace)] if np.dns_pod_labels else []
    resolvers += [{"ipBlock": {"cidr": c}} for c in np.dns_cidrs]
    egress: list[dict[str, Any]] = []
    if resolvers:
        egress.append({"to": resolvers, "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]})
    internet: dict[str, Any] = {"cidr": "0.0.0.0/0"}
    if np.blocked_cidrs:
        internet["except"] = list(np.blocked_cidrs)
    egress.append({"to": [{"ipBlock": internet}]})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY_NAME, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "spaces"}},
        "spec": {"podSelector": {"matchLabels": {LABEL_MANAGED: "true"}}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": sources}] if sources else [], "egress": egress},
    }


def owner_reference(deployment_name: str, uid: str) -> dict[str, Any]:
    """Makes the Secret and Service go when the Deployment goes (garbage collection), even if we die midway."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name, "uid": uid,
            "blockOwnerDeletion": False, "controller": False}


# -- observation --------------------------------------------------------------------------------------------

_IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}


def _newest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or "", default=None)


def crashed_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The app container's status when it has exited or is crash-looping (its log tail is then worth reading)."""
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state or (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return cs
    return None


def observe(deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]],
            address: tuple[str, int] | None, log_tail: str = "") -> Observed:
    """What an instance is doing, from its Deployment and pods as API dicts (camelCase, as the API returns)."""
    if deployment is None:
        return Observed(Phase.GONE)
    if (deployment.get("spec") or {}).get("replicas", 1) == 0:
        return Observed(Phase.EXITED, message="the deployment was scaled to 0 replicas")
    if ((deployment.get("status") or {}).get("readyReplicas") or 0) >= 1:
        return Observed(Phase.RUNNING, address=address)
    pod = _newest(pods)
    if pod is None:
        return Observed(Phase.STARTING, message="waiting for the pod to be created")
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        why = f"{status.get('reason', '')} {status.get('message', '')}".strip()
        return Observed(Phase.EXITED, message=f"pod failed: {why}")
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in _IMAGE_ERRORS:
            return Observed(Phase.EXITED, message=f"image {cs.get('image')} cannot be pulled: "
                                                  f"{waiting.get('message') or waiting['reason']}")
    cs = crashed_container(pod)
    if cs is not None:
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        reason = term.get("reason") or "Error"
        if reason == "OOMKilled":
            head = "the app used more memory than its flavor allows and was killed (OOMKilled)"
        else:
            head = f"the app exited with code {term.get('exitCode')} ({reason})"
        return Observed(Phase.EXITED, exit_code=term.get("exitCode"), message=f"{head}\n{log_tail}".rstrip())
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return Observed(Phase.STARTING, message=f"waiting for a node: {cond.get('message') or cond.get('reason')}")
    return Observed(Phase.STARTING)
