"""Deployment + pod status (API dicts) -> Observed (spaces.runtime.k8s_objects.observe), table-driven.

The status shapes are the ones the API server returns (camelCase, as ``sanitize_for_serialization`` gives them).
"""

from __future__ import annotations

import pytest

from spaces.runtime.contracts import Observed, Phase
from spaces.runtime.k8s_objects import crashed_container, observe

ADDR = ("space-x-0123456789.spaces.svc", 7860)


def dep(ready: int = 0, replicas: int = 1) -> dict:
    status = {"readyReplicas": ready} if ready else {}
    return {"metadata": {"name": "space-x"}, "spec": {"replicas": replicas}, "status": status}


def pod(phase: str = "Pending", created: str = "2026-01-01T00:00:00Z", conditions=(), **container_state) -> dict:
    status: dict = {"phase": phase, "conditions": list(conditions)}
    if container_state:
        status["containerStatuses"] = [{"name": "app", "image": "reg/demo:1", "ready": False, "restartCount": 1,
                                        **container_state}]
    return {"metadata": {"name": f"p-{created}", "creationTimestamp": created}, "status": status}


CRASH = {"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
         "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
OOM = {"state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}

TABLE = [
    ("deployment gone", None, [], Observed(Phase.GONE)),
    ("ready replica", dep(ready=1), [pod("Running")], Observed(Phase.RUNNING, address=ADDR)),
    ("no pod yet", dep(), [], Observed(Phase.STARTING, message="waiting for the pod to be created")),
    ("container creating", dep(), [pod("Pending", state={"waiting": {"reason": "ContainerCreating"}})],
     Observed(Phase.STARTING)),
    ("running, port not answering yet", dep(), [pod("Running", state={"running": {}})], Observed(Phase.STARTING)),
    ("no node fits", dep(), [pod(conditions=[UNSCHEDULABLE])],
     Observed(Phase.STARTING, message="waiting for a node: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")),
    ("crash loop", dep(), [pod("Running", **CRASH)],
     Observed(Phase.EXITED, exit_code=1, message="the app exited with code 1 (Error)\nTraceback: boom")),
    ("out of memory", dep(), [pod("Running", **OOM)],
     Observed(Phase.EXITED, exit_code=137,
              message="the app used more memory than its flavor allows and was killed (OOMKilled)\nTraceback: boom")),
    ("image cannot be pulled", dep(), [pod(state={"waiting": {"reason": "ImagePullBackOff",
                                                              "message": "Back-off pulling image"}})],
     Observed(Phase.EXITED, message="image reg/demo:1 cannot be pulled: Back-off pulling image")),
    ("evicted", dep(), [{"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                         "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}}],
     Observed(Phase.EXITED, message="pod failed: Evicted low on memory")),
    ("newest pod decides", dep(), [pod("Running", created="2026-01-01T00:00:00Z", **CRASH),
                                   pod("Pending", created="2026-01-01T00:05:00Z", state={"waiting": {}})],
     Observed(Phase.STARTING)),
    ("scaled to zero by someone", dep(replicas=0), [], Observed(Phase.EXITED,
                                                                message="the deployment was scaled to 0 replicas")),
]


@pytest.mark.parametrize("case,deployment,pods,expected", TABLE, ids=[t[0] for t in TABLE])
def test_observe(case, deployment, pods, expected) -> None:
    assert observe(deployment, pods, ADDR, log_tail="Traceback: boom") == expected


def test_log_tail_is_only_wanted_for_crashes() -> None:
    assert crashed_container(pod("Running", **CRASH)) is not None
    assert crashed_container(pod("Running", **OOM)) is not None
    assert crashed_container(pod("Running", state={"running": {}})) is None
