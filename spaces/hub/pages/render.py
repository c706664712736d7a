"""Jinja2 rendering for the pages: one Environment per app, filters for dates, sizes, colors and stages."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from spaces.domain.stages import ERROR_STAGES, INTERMEDIATE, SpaceStage
from spaces.domain.status import LABELS, SERVING, step_states
from spaces.hub.status import duration

HUB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = HUB_DIR / "templates"
STATIC_DIR = HUB_DIR / "static"

#: README colorFrom / colorTo names (the Hub's palette) -> CSS colors
COLORS = {
    "red": "#f87171", "yellow": "#facc15", "green": "#4ade80", "blue": "#60a5fa", "indigo": "#818cf8",
    "purple": "#a78bfa", "pink": "#f472b6", "gray": "#9ca3af", "grey": "#9ca3af", "orange": "#fb923c",
}

#: stage -> (label, css class): one table (spaces.domain.status) for the pages, the stream and the script
STAGES = LABELS


def stage_info(stage: str) -> dict[str, Any]:
    label, css = STAGES.get(stage, (stage.replace("_", " ").capitalize(), "idle"))
    known = stage in SpaceStage.__members__
    return {"stage": stage, "label": label, "css": css, "serving": stage in SERVING,
            "error": known and SpaceStage(stage) in ERROR_STAGES,
            "busy": known and SpaceStage(stage) in INTERMEDIATE}


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def timeago(dt: datetime | None) -> str:
    if dt is None:
        return "never"
    seconds = (datetime.now(timezone.utc) - _aware(dt)).total_seconds()
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def isodate(dt: datetime | None) -> str:
    return _aware(dt).strftime("%Y-%m-%d %H:%M UTC") if dt else ""


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def gradient(card: dict | None) -> str:
    card = card or {}
    start = COLORS.get(str(card.get("colorFrom", "")).lower(), COLORS["purple"])
    end = COLORS.get(str(card.get("colorTo", "")).lower(), COLORS["indigo"])
    return f"background: linear-gradient(135deg, {start}, {end})"


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    except OSError:
        return "0"


class Renderer:
    """Owns the Jinja2 environment. Static URLs carry a content hash so browsers may cache them for long."""

    def __init__(self, templates_dir: Path = TEMPLATES_DIR, static_dir: Path = STATIC_DIR) -> None:
        self.env = Environment(loader=FileSystemLoader(str(templates_dir)),
                               autoescape=select_autoescape(["html", "xml"]), trim_blocks=True, lstrip_blocks=True)
        self.static_dir = static_dir
        self._versions: dict[str, str] = {}
        self.env.filters.update(timeago=timeago, isodate=isodate, filesize=filesize, duration=duration,
                                gradient=gradient)
        self.env.globals.update(stage_info=stage_info, static=self.static_url, step_states=step_states)

    def static_url(self, name: str) -> str:
        version = self._versions.get(name)
        if version is None:
            version = self._versions[name] = _file_hash(self.static_dir / name)
        return f"/static/{name}?v={version}"

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)
