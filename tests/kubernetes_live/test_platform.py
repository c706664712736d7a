"""The whole platform on the live cluster: ``spaces serve`` with SPACES_RUNTIME__BACKEND=kubernetes.

* A Gradio Space pushed with huggingface_hub is built by the Docker engine (BuildKit, the same builder as the Docker
  backend), pushed to the cluster's registry, run as a Deployment whose pod the node pulls, routed by the proxy to
  its pod IP and called with gradio_client; a code-only push rolls it to the new revision without a failed request;
  deleting the Space removes its Deployment.
* The Space's secret is in a Secret object only; a crashing app is RUNTIME_ERROR with its log tail.
* A Streamlit Space answers over its WebSocket through the proxy from its pod.
* Sleep removes the Deployment (a pod cannot be paused), a visit through the proxy wakes it, and a kill -9 of the
  control plane while the pod runs is followed by an adoption that restarts nothing.
* A bucket mounted at /data is a PersistentVolumeClaim (the cluster's default class: the controller-manager's
  hostPath provisioner here) that keeps what the app wrote across a restart, a sleep and a rebuild; deleting the
  bucket deletes its claim.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))
import platform_kit as kit  # noqa: E402
from harness import kubernetes_backend_env, start_server, wait_until  # noqa: E402

pytest.importorskip("kubernetes.client")
from kubernetes import client  # noqa: E402

GRADIO_CLIENT = textwrap.dedent("""
    import json, sys
    from gradio_client import Client
    repo_id, arg = sys.argv[1:3]
    c = Client(repo_id, verbose=False, download_files=False)
    print(json.dumps({"result": c.predict(arg, api_name="/greet"), "src": c.src}))
""")


class K8sPlatform:
    """``spaces serve`` on the Kubernetes backend, with its own namespace and data dir; can be killed and restarted."""

    def __init__(self, cluster, api) -> None:
        self.core = client.CoreV1Api(api)
        self.ns = f"spaces-e2e-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))
        self.data_dir = Path(tempfile.mkdtemp(prefix="spaces-k8s-e2e-", dir="/var/tmp"))
        self.env = kubernetes_backend_env(cluster.kubeconfig, cluster.registry, self.ns)
        self.server = start_server("sqlite", data_dir=self.data_dir, extra_env=self.env)

    def kill9_and_restart(self) -> None:
        os.kill(self.server.proc.pid, signal.SIGKILL)  # the control plane only, as a crash or OOM kill does
        self.server.proc.wait(10)
        self.server = start_server("sqlite", data_dir=self.data_dir, port=self.server.port, extra_env=self.env)

    def close(self) -> None:
        self.server.stop()
        self.core.delete_namespace(self.ns, propagation_policy="Background")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def k8s_platform(cluster, api):
    p = K8sPlatform(cluster, api)
    try:
        yield p
    finally:
        p.close()


def pod_logs(api, ns: str) -> str:
    core = client.CoreV1Api(api)
    return "\n".join(core.read_namespaced_pod_log(p.metadata.name, ns, tail_lines=40)
                     for p in core.list_namespaced_pod(ns).items)


@pytest.mark.timeout(1200)
def test_a_gradio_space_runs_as_a_pod_behind_the_proxy(k8s_platform, api, cluster) -> None:
    srv, ns = k8s_platform.server, k8s_platform.ns
    apps = client.AppsV1Api(api)
    token = srv.token("kate")
    from huggingface_hub import HfApi

    hf = HfApi(endpoint=srv.url, token=token)
    repo_id = "kate/on-k8s"
    secret = f"s3cret-{uuid.uuid4().hex[:8]}"
    hf.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    hf.add_space_secret(repo_id, "API_KEY", secret)
    hf.upload_folder(folder_path=str(kit.TEMPLATES / "gradio"), repo_id=repo_id, repo_type="space")
    kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=900)

    deployments = apps.list_namespaced_deployment(ns).items
    assert len(deployments) == 1
    image = deployments[0].spec.template.spec.containers[0].image
    assert image.startswith(f"{cluster.registry}/spaces/"), image
    pods = client.CoreV1Api(api).list_namespaced_pod(ns).items
    assert [p.status.container_statuses[0].image_id.split("@")[0] for p in pods] == [image.rsplit(":", 1)[0]]
    # the Space's secret reaches the pod through a Secret object only, never inline in the Deployment
    assert secret not in json.dumps(api.sanitize_for_serialization(deployments[0]))
    secrets = client.CoreV1Api(api).list_namespaced_secret(ns).items
    assert secret in [base64.b64decode(v).decode() for s in secrets for v in (s.data or {}).values()]

    # through the proxy, over the Gradio HTTP API, then with the real gradio_client
    try:
        assert kit.gradio_call(srv, repo_id, "greet", "pod") == ["Hello, pod!"]
    except Exception as exc:
        raise AssertionError(f"{exc}\napp log:\n{pod_logs(api, ns)}\nserver log:\n{srv.log()[-3000:]}") from None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GRADIO_"))}
    env.update(HF_ENDPOINT=srv.url, HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False",
               HF_HOME=os.environ.get("HF_HOME", "/var/tmp"))
    with kit.hosts_entries(f"{kit.subdomain(repo_id)}.localhost"):
        res = subprocess.run([sys.executable, "-c", GRADIO_CLIENT, repo_id, "Kubernetes"], env=env,
                             capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["result"] == "Hello, Kubernetes!"

    # a code-only push rolls the Space to the new revision: the old pod answers until the new one does
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()

    def visit() -> None:
        while not stop.is_set():
            try:
                r = kit.app_get(srv, repo_id, "/config", timeout=30)
                answers.append(r.json()["title"]) if r.status_code == 200 else failures.append(f"{r.status_code}")
            except Exception as exc:  # noqa: BLE001 - every failed request counts
                failures.append(repr(exc))
            time.sleep(0.2)

    visitor = threading.Thread(target=visit, daemon=True)
    visitor.start()
    app = (kit.TEMPLATES / "gradio" / "app.py").read_text().replace('title="Hello"', 'title="Hello again"')
    assert 'title="Hello again"' in app
    hf.upload_file(path_or_fileobj=app.encode(), path_in_repo="app.py", repo_id=repo_id, repo_type="space")
    try:
        wait_until(lambda: answers and answers[-1] == "Hello again", timeout=600, what="the new revision answering")
    finally:
        stop.set()
        visitor.join(35)
    assert not failures, failures
    assert "Hello" in answers  # the old revision answered during the roll
    wait_until(lambda: len(apps.list_namespaced_deployment(ns).items) == 1, timeout=120, what="the old one gone")
    assert kit.gradio_call(srv, repo_id, "greet", "v2") == ["Hello, v2!"]

    hf.delete_repo(repo_id, repo_type="space")
    wait_until(lambda: not apps.list_namespaced_deployment(ns).items, timeout=120, what="the Deployment gone")


@pytest.mark.timeout(1200)
def test_sleep_scales_to_zero_a_visit_wakes_and_a_killed_controller_restarts_nothing(k8s_platform, api) -> None:
    srv, ns = k8s_platform.server, k8s_platform.ns
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    token = srv.token("lena")
    from huggingface_hub import HfApi

    hf = HfApi(endpoint=srv.url, token=token)
    repo_id = "lena/naps"
    hf.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    hf.upload_folder(folder_path=str(kit.TEMPLATES / "gradio"), repo_id=repo_id, repo_type="space")
    kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=900)

    # sleep: no pod can be paused, so the Deployment goes (scale to zero)
    import httpx

    r = httpx.post(f"{srv.url}/api/spaces/{repo_id}/sleep", headers={"authorization": f"Bearer {token}"})
    assert r.status_code < 300, r.text
    kit.wait_stage(hf, repo_id, "SLEEPING", timeout=60)
    wait_until(lambda: not core.list_namespaced_pod(ns).items, timeout=60, what="no pod left asleep")
    assert not apps.list_namespaced_deployment(ns).items

    # a visit through the proxy wakes it: a new Deployment, a pod, the answer
    assert kit.gradio_call(srv, repo_id, "greet", "again", timeout=180) == ["Hello, again!"]
    pods = core.list_namespaced_pod(ns).items
    assert len(pods) == 1
    before = (pods[0].metadata.uid, pods[0].status.container_statuses[0].restart_count)

    # kill -9 of the control plane while the pod runs: the next one adopts it and restarts nothing
    k8s_platform.kill9_and_restart()
    srv = k8s_platform.server
    kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=120)
    assert kit.gradio_call(srv, repo_id, "greet", "back") == ["Hello, back!"]
    pods = core.list_namespaced_pod(ns).items
    assert [(p.metadata.uid, p.status.container_statuses[0].restart_count) for p in pods] == [before]
    hf.delete_repo(repo_id, repo_type="space")


@pytest.mark.timeout(1200)
def test_a_streamlit_space_answers_over_its_websocket_from_a_pod(k8s_platform, api) -> None:
    import asyncio

    from huggingface_hub import HfApi
    from test_platform_builder import streamlit_session  # tests/platform: the browser's side of the WebSocket

    srv, ns = k8s_platform.server, k8s_platform.ns
    hf = HfApi(endpoint=srv.url, token=srv.token("sam"))
    repo_id = "sam/stream-k8s"
    hf.create_repo(repo_id, repo_type="space", space_sdk="streamlit")
    hf.upload_folder(folder_path=str(kit.TEMPLATES / "streamlit"), repo_id=repo_id, repo_type="space")
    kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=900)
    assert [p.status.pod_ip for p in client.CoreV1Api(api).list_namespaced_pod(ns).items]
    assert kit.app_get(srv, repo_id, "/_stcore/health").text == "ok"
    texts = asyncio.run(streamlit_session(srv.port, kit.app_host(srv, repo_id)))
    assert "Hello from Streamlit" in texts and "The sum of the first 5 squares is 30." in texts, texts
    hf.delete_repo(repo_id, repo_type="space")


@pytest.mark.timeout(1200)
def test_a_crashing_space_is_a_runtime_error_with_its_log_tail(k8s_platform) -> None:
    from huggingface_hub import HfApi

    srv, ns = k8s_platform.server, k8s_platform.ns
    hf = HfApi(endpoint=srv.url, token=srv.token("cora"))
    repo_id = "cora/crashy"
    token = f"boom-{uuid.uuid4().hex[:8]}"
    hf.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    kit.upload(hf, repo_id, kit.space_files(**{"README.md": kit.readme("gradio"),
                                               "app.py": kit.app_source("crash.py", TOKEN=token)}), "crash")
    rt = kit.wait_stage(hf, repo_id, "RUNTIME_ERROR", timeout=900)
    message = rt.raw["message"]
    assert f"RuntimeError: {token}: this app fails on purpose at import" in message, message
    assert "crash-app: starting" in message  # the pod's log tail, read through the apiserver
    r = kit.app_get(srv, repo_id, "/")
    assert r.status_code == 503 and r.json()["stage"] == "RUNTIME_ERROR", r.text[:300]
    hf.delete_repo(repo_id, repo_type="space")


def store_app(mark: str) -> dict[str, bytes]:
    """tests/platform/apps/store.py: counts its starts in /data/starts."""
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": kit.app_source("store.py", MARK=mark)})


def starts_now(srv, repo_id: str) -> int | None:  # noqa: ANN001
    try:
        return int(kit.gradio_call(srv, repo_id, "starts", "")[0])
    except Exception:  # noqa: BLE001 - an instance swapping for another: look again
        return None


@pytest.mark.timeout(1500)
def test_a_bucket_is_a_claim_that_keeps_what_the_app_wrote(k8s_platform, api) -> None:
    from huggingface_hub import HfApi, Volume
    from kubernetes.utils import parse_quantity

    srv, ns = k8s_platform.server, k8s_platform.ns
    core = client.CoreV1Api(api)
    hf = HfApi(endpoint=srv.url, token=srv.token("nora"))
    bucket, repo_id = "nora/data", "nora/keeps"
    hf.create_bucket(bucket)
    hf.create_repo(repo_id, repo_type="space", space_sdk="gradio",
                   space_volumes=[Volume(type="bucket", source=bucket, mount_path="/data")])
    kit.upload(hf, repo_id, store_app("v1"), "first version")
    kit.wait_stage(hf, repo_id, kit.RUNNING, timeout=900)
    try:
        assert starts_now(srv, repo_id) == 1
    except AssertionError:
        raise AssertionError(f"app log:\n{pod_logs(api, ns)}\nserver log:\n{srv.log()[-3000:]}") from None

    (claim,) = core.list_namespaced_persistent_volume_claim(ns, label_selector="spaces.bucket").items
    assert claim.status.phase == "Bound" and claim.spec.storage_class_name == "standard"
    # the bucket's size (StorageSettings.bucket_mb), as the API canonicalises it
    assert parse_quantity(claim.spec.resources.requests["storage"]) == 20480 * 2**20
    (pod,) = core.list_namespaced_pod(ns).items
    assert [v.persistent_volume_claim.claim_name for v in pod.spec.volumes] == [claim.metadata.name]

    # a restart: a new pod, the same claim
    hf.restart_space(repo_id)
    kit.wait_for(lambda: starts_now(srv, repo_id) == 2, timeout=300, what="the restarted app counts its second start")

    # asleep: no pod (Kubernetes cannot pause one); a visit wakes a new one on the same claim
    import httpx

    r = httpx.post(f"{srv.url}/api/spaces/{repo_id}/sleep", headers={"authorization": f"Bearer {hf.token}"})
    assert r.status_code < 300, r.text
    kit.wait_stage(hf, repo_id, "SLEEPING", timeout=60)
    wait_until(lambda: not core.list_namespaced_pod(ns).items, timeout=120, what="no pod left asleep")
    kit.wait_for(lambda: starts_now(srv, repo_id) == 3, timeout=300, what="the woken app counts its third start")

    # a push that rebuilds: a new image and revision, the same files
    kit.upload(hf, repo_id, store_app("v2"), "second version")
    kit.wait_for(lambda: starts_now(srv, repo_id) == 4, timeout=900, what="the new revision counts its start")
    assert kit.gradio_call(srv, repo_id, "read", "/data/starts")[0] == "OK 4"

    # the bucket outlives the Space; deleting the bucket deletes its claim (the leader's backstop sweep)
    hf.delete_repo(repo_id, repo_type="space")
    assert core.list_namespaced_persistent_volume_claim(ns, label_selector="spaces.bucket").items
    hf.delete_bucket(bucket)
    wait_until(lambda: not core.list_namespaced_persistent_volume_claim(ns, label_selector="spaces.bucket").items,
               timeout=240, what="the deleted bucket's claim gone")
