"""A real single-node cluster for these tests: ``infra/kubernetes/cluster`` (official binaries built from source).

How the cluster is found or made, once per session:

* ``SPACES_K8S_LIVE`` set by ``scripts/test``: ``up`` (it brought the cluster up before pytest), ``failed: why``
  (``up`` failed there: every test here fails with that reason, so a broken cluster set-up shows as failures, never
  as quiet skips), ``unavailable: why`` (this machine cannot run it at all: not root, no Go 1.26, ...: skipped
  with that reason) or ``off`` (``SPACES_K8S_LIVE=off`` asked for no cluster: skipped, saying so).
* not set (plain ``pytest tests/kubernetes_live``): ``cluster status``; when not up, ``cluster check`` then
  ``cluster up`` here (a cold build takes 10-40 minutes on two cores, a warm start seconds).

The tests push images they build with the host's Docker engine to the cluster's registry (``127.0.0.1:5123``), as
the builder does, and the node pulls them from there.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "infra" / "kubernetes" / "cluster"
UP_TIMEOUT_S = int(os.environ.get("SPACES_K8S_TEST_UP_TIMEOUT_S", "3600"))


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    registry: str  # host:port the host pushes to and the node pulls from
    node: str
    kubectl: str


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout)


def _why(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return " | ".join(lines[-6:]) or f"exit status {proc.returncode}"


def _bring_up() -> tuple[str, str]:
    """("up", "") | ("skip", why) | ("fail", why)."""
    state = os.environ.get("SPACES_K8S_LIVE", "").strip()
    if state == "up":
        return "up", ""
    if state.startswith("failed"):
        return "fail", f"the cluster could not be brought up by scripts/test: {state}"
    if state.startswith("unavailable") or state == "off":
        return "skip", f"no live cluster on this machine: {state}"
    if _run("status", timeout=60).returncode == 0:
        return "up", ""
    check = _run("check", timeout=60)
    if check.returncode != 0:
        return "skip", f"no live cluster on this machine: {_why(check)}"
    try:
        up = _run("up", timeout=UP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "fail", f"`cluster up` did not finish within {UP_TIMEOUT_S} s"
    if up.returncode != 0:
        return "fail", f"`cluster up` failed: {_why(up)}"
    return "up", ""


_OUTCOME: list[tuple[str, str]] = []


def pytest_collection_modifyitems(session, config, items) -> None:
    # here, not in a fixture: a cold build takes longer than the per-test timeout that fixtures run under
    here = Path(__file__).parent
    if not _OUTCOME and any(Path(str(item.fspath)).parent == here for item in items):
        _OUTCOME.append(_bring_up())


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    outcome, why = _OUTCOME[0] if _OUTCOME else _bring_up()
    if outcome == "fail":
        pytest.fail(why, pytrace=False)
    if outcome == "skip":
        pytest.skip(why)
    env = dict(line.split("=", 1) for line in _run("env", timeout=30).stdout.splitlines() if "=" in line)
    return Cluster(env["KUBECONFIG"], env["SPACES_K8S_REGISTRY"], env["SPACES_K8S_NODE"], env["SPACES_K8S_KUBECTL"])


@pytest.fixture(scope="session")
def api(cluster: Cluster):
    from kubernetes import config

    return config.new_client_from_config(config_file=cluster.kubeconfig)


@pytest.fixture
def namespace(api) -> Iterator[str]:
    """A namespace of its own per test, deleted afterwards (with everything in it)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"live-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        # pods are refused until the controller-manager has made the namespace's default service account
        deadline = time.monotonic() + 60
        while not core.list_namespaced_service_account(name).items and time.monotonic() < deadline:
            time.sleep(0.2)
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
