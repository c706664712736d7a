"""The loopback guard on the local backend (``spaces.runtime.netguard``), with real iptables rules.

A Space may reach its own port from its first instruction on (Gradio checks its server before it says it
started), and no other loopback port of the machine. The hole for its own port must exist before its process
does: an app that looks at once must never find it closed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from spaces.runtime import netguard
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings
from spaces.runtime.contracts import Phase, StartFailed

from runtime_local.helpers import Spaces, get, wait_phase, written

pytestmark = pytest.mark.skipif(not shutil.which("iptables"), reason="needs iptables")

# first thing the app does: listen on its own port, connect to it, then try a port the platform owns
SELF_CHECK = """
import json, os, socket
def attempt(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return "ok"
    except OSError as e:
        return "denied: " + type(e).__name__
port = int(os.environ["GRADIO_SERVER_PORT"])
own = socket.create_server(("127.0.0.1", port))
results = {"own_port": attempt(port), "platform_port": attempt(int(os.environ["PLATFORM_PORT"]))}
own.close()
json.dump(results, open("probe.json", "w"))
import gradio as gr
gr.Interface(lambda x: x, "text", "text").launch()
"""


def _uninstall(settings: LocalBackendSettings) -> None:
    for exe in ("iptables", "ip6tables"):
        lo, hi = settings.uid_min, settings.uid_max
        for rule, chain in ((netguard.jump_rule(lo, hi), netguard.chain_name(lo)),
                            (netguard.out_jump_rule(lo, hi), netguard.out_chain_name(lo))):
            while subprocess.run([exe, "-w", "-D", *rule], capture_output=True).returncode == 0:
                pass
            subprocess.run([exe, "-w", "-F", chain], capture_output=True)
            subprocess.run([exe, "-w", "-X", chain], capture_output=True)


@pytest.fixture
def platform_port() -> Iterator[int]:
    """A loopback port the platform listens on and the guard does not open (like the database's)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s.getsockname()[1]


@pytest.fixture
def guarded(backend: LocalBackend, settings: LocalBackendSettings, monkeypatch: pytest.MonkeyPatch,
            platform_port: int) -> Iterator[LocalBackend]:
    problem = netguard.install(settings.uid_min, settings.uid_max, allow_ports=[])
    try:
        assert problem is None, problem
        monkeypatch.setattr(backend, "holes", netguard.OwnPortHoles(settings.uid_min))
        yield backend
    finally:
        _uninstall(settings)


def test_a_space_reaches_its_own_port_from_its_first_line_and_no_other(guarded: LocalBackend, spaces: Spaces,
                                                                     platform_port: int) -> None:
    opened: list[tuple[int, int, set[str]]] = []
    holes = guarded.holes

    class Watching:
        def begin(self, uid: int, port: int) -> netguard.Opening:
            opening = holes.begin(uid, port)
            wait = opening.wait

            def made() -> None:
                wait()
                opened.append((uid, port, set(filter(str.isdigit, os.listdir("/proc")))))  # every process then
            opening.wait = made  # type: ignore[method-assign]
            return opening

        def close(self, uid: int, port: int) -> None:
            holes.close(uid, port)

    guarded.holes = Watching()
    spec = spaces.spec({"app.py": SELF_CHECK}, env={"PLATFORM_PORT": str(platform_port)})
    handle = spaces.start(spec)
    assert wait_phase(guarded, handle, Phase.RUNNING).phase == Phase.RUNNING
    assert get(handle).status_code == 200
    uid, port = int(handle.data["uid"]), int(handle.data["port"])
    assert [(u, p) for u, p, _ in opened] == [(uid, port)]  # opened once
    # made (the backend waited for it) before the app's process existed
    assert handle.data["pid"] and str(handle.data["pid"]) not in opened[0][2]
    assert json.loads(written(guarded, spec, "probe.json").read_text()) == {
        "own_port": "ok", "platform_port": "denied: ConnectionRefusedError"}
    rules = subprocess.run(["iptables", "-w", "-S", netguard.chain_name(guarded.settings.uid_min)],
                           capture_output=True, text=True, check=True).stdout
    assert rules.count(f"--uid-owner {uid} ") == 1 and f"--dport {port} " in rules
    guarded.stop(handle)
    rules = subprocess.run(["iptables", "-w", "-S", netguard.chain_name(guarded.settings.uid_min)],
                           capture_output=True, text=True, check=True).stdout
    assert f"--dport {port} " not in rules  # the hole closes with the instance


def test_a_hole_that_could_not_be_made_is_tried_again(settings: LocalBackendSettings,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # no install(): the chain does not exist, so the insert fails, like any iptables refusal
    holes = netguard.OwnPortHoles(settings.uid_max + 1)
    holes.open(30999, 20999)
    calls: list[list[str]] = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda args, **kw: (calls.append(list(args)), real(args, **kw))[1])
    holes.open(30999, 20999)
    assert calls and all("-I" in c for c in calls)  # tried again, not taken for made


def test_a_start_that_fails_after_its_hole_began_leaves_no_hole(guarded: LocalBackend, spaces: Spaces) -> None:
    spec = spaces.spec({"app.py": "print('never runs')"}, app_file="missing.py")  # refused after the port is chosen
    with pytest.raises(StartFailed, match="missing.py not found"):
        spaces.start(spec)
    uid = guarded.uids.uid(spec.space_id)
    rules = subprocess.run(["iptables", "-w", "-S", netguard.chain_name(guarded.settings.uid_min)],
                           capture_output=True, text=True, check=True).stdout
    assert f"--uid-owner {uid} " not in rules
