"""The Kubernetes backend class (spaces.runtime.backends.kubernetes).

* Always: what it decides before talking to a cluster (configuration errors, refusing non-image artifacts,
  freeze unsupported).
* Against a live cluster, only when a kubeconfig is present (``KUBECONFIG`` or ``~/.kube/config``): start a real
  Space image, see it RUNNING, list it by label, read its log, stop it (twice: already gone is success).
  ``SPACES_K8S_TEST_IMAGE`` / ``SPACES_K8S_TEST_PORT`` pick the image (default an unprivileged nginx on 8080),
  ``SPACES_K8S_TEST_NAMESPACE`` the namespace (default ``default``).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from spaces.builder.plan import Artifact
from spaces.errors import SpacesError
from spaces.runtime.contracts import LABEL_MANAGED, LABEL_SPACE, Handle, InstanceSpec, Phase, StartFailed
from spaces.runtime.flavors import FlavorCatalog

pytest.importorskip("kubernetes.client")
from kubernetes import client  # noqa: E402

from spaces.runtime.backends.kubernetes import KubernetesBackend, KubernetesSettings  # noqa: E402

CAT = FlavorCatalog()


def spec(kind: str = "image", ref: str = "nginxinc/nginx-unprivileged:1.27-alpine", port: int = 8080,
         space_id: str | None = None) -> InstanceSpec:
    sha = uuid.uuid4().hex + "00000000"
    return InstanceSpec(
        space_id=space_id or uuid.uuid4().hex[:24], repo_id="test/k8s", sha=sha, sdk="docker",
        artifact=Artifact(kind, ref, "d", sha), workdir="/unused", app_file=None, port=port,
        env={"SPACE_ID": "test/k8s", "SECRET_TOKEN": "s3cret"}, limits=CAT.get("cpu-basic").limits,
        labels={LABEL_MANAGED: "true"},
    )


def offline_backend() -> KubernetesBackend:
    # an API client aimed at a closed port: nothing here may reach it
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"
    return KubernetesBackend(KubernetesSettings(), api_client=client.ApiClient(cfg))


def test_unusable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpacesError, match="Cannot use the Kubernetes cluster") as info:
        KubernetesBackend(KubernetesSettings(kubeconfig=str(tmp_path / "missing"), in_cluster=False))
    assert info.value.code == "KubernetesUnavailable" and info.value.status == 503


def test_only_images_run_on_kubernetes() -> None:
    with pytest.raises(StartFailed, match="runs images; this build produced a venv"):
        offline_backend().start(spec("venv", "/srv/venvs/x"))


def test_freeze_is_not_supported() -> None:
    backend = offline_backend()
    with pytest.raises(NotImplementedError, match="stops it"):
        backend.freeze(Handle("kubernetes", "space-x", "kubernetes"))
    with pytest.raises(NotImplementedError):
        backend.thaw(Handle("kubernetes", "space-x", "kubernetes"))


# -- live cluster -------------------------------------------------------------------------------------------


def _kubeconfig() -> str | None:
    path = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return path if Path(path.split(os.pathsep)[0]).is_file() else None


live = pytest.mark.skipif(_kubeconfig() is None,
                          reason="no kubeconfig (KUBECONFIG or ~/.kube/config): no cluster to test against")


@live
def test_live_cluster_start_poll_list_logs_stop() -> None:
    ns = os.environ.get("SPACES_K8S_TEST_NAMESPACE", "default")
    backend = KubernetesBackend(KubernetesSettings(namespace=ns, address="pod", kubeconfig=_kubeconfig()))
    s = spec(ref=os.environ.get("SPACES_K8S_TEST_IMAGE", "nginxinc/nginx-unprivileged:1.27-alpine"),
             port=int(os.environ.get("SPACES_K8S_TEST_PORT", "8080")))
    handle = backend.start(s)
    try:
        assert backend.start(s).ref == handle.ref  # starting the same revision again adopts it
        deadline = time.monotonic() + 300
        observed = backend.poll(handle)
        while observed.phase is Phase.STARTING and time.monotonic() < deadline:
            time.sleep(2)
            observed = backend.poll(handle)
        assert observed.phase is Phase.RUNNING, observed.message
        assert observed.address and observed.address[1] == s.port
        assert [h.ref for h in backend.list({LABEL_SPACE: s.space_id})] == [handle.ref]
        # the secret reached the app through the Secret object, not inline
        deployment = backend.apps.read_namespaced_deployment(handle.ref, ns)
        assert "s3cret" not in str(backend._dict(deployment))
        assert isinstance(list(backend.logs(handle)), list)
    finally:
        backend.stop(handle)
        backend.stop(handle)  # already gone is success
    deadline = time.monotonic() + 120
    while backend.poll(handle).phase is not Phase.GONE and time.monotonic() < deadline:
        time.sleep(1)
    assert backend.poll(handle).phase is Phase.GONE


def test_crash_log_tail_reads_the_newest_instance_and_skips_the_kubelets_placeholder() -> None:
    # what a real kubelet 1.36 answered (tests/kubernetes_live): the crashed instance is the newest one while it
    # waits in CrashLoopBackOff; `previous` names one the kubelet already removed and streams a placeholder line
    backend = offline_backend()
    answers = {False: "boom: no model file\n", True: "unable to retrieve container logs for containerd://abc"}
    backend.core.read_namespaced_pod_log = lambda pod, ns, container, previous, tail_lines: answers[previous]
    assert backend._log_tail("p", "ns") == "boom: no model file\n"
    answers = {False: "", True: "unable to retrieve container logs for containerd://abc"}
    assert backend._log_tail("p", "ns") == ""
    answers = {False: "", True: "the previous instance's last words\n"}  # restarted, newest silent so far
    assert backend._log_tail("p", "ns") == "the previous instance's last words\n"


def test_network_policy_settings_reach_the_objects(monkeypatch) -> None:
    from spaces.settings import Settings

    monkeypatch.setenv("SPACES_KUBERNETES__NETWORK_POLICY__PROXY_CIDRS", '["10.231.0.1/32"]')
    monkeypatch.setenv("SPACES_KUBERNETES__NETWORK_POLICY__PROXY_POD_LABELS", '{"app.kubernetes.io/instance": "sp"}')
    monkeypatch.setenv("SPACES_KUBERNETES__NETWORK_POLICY__PROXY_NAMESPACE", "platform")
    settings = Settings().kubernetes
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"
    np = KubernetesBackend(settings, api_client=client.ApiClient(cfg)).options.network_policy
    assert np.proxy_cidrs == ("10.231.0.1/32",) and np.proxy_namespace == "platform"
    assert np.proxy_pod_labels == (("app.kubernetes.io/instance", "sp"),)
    assert np.blocked_cidrs == ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
    off = KubernetesSettings(network_policy={"enabled": False})
    assert KubernetesBackend(off, api_client=client.ApiClient(cfg)).options.network_policy is None
