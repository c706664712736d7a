"""The operator CLI finds the ``spaces serve`` running on the machine instead of a data dir of its own guess."""

from __future__ import annotations

import os
import signal
import subprocess

from harness import spaces_command, start_server
from huggingface_hub import HfApi


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*spaces_command(), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_token_create_uses_the_running_server_and_says_which(tmp_path) -> None:  # noqa: ANN001
    announce_dir = tmp_path / "announce"
    first = start_server(extra_env={"SPACES_ANNOUNCE_DIR": str(announce_dir)})
    second = None
    try:
        # as an operator types it: no --data-dir, no SPACES_DATA_DIR (the server was started with --data-dir)
        env = {k: v for k, v in first.env.items() if k not in ("SPACES_DATA_DIR", "SPACES_PORT")}
        res = _cli(env, "token", "create", "alice")
        assert res.returncode == 0, res.stderr
        token = res.stdout.strip()
        said = " ".join(res.stderr.split())
        assert f"using the spaces server at {first.url}" in said and str(first.data_dir) in said, said
        assert HfApi(endpoint=first.url, token=token).whoami()["name"] == "alice"

        # two servers: the CLI names both and acts on neither
        second = start_server(extra_env={"SPACES_ANNOUNCE_DIR": str(announce_dir)})
        res = _cli(env, "token", "create", "bob")
        said = " ".join(res.stderr.split())
        assert res.returncode == 1 and "several spaces servers" in said, said
        assert first.url in said and second.url in said and "Traceback" not in said
        assert _cli({**env, "SPACES_DATA_DIR": str(second.data_dir)}, "token", "create", "bob").returncode == 0

        # a server killed without a chance to withdraw leaves a stale announcement, which is ignored
        os.killpg(second.proc.pid, signal.SIGKILL)
        second.proc.wait(10)
        res = _cli(env, "token", "create", "carol")
        assert res.returncode == 0, res.stderr
        assert HfApi(endpoint=first.url, token=res.stdout.strip()).whoami()["name"] == "carol"
    finally:
        first.stop()
        if second is not None:
            second.stop()
    # a server stopped with SIGTERM withdraws its announcement (the SIGKILLed one could not)
    assert not (announce_dir / f"{first.proc.pid}.json").exists()
    assert (announce_dir / f"{second.proc.pid}.json").exists()
