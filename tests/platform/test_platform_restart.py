"""The control plane dies (SIGKILL) and comes back: running Spaces are re-adopted untouched, builds resume; and
the second sleep tier (stop) wakes with exactly one start.

A platform of its own for this module (it gets killed), configured to be always short of memory
(``min_available_memory=1.0``) so that a Space put to sleep is frozen and then, long before ``stop_frozen_after``,
stopped (the second tier, reached through memory pressure). It shares the session's environments dir: no rebuild.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Server
from huggingface_hub import HfApi

import platform_kit as kit


class Who:
    def __init__(self, server: Server, name: str) -> None:
        self.name = name
        self.token = server.token(name)
        self.api = HfApi(endpoint=server.url, token=self.token)
        self.url = server.url

    def http(self):  # noqa: ANN201
        import httpx

        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.token}"}, timeout=30)


@pytest.fixture(scope="module")
def crashy(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    # ``platform`` first: the session's gradio environment exists (or is built there) before this one starts
    with kit.running_platform(platform_base, f"crashy-{secrets.token_hex(3)}", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "1.0"}) as p:
        yield p


@pytest.fixture(scope="module")
def carl(crashy: kit.Platform) -> Who:
    return Who(crashy.server, "carl")


def test_kill9_of_the_control_plane_restarts_nothing_and_leaves_no_orphan(crashy, carl) -> None:  # noqa: ANN001
    repos = [f"carl/app{i}" for i in range(3)]
    for i, repo_id in enumerate(repos):
        kit.create_space(carl.api, repo_id, kit.space_files(**{"README.md": kit.readme("gradio"),
                                                               "app.py": kit.app_source("greet.py", MARK=f"k{i}")}))
    for repo_id in repos:
        kit.wait_stage(carl.api, repo_id, kit.RUNNING)
    ids = {repo_id: kit.space_id(carl, repo_id) for repo_id in repos}
    before = {r: kit.instance_of(crashy, ids[r]) for r in repos}
    procs_before = crashy.space_processes()
    assert {s["pid"] for s in before.values()} <= set(procs_before), procs_before

    crashy.kill9()
    # the apps live on without their control plane
    assert set(crashy.space_processes()) == set(procs_before)
    server = crashy.restart()

    for i, repo_id in enumerate(repos):
        kit.wait_stage(carl.api, repo_id, kit.RUNNING)
        assert kit.gradio_call(server, repo_id, "predict", "back") == [f"k{i}: Hello, back!"]
    after = {r: kit.instance_of(crashy, ids[r]) for r in repos}
    for r in repos:  # the same processes: nothing healthy was restarted
        assert (after[r]["pid"], after[r]["starttime"]) == (before[r]["pid"], before[r]["starttime"]), r
    assert set(crashy.space_processes()) == set(procs_before)  # no orphan, no duplicate, by uid
    # the dead control plane's helpers (zygotes) are gone too: whatever root process still names this data dir
    # belongs to the new server
    kit.wait_for(lambda: not _strays(crashy, server), timeout=20, what="the old control plane's zygotes to exit")
    for repo_id in repos:
        carl.api.delete_repo(repo_id, repo_type="space")


def _strays(platform: kit.Platform, server: Server) -> list[str]:
    strays = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server.proc.pid:
            continue
        try:
            if entry.stat().st_uid != 0:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("PPid:")))
        if str(platform.data_dir) in cmd and ppid != server.proc.pid:
            strays.append(f"{entry.name} (ppid {ppid}): {cmd[:200]}")
    return strays


def test_a_build_interrupted_by_a_restart_ends_running(crashy, carl) -> None:  # noqa: ANN001
    repo_id = f"carl/interrupted-{secrets.token_hex(3)}"
    # new requirements: a real environment build, long enough to be interrupted
    files = kit.space_files("gradio", **{"requirements.txt": f"six\n# {secrets.token_hex(6)}\n",
                                         "app.py": kit.app_source("greet.py", MARK="resumed")})
    kit.create_space(carl.api, repo_id, files)
    kit.wait_for(lambda: "\ninstalling " in "\n" + kit.logs(carl.api, repo_id, build=True) or
                 carl.api.get_space_runtime(repo_id).stage != "BUILDING", timeout=120, what="the install to start")
    assert carl.api.get_space_runtime(repo_id).stage == "BUILDING"
    crashy.kill9()
    server = crashy.restart()
    kit.wait_stage(carl.api, repo_id, kit.RUNNING, timeout=300)
    assert kit.gradio_call(server, repo_id, "predict", "r") == ["resumed: Hello, r!"]
    log = kit.logs(carl.api, repo_id, build=True)
    assert "\nbuilt " in "\n" + log and "failed" not in log.lower(), log[-2000:]
    carl.api.delete_repo(repo_id, repo_type="space")


def test_wake_storm_from_the_stopped_tier_starts_one_instance(crashy, carl) -> None:  # noqa: ANN001
    repo_id = f"carl/storm-{secrets.token_hex(3)}"
    space_id, before = kit.running_greeter(crashy, carl, repo_id, "stopped")
    logs_before = kit.instance_logs(crashy, space_id)
    crashy.server.cli("sleep", repo_id, "--port", str(crashy.port))
    kit.wait_stage(carl.api, repo_id, "SLEEPING", timeout=30)
    # second tier, under memory pressure: the process is stopped, its instance record gone
    kit.wait_for(lambda: not [s for s in kit.instance_states(crashy) if s.get("space_id") == space_id],
                 timeout=30, what="the sleeping Space's process to be stopped")
    assert before["pid"] not in crashy.space_processes()

    statuses = asyncio.run(kit.storm(crashy.port, kit.app_host(crashy.server, repo_id), 100))
    assert statuses == {200: 100}, statuses
    after = kit.instance_of(crashy, space_id)
    assert after["pid"] != before["pid"]
    new_logs = [p for p in kit.instance_logs(crashy, space_id) if p not in logs_before]
    assert len(new_logs) == 1, f"expected exactly one start, got {len(new_logs)}: {new_logs}"
    carl.api.delete_repo(repo_id, repo_type="space")
