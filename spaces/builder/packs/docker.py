"""The docker pack: the repository's own Dockerfile, listening on ``app_port`` (default 7860).

The Dockerfile decides everything else, so requirements.txt and friends are *not* installed by the platform (as on
Hugging Face); they are left out of the plan so they do not change its digest.
"""

from __future__ import annotations

from spaces.builder.packs.base import Detection, declared_or_sniffed, space_config
from spaces.builder.plan import BuildPlan
from spaces.builder.tree import RepoTree, read_text


class DockerPack:
    sdk = "docker"

    def detect(self, tree: RepoTree) -> Detection | None:
        sniff = "found a Dockerfile at the root" if "Dockerfile" in tree.files() else None
        return declared_or_sniffed(tree, "docker", sniff)

    def plan(self, tree: RepoTree, detection: Detection) -> BuildPlan:
        config = space_config(tree, detection)  # NO_APP_FILE when the Dockerfile is missing
        port = config.app_port or 7860
        return BuildPlan(
            sdk="docker", python_version="", sdk_version=None, app_file=None, app_port=port,
            dockerfile=read_text(tree, "Dockerfile"),
            reasons=detection.reasons + (f"the repository's Dockerfile; the app must listen on 0.0.0.0:{port}",),
        )


DOCKER = DockerPack()
