"""Start-up hook that the builders install into every Gradio environment and image. Standalone: stdlib only.

The builders (``hooks.py``) copy this file into the environment's site-packages as ``_spaces_platform.py``,
next to a ``_spaces_platform.pth`` whose one line installs it, so it runs at every interpreter start there: a
cold start (``python app.py``) and the zygote, whose forks inherit it, alike. Importing it does nothing;
:func:`install` only puts a finder on ``sys.meta_path`` that acts once ``gradio`` and ``gradio.http_server``
have been loaded, and then leaves.

After ``import gradio`` it freezes the collector's view of what is loaded by then (``gc.freeze()``), as the zygote
does for its forks: the SDK's objects live as long as the process, and without this every full collection walks
all of them (about 80 ms with Gradio here: one wake in twenty of a cold-started, frozen-then-thawed Gradio app
took 4x the others). A cold start and a fork now both run with the SDK import frozen.

The reloader: when Gradio runs as a Hugging Face Space (``SYSTEM=spaces`` and ``SPACE_ID`` set, as the platform
sets them), its server also starts the ``spaces`` package's hot-reload server: an unauthenticated HTTP API on
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


def _not_a_space() -> None:
    return None


def _freeze_import(module) -> None:  # noqa: ANN001
    import gc

    gc.freeze()


def _reloader_off(module) -> None:  # noqa: ANN001
    if callable(getattr(module, "get_space", None)):
        module.get_space = _not_a_space  # read only to choose the server; gradio.utils.get_space is untouched


#: module -> what to do once it has been executed
AFTER = {"gradio": _freeze_import, "gradio.http_server": _reloader_off}


class GradioHook:
    """A ``sys.meta_path`` finder that loads the modules in :data:`AFTER` as usual (through the finders behind
    it), runs each one's action after it executed, and removes itself once all of them were seen."""

    def __init__(self) -> None:
        self.pending = set(AFTER)

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001, ANN201 - the finder protocol
        if name not in self.pending:
            return None
        self.pending.discard(name)
        if not self.pending:
            sys.meta_path.remove(self)
        spec = None
        for finder in list(sys.meta_path):  # the machinery's own search, without this finder
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(name, path, target)
                if spec is not None:
                    break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module, action = loader.exec_module, AFTER[name]

        def exec_then_act(module) -> None:  # noqa: ANN001
            exec_module(module)
            action(module)

        loader.exec_module = exec_then_act  # this loader instance loads this one module only
        return spec


def install() -> None:
    if "gradio" in sys.modules or any(isinstance(f, GradioHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, GradioHook())
