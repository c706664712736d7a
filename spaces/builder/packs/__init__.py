"""Build packs: one per SDK, each ``detect(tree) -> Detection | None`` and ``plan(tree, detection) -> BuildPlan``.

See :mod:`spaces.builder.packs.base` for the contract and :mod:`spaces.builder.detect` for the ordered registry.
"""

from spaces.builder.packs.base import BuildPack, Detection, parse_packages
from spaces.builder.packs.docker import DOCKER, DockerPack
from spaces.builder.packs.python import GRADIO, STREAMLIT, PythonSdkPack
from spaces.builder.packs.static import STATIC, StaticPack

__all__ = ["BuildPack", "Detection", "parse_packages", "DOCKER", "DockerPack", "GRADIO", "STREAMLIT",
           "PythonSdkPack", "STATIC", "StaticPack"]
