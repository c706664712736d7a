"""A Space cannot read another Space's files, environment or the platform's data; a memory hog dies alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spaces.runtime.backends.local import LocalBackend
from spaces.runtime.contracts import Phase

from runtime_local.helpers import HELLO_GRADIO, Spaces, get, wait_phase, written

# tries everything it should not be able to do, records the outcome, then serves like any app
SNOOP = """
import json, os, signal
def attempt(fn):
    try:
        return "ALLOWED: " + repr(fn())[:200]
    except OSError as e:
        return "denied: " + type(e).__name__
t = os.environ
results = {
    "list_other_workdir": attempt(lambda: os.listdir(t["TARGET_DIR"])),
    "read_other_secret_file": attempt(lambda: open(t["TARGET_DIR"] + "/secret.txt").read()),
    "read_other_environ": attempt(lambda: open(f"/proc/{t['TARGET_PID']}/environ").read()),
    "signal_other": attempt(lambda: os.kill(int(t["TARGET_PID"]), signal.SIGTERM)),
    "read_control_plane_environ": attempt(lambda: open(f"/proc/{t['PLATFORM_PID']}/environ").read()),
    "list_data_dir": attempt(lambda: os.listdir(t["DATA_DIR"])),
    "read_database": attempt(lambda: open(t["DATA_DIR"] + "/spaces.db").read()),
    "read_repos": attempt(lambda: os.listdir(t["DATA_DIR"] + "/repos")),
    "list_run_dir": attempt(lambda: os.listdir(t["RUN_DIR"])),
    "write_own_workdir": attempt(lambda: open("mine.txt", "w").write("ok")),
}
json.dump(results, open("probe.json", "w"))
import gradio as gr
gr.Interface(lambda x: x, "text", "text").launch()
"""

HOG = """
import sys
chunks = []
while True:
    chunks.append(bytearray(b"\\x01") * (16 << 20))  # touched pages, so they count
    print(f"allocated {len(chunks) * 16} MiB", flush=True)
"""


@pytest.fixture
def data_dir(local_root: Path) -> Path:
    """A platform data dir laid out as the docs require: 0711, database 0600, repos 0700."""
    d = local_root / "data"
    (d / "repos").mkdir(parents=True, exist_ok=True)
    (d / "spaces.db").write_text("platform secrets")
    os.chmod(d, 0o711)
    os.chmod(d / "repos", 0o700)
    os.chmod(d / "spaces.db", 0o600)
    return d


@pytest.mark.parametrize("zygote", [True, False], ids=["zygote", "cold"])
def test_space_cannot_read_another_space_or_the_platform(spaces: Spaces, backend: LocalBackend, data_dir: Path,
                                                         zygote: bool) -> None:
    victim_spec = spaces.spec({"app.py": HELLO_GRADIO, "secret.txt": "victim's secret"},
                              env={"VICTIM_TOKEN": "hf_victim"})
    victim = spaces.start(victim_spec)
    wait_phase(backend, victim, Phase.RUNNING)
    snoop_spec = spaces.spec({"app.py": SNOOP}, env={
        "TARGET_DIR": victim_spec.workdir, "TARGET_PID": str(victim.data["pid"]), "PLATFORM_PID": str(os.getpid()),
        "DATA_DIR": str(data_dir), "RUN_DIR": str(backend.run_dir)})
    snoop = spaces.start(snoop_spec, zygote=zygote)
    wait_phase(backend, snoop, Phase.RUNNING)
    assert snoop.data["uid"] != victim.data["uid"]
    results = json.loads(written(backend, snoop_spec, "probe.json").read_text())
    assert results.pop("write_own_workdir").startswith("ALLOWED")
    assert {k: v.split(":")[0] for k, v in results.items()} == {k: "denied" for k in results}, results
    assert get(victim).status_code == 200  # and the victim is unharmed


def test_memory_hog_is_killed_alone(spaces: Spaces, backend: LocalBackend) -> None:
    if not backend.cgroups.available:
        pytest.skip(f"no writable cgroups here: {backend.cgroups.reason}")
    neighbour = spaces.start(spaces.spec({"app.py": HELLO_GRADIO}))
    wait_phase(backend, neighbour, Phase.RUNNING)
    hog = spaces.start(spaces.spec({"app.py": HOG}, memory_mb=200))
    obs = wait_phase(backend, hog, Phase.EXITED, timeout=60)
    assert obs.exit_code in (-9, 137)
    assert "memory limit" in obs.message and "allocated" in obs.message
    assert backend.poll(neighbour).phase == Phase.RUNNING
    assert get(neighbour).status_code == 200
