"""Helpers of the tenancy tests (tests/security/test_tenancy_*.py): live platforms started with the platform's
*default* host-wide settings (no uid range, cgroup root or port range given: each claims its own in the host
registry, which is what an operator who starts two platforms gets), and the probe app that attacks from inside.

Built on ``tests/platform/platform_kit.py`` (real ``spaces serve``, real pushes, real Gradio apps).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import platform_kit as kit  # noqa: E402
from harness import SHARED_ENVS_DIR, TEST_ROOT, start_server  # noqa: E402

from spaces.runtime.backends.local import LocalBackendSettings  # noqa: E402

REGISTRY = LocalBackendSettings.model_fields["registry"].default
PROBE = Path(__file__).with_name("apps") / "tenancy_probe.py"


def start_default_platform(base: Path, name: str, **extra_env: str) -> kit.Platform:
    """``spaces serve`` on ``base/name`` with no uid range, cgroup root or port range set: the platform claims its
    own. Returns a ``platform_kit.Platform`` carrying the names it claimed (so ``stop`` cleans up after it)."""
    data_dir = base / name
    data_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    TEST_ROOT.chmod(0o711)  # the shared environments under it are reached by the Spaces' uids
    env = {"SPACES_RUNTIME__SWEEP_SECONDS": "1", "SPACES_RUNTIME__SLEEP_SWEEP_SECONDS": "1",
           "SPACES_LOCAL_BUILD__ENVS_DIR": str(SHARED_ENVS_DIR), **extra_env}
    server = start_server(data_dir=data_dir, extra_env=env)
    claim = registered(data_dir)
    return kit.Platform(server, base, data_dir, env, claim["uid_min"], claim["uid_max"], claim["cgroup_root"], "")


def registered(data_dir: Path) -> dict[str, Any]:
    """The host registry's entry of the platform on ``data_dir``."""
    instance = (data_dir / "instance-id").read_text().strip()
    return json.loads(Path(REGISTRY).read_text())[instance]


def probe_files(mark: str) -> dict[str, bytes]:
    return kit.space_files(**{"README.md": kit.readme("gradio"), "app.py": PROBE.read_text().replace("{{MARK}}", mark)})


def attack(platform: kit.Platform, repo_id: str, token: str | None = None, **spec: Any) -> str:
    """Ask the probe Space ``repo_id`` to try one thing from inside; its answer, "OK ..." or "ERR ..."."""
    headers = {"authorization": f"Bearer {token}"} if token else None
    return kit.gradio_call(platform.server, repo_id, "attack", json.dumps(spec), timeout=120, headers=headers)[0]


def home_of(platform: kit.Platform, space_id: str) -> Path:
    from spaces.runtime.sandbox import slug

    base = platform.data_dir / "local" / "homes" / "spaces" / slug(space_id)
    on_disk = base / "mnt" / "home"  # the Space's own disk (spaces.runtime.spacedisk), mounted while it runs
    return on_disk if on_disk.is_dir() else base
