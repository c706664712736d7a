"""Two platforms on one host, both with default settings (issue 20, row 4): each claims its own Space uids, app
ports, cgroup root and firewall chain, and a Space of one can neither read nor write the other's Spaces' files,
nor reach the other's apps; starting one leaves the other's firewall rules as they were.

Live: two real ``spaces serve`` with real Gradio Spaces (run under ``flock /tmp/spaces-live.lock``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import tenancy_kit as tk
from harness import make_actor, start_server

from spaces.runtime import netguard

kit = tk.kit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root")


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    path = kit.new_base("spaces-tenancy-two-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pair(base: Path) -> Iterator[tuple[kit.Platform, kit.Platform]]:
    first = tk.start_default_platform(base, "first")
    try:
        second = tk.start_default_platform(base, "second")
    except BaseException:
        first.stop()
        raise
    yield first, second
    for p in (first, second):
        p.stop()


def chain_rules(uid_min: int) -> str:
    return subprocess.run(["iptables", "-w", "-S", netguard.chain_name(uid_min)], capture_output=True, text=True,
                          check=True).stdout


def output_rules() -> str:
    return subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, check=True).stdout


def test_two_default_platforms_hold_disjoint_host_wide_names(pair: tuple[kit.Platform, kit.Platform]) -> None:
    a, b = (tk.registered(p.data_dir) for p in pair)
    assert a["id"] != b["id"]
    assert a["uid_max"] < b["uid_min"] or b["uid_max"] < a["uid_min"], (a, b)
    assert a["port_max"] < b["port_min"] or b["port_max"] < a["port_min"], (a, b)
    assert a["cgroup_root"] != b["cgroup_root"]
    assert netguard.chain_name(a["uid_min"]) != netguard.chain_name(b["uid_min"])


def test_a_space_cannot_touch_another_platforms_spaces(pair: tuple[kit.Platform, kit.Platform]) -> None:
    one, two = pair
    alice, bob = make_actor(one.server, "alice"), make_actor(two.server, "bob")
    mine, _ = kit.running_space(one, alice, "alice/attacker", tk.probe_files("attacker-mark"))
    theirs, their_instance = kit.running_space(two, bob, "bob/victim", tk.probe_files("victim-mark"))
    bob.api.update_repo_settings("bob/victim", private=True, repo_type="space")
    own_instance = kit.instance_of(one, mine)
    their_home, their_workdir = tk.home_of(two, theirs), Path(their_instance["workdir"])
    assert (their_home / "secret.txt").read_text() == "victim-mark"  # what the attacker looks for is there

    # the probe works: its own files and its own app answer it
    assert tk.attack(one, "alice/attacker", op="read", path="~/secret.txt") == "OK attacker-mark"
    assert tk.attack(one, "alice/attacker", op="read", path="workdir-secret.txt") == "OK attacker-mark"
    assert tk.attack(one, "alice/attacker", op="http", port=own_instance["port"]).startswith("OK HTTP/1.1")

    # the other platform's Space: neither its files nor its app
    for path in (their_home / "secret.txt", their_home, their_workdir / "workdir-secret.txt", their_workdir):
        got = tk.attack(one, "alice/attacker", op="read", path=str(path))
        assert got.startswith("ERR") and "victim-mark" not in got, (path, got)
    their_app = (their_workdir / "app.py").read_text()
    for path in (their_workdir / "app.py", their_home / "planted.txt"):
        assert tk.attack(one, "alice/attacker", op="write", path=str(path)).startswith("ERR"), path
    assert (their_workdir / "app.py").read_text() == their_app
    assert not (their_home / "planted.txt").exists()
    got = tk.attack(one, "alice/attacker", op="http", port=their_instance["port"])
    assert got.startswith("ERR") and "Connection" in got, got  # refused by the guard, not a timeout
    got = tk.attack(one, "alice/attacker", op="http", port=two.port)  # nor the other platform's proxy
    assert got.startswith("ERR"), got
    # and the other way round
    got = tk.attack(two, "bob/victim", bob.token, op="http", port=own_instance["port"])
    assert got.startswith("ERR") and "Connection" in got, got
    assert int(their_instance["uid"]) != int(own_instance["uid"])


def test_starting_one_platform_leaves_the_others_firewall_rules(pair: tuple[kit.Platform, kit.Platform]) -> None:
    one, two = pair
    bob = make_actor(two.server, "bob")
    sid, instance = kit.running_space(two, bob, "bob/steady", tk.probe_files("steady"))
    b = tk.registered(two.data_dir)
    before_chain, jump = chain_rules(b["uid_min"]), " ".join(netguard.jump_rule(b["uid_min"], b["uid_max"])[1:])
    assert f"--uid-owner {instance['uid']} " in before_chain and f"--dport {instance['port']} " in before_chain

    # the first platform starts again (its guard is installed anew) and starts a Space of its own
    old = one.server
    old.stop()
    one.old_servers.append(old)
    one.server = start_server(data_dir=one.data_dir, port=old.port, extra_env=one.extra_env)
    carol = make_actor(one.server, "carol")
    kit.running_space(one, carol, "carol/newcomer", tk.probe_files("newcomer"))

    after = chain_rules(b["uid_min"])
    assert after == before_chain, f"{after}\n--- OUTPUT ---\n{output_rules()}"
    assert f"--uid-owner {b['uid_min']}-{b['uid_max']} " in output_rules() and netguard.chain_name(b["uid_min"]) \
        in output_rules(), jump
    # and the Space of the second platform still reaches its own port (its hole is still there)
    assert tk.attack(two, "bob/steady", op="http", port=instance["port"]).startswith("OK HTTP/1.1")
    assert sid
