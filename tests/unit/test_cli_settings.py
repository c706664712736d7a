"""A bad SPACES_* value stops every command with a line naming the variable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPACES = Path(sys.executable).with_name("spaces")


@pytest.mark.parametrize("env,names", [
    ({"SPACES_LOCAL__PORT_MIN": "80"}, "SPACES_LOCAL__PORT_MIN"),
    ({"SPACES_LOCAL__PORT_MIN": "30000", "SPACES_LOCAL__PORT_MAX": "20000"}, "port_min 30000 is above port_max"),
    ({"SPACES_PROXY__UPSTREAM_IDLE_TIMEOUT": "soon"}, "SPACES_PROXY__UPSTREAM_IDLE_TIMEOUT"),
])
def test_bad_settings_are_one_clear_error(tmp_path: Path, env: dict[str, str], names: str) -> None:
    proc = subprocess.run([str(SPACES), "serve", "--port", "0", "--data-dir", str(tmp_path)],
                          env={**os.environ, "COLUMNS": "200", **env}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "bad settings" in proc.stderr and names in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "spaces.db").exists()  # nothing was started or created
