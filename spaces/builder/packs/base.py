"""What every build pack shares: the contract, the :class:`Detection` record, and readers for the README and the
dependency files as Hugging Face reads them.

The BuildPack contract (an ordered list of packs lives in ``spaces/builder/detect.py``; first match wins):

* ``detect(tree) -> Detection | None``: pure; looks only at the tree. When README.md declares ``sdk:``, a pack
  matches if and only if it is that SDK (the README decides before any file sniffing). Without a declared SDK a
  pack may claim the tree from its files (a Dockerfile, an ``app.py`` that imports gradio, ...). The Detection
  says *why* it matched; those reasons are the first lines of the build log.
* ``plan(tree, detection) -> BuildPlan``: pure; reads the configuration and dependency files, checks that the
  app file exists, and raises :class:`~spaces.builder.errors.BuildConfigError` with a message the author can act
  on when the tree cannot be built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from spaces.builder.errors import BuildConfigError
from spaces.builder.plan import BuildPlan, Sdk
from spaces.builder.tree import RepoTree, read_text
from spaces.domain.cardconfig import (REASON_NO_APP_FILE, CardParse, SpaceConfig, check_card, evaluate,
                                      parse_readme)
from spaces.domain.stages import SpaceStage

README = "README.md"
REQUIREMENTS = "requirements.txt"
PRE_REQUIREMENTS = "pre-requirements.txt"
PACKAGES = "packages.txt"

# a Debian package name, optionally :arch and =version (what apt-get accepts, nothing a shell could misread)
_DEB_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.\-]*(:[a-z0-9]+)?(=[A-Za-z0-9.+~:\-]+)?$")


@dataclass(frozen=True)
class Detection:
    """A pack's claim on a tree: which SDK, and why (human sentences for the build log)."""

    sdk: Sdk
    reasons: tuple[str, ...]
    declared: bool  # True when README.md's ``sdk:`` said so, False when sniffed from the files


class BuildPack(Protocol):
    sdk: Sdk

    def detect(self, tree: RepoTree) -> Detection | None: ...

    def plan(self, tree: RepoTree, detection: Detection) -> BuildPlan: ...


@dataclass(frozen=True)
class Card:
    """README.md of a tree: its text (None when absent), the parse, and the declared ``sdk`` if any."""

    text: str | None
    parsed: CardParse

    @property
    def data(self) -> dict[str, Any]:
        return self.parsed.data

    @property
    def sdk(self) -> str | None:
        value = self.parsed.data.get("sdk")
        return value if isinstance(value, str) else None


def read_card(tree: RepoTree) -> Card:
    text = read_text(tree, README)
    return Card(text, parse_readme(text) if text is not None else CardParse({}))


def declared_or_sniffed(tree: RepoTree, sdk: Sdk, sniff: str | None) -> Detection | None:
    """The common ``detect``: README ``sdk:`` decides; only without one does ``sniff`` (a reason or None) count."""
    card = read_card(tree)
    if card.parsed.error is not None:
        return None  # a broken README matches nothing; make_plan reports the YAML error
    if card.sdk is not None:
        return Detection(sdk, (f"README.md sets `sdk: {sdk}`",), True) if card.sdk == sdk else None
    if sniff is None:
        return None
    head = "README.md has no `sdk:` key" if card.text is not None else "there is no README.md"
    return Detection(sdk, (f"{head}; {sniff}, so this is built as a {sdk} Space "
                           f"(add `sdk: {sdk}` to README.md to say so)",), False)


def space_config(tree: RepoTree, detection: Detection) -> SpaceConfig:
    """The Space's configuration for this build, or BuildConfigError (CONFIG_ERROR / NO_APP_FILE) saying why.

    A declared SDK goes through :func:`~spaces.domain.cardconfig.evaluate`, exactly what the hub shows; a sniffed
    one is checked as if README.md had said ``sdk: <sniffed>``.
    """
    card = read_card(tree)
    files = tree.files()
    if detection.declared:
        ev = evaluate(card.text, files, "")
        if ev.stage is not None or ev.config is None:
            raise BuildConfigError(ev.message, reason=ev.reason, stage=ev.stage or SpaceStage.CONFIG_ERROR)
        return ev.config
    result = check_card({**card.data, "sdk": detection.sdk}, "", card.parsed)
    if result.config is None:
        first = result.problems[0]
        raise BuildConfigError("\n".join(p.message for p in result.problems), reason=first.reason)
    config = result.config
    if config.app_file is not None and config.app_file not in files:
        raise BuildConfigError(f"{config.sdk} Spaces run `{config.app_file}`, which is not in the repository.",
                               reason=REASON_NO_APP_FILE, stage=SpaceStage.NO_APP_FILE)
    return config


def explicit_python(tree: RepoTree, config: SpaceConfig) -> str:
    """``python_version`` when README.md sets it, else "" (the builder then uses the host's default interpreter)."""
    return config.python_version if "python_version" in read_card(tree).data else ""


def parse_packages(text: str) -> tuple[str, ...]:
    """packages.txt -> Debian package names, as ``xargs apt-get install`` reads it (any whitespace separates).

    Blank lines and ``#`` comments (whole-line or trailing) are skipped. A name apt would not accept raises
    BuildConfigError naming the line, so nothing odd reaches a shell or apt.
    """
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        for name in raw.split("#", 1)[0].split():
            if not _DEB_PACKAGE.match(name):
                raise BuildConfigError(f"packages.txt line {number}: {name!r} is not a valid Debian package name "
                                       "(one package per line, e.g. `ffmpeg`).", reason="invalid_packages")
            if name not in out:
                out.append(name)
    return tuple(out)


def dependency_files(tree: RepoTree) -> dict[str, Any]:
    """The BuildPlan fields read from requirements.txt, pre-requirements.txt and packages.txt at the root."""
    return {
        "requirements": read_text(tree, REQUIREMENTS) or "",
        "pre_requirements": read_text(tree, PRE_REQUIREMENTS) or "",
        "system_packages": parse_packages(read_text(tree, PACKAGES) or ""),
    }


def dependency_reasons(tree: RepoTree) -> tuple[str, ...]:
    """One log line per dependency file found, so the author sees what the build will install."""
    files = tree.files()
    return tuple(f"found {name}" for name in (PACKAGES, PRE_REQUIREMENTS, REQUIREMENTS) if name in files)
