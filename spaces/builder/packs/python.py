"""The two Python SDK packs: gradio (``python app.py`` on 7860) and streamlit (``streamlit run app.py`` on 8501).

Both install, in order, pre-requirements.txt, requirements.txt and the SDK pinned to ``sdk_version``; both check
packages.txt. Without ``sdk:`` in README.md a pack claims the tree when ``app.py`` imports its SDK.
"""

from __future__ import annotations

import re

from spaces.builder.packs.base import (Detection, declared_or_sniffed, dependency_files, dependency_reasons,
                                       explicit_python, space_config)
from spaces.builder.plan import BuildPlan, Sdk
from spaces.builder.tree import RepoTree, read_text

PORTS = {"gradio": 7860, "streamlit": 8501}


class PythonSdkPack:
    """A Python app run by an SDK that the builder installs at ``sdk_version``."""

    def __init__(self, sdk: Sdk) -> None:
        self.sdk = sdk
        self._imports = re.compile(rf"^\s*(import|from)\s+{sdk}\b", re.MULTILINE)

    def __repr__(self) -> str:
        return f"PythonSdkPack({self.sdk!r})"

    def _sniff(self, tree: RepoTree) -> str | None:
        source = read_text(tree, "app.py")
        if source is not None and self._imports.search(source):
            return f"app.py imports {self.sdk}"
        return None

    def detect(self, tree: RepoTree) -> Detection | None:
        return declared_or_sniffed(tree, self.sdk, self._sniff(tree))

    def plan(self, tree: RepoTree, detection: Detection) -> BuildPlan:
        config = space_config(tree, detection)
        pin = f"{self.sdk}=={config.sdk_version}" if config.sdk_version else f"{self.sdk} (no sdk_version: default)"
        reasons = detection.reasons + (f"app file {config.app_file}, port {PORTS[self.sdk]}, {pin}",)
        return BuildPlan(
            sdk=self.sdk,
            python_version=explicit_python(tree, config),
            sdk_version=config.sdk_version,
            app_file=config.app_file,
            app_port=PORTS[self.sdk],
            reasons=reasons + dependency_reasons(tree),
            **dependency_files(tree),
        )


GRADIO = PythonSdkPack("gradio")
STREAMLIT = PythonSdkPack("streamlit")
