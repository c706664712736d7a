"""Start-up hook that the builders install into every Gradio environment and image. Standalone: stdlib only.

The builders (``hooks.py``) copy this file into the environment's site-packages as ``_spaces_platform.py``,
next to a ``_spaces_platform.pth`` whose one line installs it, so it runs at every interpreter start there: a
cold start (``python app.py``) and the zygote, whose forks inherit it, alike. Importing it does nothing;
:func:`install` only puts a finder on ``sys.meta_path`` that waits for ``gradio.http_server``.

Why: when Gradio runs as a Hugging Face Space (``SYSTEM=spaces`` and ``SPACE_ID`` set, as the platform sets
them), its server also starts the ``spaces`` package's hot-reload server: an unauthenticated HTTP API on
``0.0.0.0:7887`` that writes files into the app's folder and reloads its code. Hugging Face reaches it through
its own network (``hf spaces hot-reload``). This platform has no such relay, and on the local backend every
Space shares the host's network, so there the server would be a code-injection door open to the network (on
the first Gradio Space of the host; the others fail to bind the fixed port). It also indexes every code object
of the process: about 0.8 s of CPU racing the app's first request, and about 35 MB per Space. The hook makes
``gradio.http_server`` run its plain server; everything else about running as a Space (``gradio.utils.get_space``)
is unchanged. With a Gradio that no longer has this switch the finder does nothing.
"""

from __future__ import annotations

import sys

TARGET = "gradio.http_server"


def _not_a_space() -> None:
    return None


class GradioReloaderOff:
    """A one-shot ``sys.meta_path`` finder: loads ``gradio.http_server`` as usual, then disables its Spaces
    reloader (``get_space`` in that module only, which it reads to choose the server)."""

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001, ANN201 - the finder protocol
        if name != TARGET:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # one shot; the import machinery stops at the spec returned below
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_patch(module) -> None:  # noqa: ANN001
            exec_module(module)
            if callable(getattr(module, "get_space", None)):
                module.get_space = _not_a_space

        loader.exec_module = exec_then_patch  # this loader instance loads this one module only
        return spec


def install() -> None:
    if TARGET in sys.modules or any(isinstance(f, GradioReloaderOff) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, GradioReloaderOff())
