"""``spaces down`` on a live instance: SIGTERM leaves the Spaces running; ``down`` takes away everything the
platform put on the host (processes, disk mounts, cgroups, firewall chains, the registry claim), and a later
``spaces serve`` of the same data dir works and starts the Space at its first visit.

A platform of this module's own (it is taken down), sharing the session's environments dir.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_platform_restart import Who

import platform_kit as kit
from spaces.runtime import netguard


@pytest.fixture
def doomed(platform_base: Path, platform) -> Iterator[kit.Platform]:  # noqa: ANN001
    with kit.running_platform(platform_base, f"down-{secrets.token_hex(3)}", envs_dir=platform_base / "envs") as p:
        yield p


def chains(uid_min: int) -> list[str]:
    """The loopback guard's chains of this uid range that exist (IPv4 and IPv6 tables)."""
    found = []
    for exe in ("iptables", "ip6tables"):
        if shutil.which(exe):
            for chain in (netguard.chain_name(uid_min), netguard.out_chain_name(uid_min)):
                if subprocess.run([exe, "-w", "-n", "-L", chain], capture_output=True).returncode == 0:
                    found.append(f"{exe}:{chain}")
    return found


def cgroup_dirs(root: str) -> list[Path]:
    return [d for top in [Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").glob("*")] if (d := top / root).is_dir()]


def disk_mounts(data_dir: Path) -> list[str]:
    homes = str((data_dir / "local" / "homes").resolve())
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(homes)]


def registry_ids() -> set[str]:
    path = Path("/var/lib/spaces-host/instances.json")
    return set(json.loads(path.read_text())) if path.exists() else set()


def space_row(data_dir: Path, space_id: str) -> tuple:
    with sqlite3.connect(data_dir / "spaces.db") as db:
        return db.execute("SELECT asleep, stage, instance FROM spaces WHERE id = ?", (space_id,)).fetchone()


@pytest.mark.timeout(900)  # a fresh session builds the gradio environment here first; then a cold start after down
def test_down_removes_what_the_platform_put_on_the_host_and_serve_works_again(doomed: kit.Platform) -> None:
    who = Who(doomed.server, "dana")
    repo_id = f"dana/down-{secrets.token_hex(3)}"
    space_id, _ = kit.running_greeter(doomed, who, repo_id, "down")
    instance_id = (doomed.data_dir / "instance-id").read_text().strip()
    assert doomed.space_processes()
    assert chains(doomed.uid_min)
    assert cgroup_dirs(doomed.cgroup_root)
    assert instance_id in registry_ids()
    mounted = disk_mounts(doomed.data_dir)

    # while its server runs, down refuses and changes nothing
    refused = doomed.server.cli("down", check=False)
    assert refused.returncode == 1
    assert "a spaces server of this data dir runs" in refused.stderr and "--force" in refused.stderr
    assert doomed.space_processes() and chains(doomed.uid_min)

    # SIGTERM stops the server and leaves the Space running for the next start
    before = doomed.space_processes()
    os.kill(doomed.server.proc.pid, signal.SIGTERM)
    assert doomed.server.proc.wait(30) == 0
    assert doomed.space_processes().keys() >= before.keys()

    done = doomed.server.cli("down")
    assert "stopped 1 instance(s)" in done.stderr, done.stderr
    assert "1 Space(s) marked stopped" in done.stderr and "stay" in done.stderr
    assert doomed.space_processes() == {}
    assert chains(doomed.uid_min) == []
    assert cgroup_dirs(doomed.cgroup_root) == []
    assert disk_mounts(doomed.data_dir) == []
    assert instance_id not in registry_ids()
    asleep, stage, instance = space_row(doomed.data_dir, space_id)
    assert (asleep, stage) == (1, "SLEEPING") and instance in (None, "null")
    # what stays: the database (above) and the repositories
    assert any((doomed.data_dir / "repos").rglob("HEAD"))
    again = doomed.server.cli("down")  # nothing left to take down is not an error
    assert "stopped 0 instance(s)" in again.stderr

    # serve again: it claims its names back; the Space starts at its first visit, not before
    server = doomed.restart()
    assert who.api.get_space_runtime(repo_id).stage == "SLEEPING"
    assert instance_id in registry_ids() and chains(doomed.uid_min)
    r = kit.app_get(server, repo_id, "/config", timeout=180)
    assert r.status_code == 200 and r.json()["title"] == "Greet down"
    kit.wait_stage(who.api, repo_id, kit.RUNNING, timeout=60)
    assert mounted == [] or disk_mounts(doomed.data_dir)  # its disk is mounted again where it had one
