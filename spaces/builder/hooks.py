"""The platform's start-up hooks in Space environments: which SDK gets which, and how each builder installs them.

A hook is a standalone module (today only ``venv_hook.py``, for Gradio: its Spaces hot-reload server stays off
and its import is frozen for the collector) written into the environment's site-packages as
``_spaces_platform.py`` next to a ``_spaces_platform.pth`` whose one line installs it at every interpreter start.
Both builders run the same command (:func:`install_command`): the local builder with the uv environment's
interpreter, the Docker builder as one step of the image (:func:`dockerfile_step`). The hook's text is part of
both builders' cache keys, so a changed hook makes new environments and images.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import zlib
from pathlib import Path

from spaces.builder.errors import BuildFailed

MODULE = "_spaces_platform"
PTH_LINE = f"import {MODULE}; {MODULE}.install()\n"
SOURCES = {"gradio": Path(__file__).with_name("venv_hook.py")}


def digest(sdk: str | None) -> str | None:
    """The hook's identity for cache keys (None: this SDK gets no hook)."""
    source = SOURCES.get(sdk or "")
    return hashlib.sha256(source.read_bytes()).hexdigest() if source else None


def install_command(sdk: str | None, python: str) -> list[str] | None:
    """The command that installs the SDK's hook into ``python``'s environment (its purelib) and compiles it with
    that interpreter, as every other module there is compiled at build time; None when the SDK gets no hook.

    The source travels inside the command (compressed, base64), so the same command works on this host and as a
    Dockerfile step: there the build context is the user's repository, and a named extra context would need a
    newer docker CLI than Debian's."""
    source = SOURCES.get(sdk or "")
    if source is None:
        return None
    blob = base64.b64encode(zlib.compress(source.read_bytes(), 9)).decode()
    script = ("import base64, py_compile, sysconfig, zlib; from pathlib import Path; "
              "site = Path(sysconfig.get_paths()['purelib']); "
              f"module = site / '{MODULE}.py'; "
              f"module.write_bytes(zlib.decompress(base64.b64decode('{blob}'))); "
              f"(site / '{MODULE}.pth').write_text({PTH_LINE!r}); "
              "py_compile.compile(str(module), doraise=True)")
    return [python, "-c", script]


def install_into_venv(sdk: str | None, python: str) -> None:
    """Install the SDK's hook into the uv environment of ``python`` (the local builder)."""
    command = install_command(sdk, python)
    if command is None:
        return
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildFailed(f"Installing the platform's start-up hook failed: {done.stderr.strip()[-300:]}")


def dockerfile_step(sdk: str | None, python: str) -> str | None:
    """The same as one exec-form ``RUN`` for the image's environment (the Docker builder)."""
    command = install_command(sdk, python)
    return None if command is None else "RUN " + json.dumps(command)
