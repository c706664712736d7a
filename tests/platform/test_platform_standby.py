"""Standbys, for real: a Streamlit Space stopped after its long sleep leaves a fresh server frozen in its sandbox,
which runs none of the app's code, holds no capacity, and is what the next visitor wakes; a Gradio Space (whose
app code runs at start) is stopped as before; memory pressure that lasts stops the standby too.

Two platforms of this module's own: ``dozy``, whose long sleep is no time at all (``stop_frozen_after=0``) and
which never counts itself short of memory (``min_available_memory=0``), and ``squeezed``, always short of memory
(``min_available_memory=1.0``). They share the session's environments dir: no rebuild when the session has built
them already.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_platform_builder import streamlit_session
from test_platform_restart import Who

import platform_kit as kit
from spaces.runtime.cgroups import Cgroups

APP = """import streamlit as st

print("the script ran", flush=True)
st.write("MARK from the script")
"""


@pytest.fixture(scope="module")
def dozy(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    with kit.running_platform(platform_base, f"dozy-{secrets.token_hex(3)}", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_RUNTIME__STOP_FROZEN_AFTER": "0",
                                         "SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "0"}) as p:
        yield p


@pytest.fixture(scope="module")
def dora(dozy: kit.Platform) -> Who:
    return Who(dozy.server, "dora")


@pytest.fixture(scope="module")
def squeezed(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    with kit.running_platform(platform_base, f"squeezed-{secrets.token_hex(3)}", envs_dir=platform_base / "envs",
                              extra_env={"SPACES_RUNTIME__MIN_AVAILABLE_MEMORY": "1.0"}) as p:
        yield p


def ours(platform: kit.Platform, space_id: str) -> list[dict]:
    return [s for s in kit.instance_states(platform) if s.get("space_id") == space_id]


def holding_capacity(platform: kit.Platform, admin: str) -> int:
    """How many Spaces hold capacity on the platform's nodes (the admin API's node report)."""
    with httpx.Client(base_url=platform.url, headers={"authorization": f"Bearer {admin}"}, timeout=30) as c:
        r = c.get("/api/admin/nodes")
        r.raise_for_status()
        return sum(n["used"]["spaces"] for n in r.json()["nodes"])


def test_a_streamlit_space_asleep_a_long_time_wakes_from_a_frozen_standby_that_ran_nothing_of_its_own(
        dozy: kit.Platform, dora: Who) -> None:
    dozy.server.user("root-dozy", admin=True)
    admin = dozy.server.token("root-dozy")
    repo_id = f"dora/standby-{secrets.token_hex(3)}"
    space_id, first = kit.running_space(dozy, dora, repo_id, kit.space_files("streamlit", **{"app.py": APP}),
                                        "streamlit")
    host = kit.app_host(dozy.server, repo_id)
    assert "MARK from the script" in asyncio.run(streamlit_session(dozy.port, host))
    assert Path(first["log"]).read_text().count("the script ran") == 1
    assert holding_capacity(dozy, admin) == 1

    dozy.server.cli("sleep", repo_id, "--port", str(dozy.port))
    groups = Cgroups(dozy.cgroup_root)
    # frozen, stopped after its (zero) long sleep, then a standby started and frozen once it listened
    standby = kit.wait_for(lambda: next((s for s in ours(dozy, space_id) if s["pid"] != first["pid"]
                                         and groups.frozen(s["instance"])), None),
                           timeout=60, what="a frozen standby in place of the stopped instance")
    assert [s["instance"] for s in ours(dozy, space_id)] == [standby["instance"]]
    assert first["pid"] not in dozy.space_processes() and standby["pid"] in dozy.space_processes()
    assert standby["via"] == "zygote" and standby["uid"] == first["uid"]
    assert kit.runtime(dora.api, repo_id).stage == "SLEEPING"
    assert holding_capacity(dozy, admin) == 0  # asleep: its standby holds no node capacity
    assert "the script ran" not in Path(standby["log"]).read_text()  # a fresh server: no session, no app code

    statuses = asyncio.run(kit.storm(dozy.port, host, 20, path="/"))
    assert statuses == {200: 20}, statuses
    assert [s["instance"] for s in ours(dozy, space_id)] == [standby["instance"]]  # thawed, not started anew
    assert not groups.frozen(standby["instance"])
    assert len(kit.instance_logs(dozy, space_id)) == 2  # the first instance and the standby: no other start
    assert kit.runtime(dora.api, repo_id).stage == "RUNNING"
    assert holding_capacity(dozy, admin) == 1  # woken: it claimed its capacity as any start does
    assert "MARK from the script" in asyncio.run(streamlit_session(dozy.port, host))
    assert Path(standby["log"]).read_text().count("the script ran") == 1

    dozy.server.cli("sleep", repo_id, "--port", str(dozy.port))  # asleep again: the next standby
    kit.wait_for(lambda: [s["pid"] for s in ours(dozy, space_id) if groups.frozen(s["instance"])]
                 not in ([], [standby["pid"]]), timeout=60, what="a new frozen standby")
    dora.api.delete_repo(repo_id, repo_type="space")
    kit.wait_for(lambda: not ours(dozy, space_id), timeout=30, what="the deleted Space's standby to stop")


def test_a_gradio_space_asleep_a_long_time_is_stopped_and_leaves_no_standby(dozy: kit.Platform, dora: Who) -> None:
    repo_id = f"dora/gradio-{secrets.token_hex(3)}"
    space_id, first = kit.running_greeter(dozy, dora, repo_id, "dozy")
    dozy.server.cli("sleep", repo_id, "--port", str(dozy.port))
    kit.wait_for(lambda: not ours(dozy, space_id), timeout=60, what="the sleeping Space's process to be stopped")
    assert kit.runtime(dora.api, repo_id).stage == "SLEEPING"
    kit.wait_for(lambda: first["pid"] not in dozy.space_processes(), timeout=30, what="its process to end")
    assert not ours(dozy, space_id)  # still nothing after it was stopped: no standby came
    assert kit.app_get(dozy.server, repo_id, "/config").status_code == 200  # a wake starts it anew
    assert ours(dozy, space_id)[0]["pid"] != first["pid"]
    dora.api.delete_repo(repo_id, repo_type="space")


def test_memory_pressure_that_lasts_stops_a_streamlit_space_and_then_its_standby(squeezed: kit.Platform) -> None:
    sam = Who(squeezed.server, "sam")
    repo_id = f"sam/squeezed-{secrets.token_hex(3)}"
    space_id, first = kit.running_space(squeezed, sam, repo_id, kit.space_files("streamlit", **{"app.py": APP}),
                                        "streamlit")
    host = kit.app_host(squeezed.server, repo_id)
    squeezed.server.cli("sleep", repo_id, "--port", str(squeezed.port))
    # one sweep stops it and starts its standby (a second instance log); the next stops the standby, the only
    # sleeping Space left
    kit.wait_held(lambda: len(kit.instance_logs(squeezed, space_id)) == 2 and not ours(squeezed, space_id),
                  what="the Space and then its standby to be stopped")
    assert kit.runtime(sam.api, repo_id).stage == "SLEEPING"
    assert first["pid"] not in squeezed.space_processes()
    statuses = asyncio.run(kit.storm(squeezed.port, host, 20, path="/"))
    assert statuses == {200: 20}, statuses
    assert len(kit.instance_logs(squeezed, space_id)) == 3  # one start for the whole storm
    assert "MARK from the script" in asyncio.run(streamlit_session(squeezed.port, host))
    sam.api.delete_repo(repo_id, repo_type="space")
