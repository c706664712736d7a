"""The platform's start-up hooks in Space environments: which SDK gets which, and how each builder installs them.

A hook is a standalone module (today only ``venv_hook.py``, for Gradio: its Spaces hot-reload server stays off
and its import is frozen for the collector) written into the environment's site-packages as
``_spaces_platform.py`` next to a ``_spaces_platform.pth`` whose one line installs it at every interpreter start.
The local builder writes both into the uv environment (:func:`install_into_venv`); the Docker builder adds one
step to the image (:func:`dockerfile_step`). The hook's text is part of both builders' cache keys, so a changed
hook makes new environments and images.
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


def install_into_venv(sdk: str | None, venv: Path, python: str) -> None:
    """Write the SDK's hook into a uv environment and compile it with the environment's own interpreter (as every
    other module there is compiled at build time)."""
    source = SOURCES.get(sdk or "")
    if source is None:
        return
    site = next(venv.glob("lib/python*/site-packages"))
    module = site / f"{MODULE}.py"
    module.write_bytes(source.read_bytes())
    (site / f"{MODULE}.pth").write_text(PTH_LINE)
    done = subprocess.run([python, "-m", "py_compile", str(module)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildFailed(f"Installing the platform's start-up hook failed: {done.stderr.strip()[-300:]}")


def dockerfile_step(sdk: str | None, python: str) -> str | None:
    """One exec-form ``RUN`` that writes the SDK's hook into the image's environment (``python``'s purelib).

    The source travels inside the Dockerfile (compressed, base64): the build context is the user's repository,
    and a named extra context would need a newer docker CLI than Debian's."""
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
    return "RUN " + json.dumps([python, "-c", script])
