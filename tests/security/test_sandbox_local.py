"""A hostile Space on the local backend sees nothing of the host and reaches none of its services (issue 20, rows 2
and 6): from inside, a real Gradio app (apps/sandbox_attack.py) tries every read, connect and write an attacker
found working before the sandbox hid the host, forked from the zygote and cold-started alike; each must fail.

The host side is real: a unix socket in /run and an abstract one, TCP and UDP services on loopback, the loopback
guard's iptables rules for this test's uid range, a process whose command line holds a canary, a data dir left
world-readable (the sandbox, not the modes, must hide it), another Space running next to it, and the Space's own
disk, /tmp and /dev/shm limits. Needs root, iptables and loop devices (skips otherwise); run under
``flock /tmp/spaces-live.lock``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from spaces.runtime import netguard
from spaces.runtime.backends.local import LocalBackend, LocalBackendSettings
from spaces.runtime.contracts import Limits, Phase

from runtime_local.conftest import local_root, venv  # noqa: F401 - fixtures shared with the backend's tests
from runtime_local.helpers import HELLO_GRADIO, Spaces, get, wait_phase, written

ATTACK = (Path(__file__).parent / "apps" / "sandbox_attack.py").read_text()
DISK_MB, TMP_MB, SHM_MB = 64, 32, 16

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("iptables") or not os.path.exists(
    "/dev/loop-control"), reason="needs root, iptables and loop devices")


@pytest.fixture(scope="module")
def backend(local_root: Path, venv: Path) -> Iterator[LocalBackend]:  # noqa: F811
    """The backend as the platform makes it (guard installed, holes per instance), with small limits to fill."""
    settings = LocalBackendSettings(root=local_root / "security", cgroup_root="spaces-test-sec", uid_min=31000,
                                    uid_max=31999, stop_grace_s=3, zygote_wait_s=120, tmp_size_mb=TMP_MB,
                                    shm_size_mb=SHM_MB, disk_mb=DISK_MB)
    problem = netguard.install(settings.uid_min, settings.uid_max, allow_ports=[])
    try:
        assert problem is None, problem
        b = LocalBackend(settings, holes=netguard.OwnPortHoles(settings.uid_min))
        yield b
        for h in b.list({}):
            b.stop(h)
        b.close()
    finally:
        netguard.uninstall(settings.uid_min, settings.uid_max)


@pytest.fixture
def spaces(backend: LocalBackend, venv: Path, local_root: Path) -> Iterator[Spaces]:  # noqa: F811
    s = Spaces(backend, venv, local_root)
    yield s
    s.stop_all()


class HostServices:
    """What an attacker would look for on the host: sockets, services, files and a process, each with a canary."""

    def __init__(self, root: Path) -> None:
        self.canary = f"spaces-canary-{secrets.token_hex(6)}"
        self.hits: list[str] = []
        self.unix_path = f"/run/{self.canary}.sock"
        self.unix = self._listen(socket.socket(socket.AF_UNIX), self.unix_path, "unix")
        os.chmod(self.unix_path, 0o777)  # only the sandbox may keep a Space out, not the socket's mode
        self.abstract = self._listen(socket.socket(socket.AF_UNIX), "\0" + self.canary, "abstract")
        self.tcp = self._listen(socket.socket(), ("127.0.0.1", 0), "tcp")
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        threading.Thread(target=self._echo, daemon=True).start()
        self.run_canary, self.var_tmp_canary = Path(f"/run/{self.canary}"), Path(f"/var/tmp/{self.canary}")
        for path in (self.run_canary, self.var_tmp_canary):
            path.write_text("host secret")
            os.chmod(path, 0o644)
        self.data_dir = root / f"data-{self.canary}"  # world-readable on purpose: the sandbox must hide it
        self.data_dir.mkdir(mode=0o755)
        (self.data_dir / "spaces.db").write_text("platform secrets")
        os.chmod(self.data_dir / "spaces.db", 0o644)
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", self.canary])

    def _listen(self, sock: socket.socket, address: object, name: str) -> socket.socket:
        sock.bind(address)
        sock.listen()

        def serve() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                self.hits.append(name)
                conn.sendall(b"host service")
                conn.close()
        threading.Thread(target=serve, daemon=True).start()
        return sock

    def _echo(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(64)
            except OSError:
                return
            self.hits.append("udp")
            self.udp.sendto(data, peer)

    def env(self) -> dict[str, str]:
        return {"CANARY": self.canary, "RUN_CANARY": str(self.run_canary), "VAR_TMP_CANARY": str(self.var_tmp_canary),
                "DATA_DIR": str(self.data_dir), "UNIX_SOCKET": self.unix_path, "ABSTRACT_SOCKET": self.canary,
                "TCP_PORT": str(self.tcp.getsockname()[1]), "UDP_PORT": str(self.udp.getsockname()[1]),
                "HOST_PID": str(self.process.pid)}

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        for sock in (self.unix, self.abstract, self.tcp, self.udp):
            sock.close()
        for path in (Path(self.unix_path), self.run_canary, self.var_tmp_canary):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def host(local_root: Path) -> Iterator[HostServices]:  # noqa: F811
    services = HostServices(local_root)
    yield services
    services.close()


def attack_results(backend: LocalBackend, handle) -> dict[str, str]:  # noqa: ANN001
    for line in backend.logs(handle):
        if line.startswith("ATTACK-RESULT "):
            return json.loads(line[len("ATTACK-RESULT "):])
    raise AssertionError("the attack app printed no result:\n" + "\n".join(list(backend.logs(handle))[-30:]))


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "cold"])
def test_a_hostile_space_sees_and_reaches_nothing_of_the_host(backend: LocalBackend, spaces: Spaces,
                                                               host: HostServices, zygote: bool) -> None:
    victim_spec = spaces.spec({"app.py": HELLO_GRADIO, "secret.txt": "victim's secret"})
    victim = spaces.start(victim_spec)
    wait_phase(backend, victim, Phase.RUNNING)
    victim_home = backend._disk(victim_spec.space_id).home
    spec = spaces.spec({"app.py": ATTACK}, env={
        **host.env(), "OTHER_WORKDIR": victim_spec.workdir, "OTHER_HOME": str(victim_home),
        "DISK_FILL_MB": str(DISK_MB * 3 // 2), "TMP_FILL_MB": str(TMP_MB * 3 // 2),
        "SHM_FILL_MB": str(SHM_MB * 3 // 2)})
    spec = dataclasses.replace(spec, limits=Limits(cpu=1.0, memory_mb=2048, disk_mb=DISK_MB))
    handle = spaces.start(spec, zygote=zygote)
    assert handle.data["via"] == ("zygote" if zygote else "exec")
    wait_phase(backend, handle, Phase.RUNNING)
    assert get(handle).status_code == 200  # a sandboxed Space still serves
    results = attack_results(backend, handle)

    # its own scratch space works, and it is its own
    for key in ("write_dev_shm", "write_tmp"):
        assert results.pop(key).startswith("ALLOWED"), key
    count, highest = json.loads(results.pop("processes").removeprefix("ALLOWED: "))
    assert count < 20 and highest < 100, (count, highest)  # its own PID namespace: only its own processes
    # every limit fails the app's writes with ENOSPC (or EDQUOT), not the host's
    for key in ("fill_home", "fill_workdir", "fill_tmp", "fill_dev_shm"):
        value = results.pop(key)
        assert value.startswith("denied: OSError") and ("ENOSPC" in value or "EDQUOT" in value), (key, value)
    # and nothing else: no host file, socket, service or process
    assert {k: v.split(":")[0] for k, v in results.items()} == {k: "denied" for k in results}, results
    assert host.hits == []  # no host service saw a connection or a datagram
    left = f"{host.canary}.left"  # the name of what it wrote in each place
    assert not Path("/dev/shm", left).exists() and not Path("/tmp", left).exists()
    assert sorted(os.listdir(spec.workdir)) == ["app.py"]  # its writes are on its disk, not in the checkout
    assert get(victim).status_code == 200

    backend.stop(handle)
    assert not backend._disk(spec.space_id).mounted()  # the last instance took its disk's mount with it
    for leftover in (Path("/dev/shm", left), Path("/var/tmp", left), Path("/run/lock", left), Path("/tmp", left)):
        assert not leftover.exists(), leftover
    assert not any(host.canary in name for name in os.listdir("/dev/shm"))


def test_the_disk_keeps_a_spaces_home_across_restarts_and_gives_a_new_commit_a_fresh_code_layer(
        backend: LocalBackend, spaces: Spaces) -> None:
    app = ("import json, os, gradio as gr\n"
           "print('SEEN ' + json.dumps([os.listdir(os.environ['HOME']), os.listdir('.')]), flush=True)\n"
           "open(os.path.join(os.environ['HOME'], 'model.bin'), 'w').write('weights')\n"
           "open('flagged.csv', 'w').write('a,b')\n"
           "gr.Interface(lambda x: x, 'text', 'text').launch()\n")
    spec = spaces.spec({"app.py": app})
    new = dataclasses.replace(spec, sha="f" * 40)
    seen, handles = [], []
    for s in (spec, spec, new):  # a restart of one commit, then a new commit while that one still serves
        handles.append(spaces.start(s))
        wait_phase(backend, handles[-1], Phase.RUNNING)
        seen.append(json.loads(next(line for line in backend.logs(handles[-1]) if line.startswith("SEEN "))[5:]))
        if len(handles) == 1:
            backend.stop(handles[0])
    (home0, code0), (home1, code1), (home2, code2) = seen
    assert home0 == [] and "flagged.csv" not in code0
    assert home1 == ["model.bin"] and "flagged.csv" in code1  # kept across a restart of one commit
    assert home2 == ["model.bin"] and "flagged.csv" not in code2 and "app.py" in code2  # a new commit: fresh code
    assert written(backend, spec, "flagged.csv").exists()  # and the old commit, still serving, keeps its files
    for h in handles[1:]:
        backend.stop(h)
    assert not backend._disk(spec.space_id).mounted()
    assert sorted(os.listdir(spec.workdir)) == ["app.py"]
    disk = backend._disk(spec.space_id)
    assert disk.image.exists() and disk.image.stat().st_blocks * 512 < DISK_MB * 1024 * 1024  # sparse
