"""Limits that fit the machine (issue 20, row 6): a flavor's CPU and memory limits are clamped to what the node
leaves one Space, the Space's run log says so, the cgroup really holds it there, and a Space that allocates past
its limit is killed while the host (the server, its other Spaces) carries on.

Live: a real ``spaces serve`` with a real Gradio Space (run under ``flock /tmp/spaces-live.lock``). The node's
reserve is set so that cpu-basic's 16 GiB is clamped to 400 MiB: the clamp is what is under test, and an
allocation past 400 MiB is cheap to try on a shared test machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tenancy_kit as tk
from harness import make_actor

from spaces.runtime.nodes import detect_local_node

kit = tk.kit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root")
LIMIT_MB = 400


@pytest.fixture(scope="module")
def platform() -> Iterator[kit.Platform]:
    base = kit.new_base("spaces-tenancy-limits-")
    node = detect_local_node()
    p = tk.start_default_platform(base, "data", SPACES_NODES__RESERVED_MEMORY_MB=str(node.memory_mb - LIMIT_MB),
                                  SPACES_NODES__RESERVED_CPU="0.5")
    yield p
    p.stop()
    shutil.rmtree(base, ignore_errors=True)


def memory_group(p: kit.Platform, instance: str = "") -> Path:
    return Path("/sys/fs/cgroup/memory") / p.cgroup_root / instance


def test_a_space_is_held_to_the_clamped_limit_and_killed_past_it(platform: kit.Platform) -> None:
    alice = make_actor(platform.server, "alice")
    sid, instance = kit.running_space(platform, alice, "alice/glutton", tk.probe_files("glutton"))
    node = detect_local_node()
    cpu = max(0.1, node.cpu - 0.5)

    # the run log says why the limits are not the flavor's, and the app sees the limits it really has
    run_log = kit.logs(alice.api, "alice/glutton", build=False)
    assert f"this Space's limits are {cpu:g} CPUs and {LIMIT_MB} MiB" in run_log, run_log
    assert f"MEMORY={LIMIT_MB}Mi CPU_CORES={cpu:g}" in run_log, run_log

    # the cgroup holds it there (cgroup v1 here; v2 hosts have memory.max)
    group = memory_group(platform, instance["instance"])
    if group.is_dir():
        assert int((group / "memory.limit_in_bytes").read_text()) == LIMIT_MB << 20
        assert int((memory_group(platform) / "memory.limit_in_bytes").read_text()) == LIMIT_MB << 20  # all Spaces
        cpu_group = Path("/sys/fs/cgroup/cpu") / platform.cgroup_root / instance["instance"]
        assert int((cpu_group / "cpu.cfs_quota_us").read_text()) == int(cpu * 100_000)
    else:
        v2 = Path("/sys/fs/cgroup") / platform.cgroup_root / instance["instance"]
        assert int((v2 / "memory.max").read_text()) == LIMIT_MB << 20

    # under its limit it works; past it, it is killed and the Space says why
    assert tk.attack(platform, "alice/glutton", op="eat", mb=64) == "OK ate 64 MiB"
    try:  # the app dies in the middle of the call: the call fails, it never answers OK
        got = tk.attack(platform, "alice/glutton", op="eat", mb=3 * LIMIT_MB)
    except Exception as e:  # noqa: BLE001
        got = f"the call failed: {e!r}"
    assert not got.startswith("OK"), got
    runtime = kit.wait_stage(alice.api, "alice/glutton", "RUNTIME_ERROR", timeout=60)
    assert "went over its memory limit" in (runtime.raw.get("message") or ""), runtime.raw
    # the instance's own log file (the stored run log starts anew with the restart)
    text = "".join(path.read_text(errors="replace") for path in kit.instance_logs(platform, sid))
    ate = [int(line.split()[1]) for line in text.splitlines() if line.startswith("ate ")]
    assert ate and max(ate) <= LIMIT_MB, ate  # it never got past its limit

    # the host is unharmed: the server answers, and the Space is restarted after its back-off
    assert platform.server.alive()
    assert httpx.get(f"{platform.url}/api/health", timeout=10).status_code == 200
    kit.wait_stage(alice.api, "alice/glutton", "RUNNING", timeout=120)
    assert tk.attack(platform, "alice/glutton", op="eat", mb=32) == "OK ate 32 MiB"
    assert sid
