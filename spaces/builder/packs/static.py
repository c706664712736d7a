"""The static pack: serve ``app_file`` (default index.html) and the files beside it; no process, no environment."""

from __future__ import annotations

from spaces.builder.packs.base import Detection, declared_or_sniffed, space_config
from spaces.builder.plan import BuildPlan
from spaces.builder.tree import RepoTree


class StaticPack:
    sdk = "static"

    def detect(self, tree: RepoTree) -> Detection | None:
        sniff = "found index.html at the root" if "index.html" in tree.files() else None
        return declared_or_sniffed(tree, "static", sniff)

    def plan(self, tree: RepoTree, detection: Detection) -> BuildPlan:
        config = space_config(tree, detection)
        return BuildPlan(
            sdk="static", python_version="", sdk_version=None, app_file=config.app_file or "index.html",
            app_port=0,  # no process listens: the platform serves the files
            reasons=detection.reasons + (f"serving {config.app_file or 'index.html'} as a static site",),
        )


STATIC = StaticPack()
