"""The ordered registry of build packs and :func:`make_plan`, the one call the build service needs.

Order matters only for sniffing (a README without ``sdk:``): a Dockerfile wins over an ``app.py`` that imports
gradio, which wins over streamlit, which wins over a bare index.html. A declared ``sdk:`` matches exactly one pack
whatever the order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spaces.builder.errors import BuildConfigError
from spaces.builder.packs import DOCKER, GRADIO, STATIC, STREAMLIT, BuildPack, Detection
from spaces.builder.packs.base import read_card, space_config
from spaces.builder.plan import BuildPlan
from spaces.builder.tree import DirTree, RepoTree
from spaces.domain.cardconfig import REASON_MISSING_SDK, REASON_UNKNOWN_SDK, REASON_YAML, SDKS

PACKS: tuple[BuildPack, ...] = (DOCKER, GRADIO, STREAMLIT, STATIC)


def detect(tree: RepoTree, packs: tuple[BuildPack, ...] = PACKS) -> tuple[BuildPack, Detection] | None:
    """The first pack that claims the tree, with its Detection; None when none does."""
    for pack in packs:
        found = pack.detect(tree)
        if found is not None:
            return pack, found
    return None


def make_plan(tree: RepoTree, packs: tuple[BuildPack, ...] = PACKS) -> BuildPlan:
    """The BuildPlan of a tree, or :class:`BuildConfigError` with a message that says what to change."""
    card = read_card(tree)
    if card.parsed.error is not None:
        raise BuildConfigError(card.parsed.error.message, reason=REASON_YAML)
    declared = card.data.get("sdk")
    if declared is not None and declared not in SDKS:
        raise BuildConfigError(f"README.md: `sdk: {declared}` is not a supported SDK; use one of {', '.join(SDKS)}.",
                               reason=REASON_UNKNOWN_SDK)
    found = detect(tree, packs)
    if found is None:
        where = "README.md has no `sdk:` key" if card.text is not None else "There is no README.md"
        raise BuildConfigError(
            f"{where}, and the files do not say what to build (no Dockerfile, no app.py importing gradio or "
            "streamlit, no index.html). Add README.md front matter such as:\n---\nsdk: gradio\n---",
            reason=REASON_MISSING_SDK)
    pack, detection = found
    plan = pack.plan(tree, detection)
    preload = tuple(p.text for p in space_config(tree, detection).preload_from_hub)
    return dataclasses.replace(plan, preload=preload) if preload else plan


def plan_checkout(context: Path, sha: str = "") -> BuildPlan:
    """``make_plan`` over an exported checkout: the ``planner(context, sha)`` the build service calls."""
    return make_plan(DirTree(context))
