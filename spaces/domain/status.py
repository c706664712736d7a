"""What every page says about a Space's state, derived in one place from what the database records.

The Space page's badge, its App tab (the app, the build stepper or the error), the sleeping banner, the Logs tab's
stage line, the cards of the list pages and the README badge all show a :class:`Status` made by :func:`derive`; the
hub streams the same value to open pages as it changes (``GET /api/spaces/{id}/status``, server-sent events), and
one script (``spaces.js``) renders it. Nothing on a page computes a status of its own, so no two parts can disagree
and nothing is left showing a state the Space has left.

The stepper: ``queued -> building (phase) -> starting -> running``; an error stops it at the step that failed.

The proxy's own waiting page, which the App tab's frame shows while the app cannot answer yet, is drawn from the
same :func:`derive` over what the route table carries (the stage, reason and message the reconciler recorded), so
the frame and the page around it say the same thing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: stage -> (label, tone); the tone is the badge's css class (``badge-{tone}``)
LABELS: dict[str, tuple[str, str]] = {
    "NO_APP_FILE": ("No app file", "error"), "CONFIG_ERROR": ("Config error", "error"),
    "BUILDING": ("Building", "busy"), "BUILD_ERROR": ("Build error", "error"),
    "APP_STARTING": ("Starting", "busy"), "RUNNING": ("Running", "ok"),
    "RUNNING_BUILDING": ("Running · building", "busy"), "RUNNING_APP_STARTING": ("Running · restarting", "busy"),
    "RUNTIME_ERROR": ("Runtime error", "error"), "PAUSED": ("Paused", "idle"), "STOPPED": ("Stopped", "idle"),
    "SLEEPING": ("Sleeping", "idle"), "DELETING": ("Deleting", "idle"),
}

#: stages in which the App tab shows the app's frame (the proxy answers it: the app, or its own waking page)
SERVING = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING", "SLEEPING", "STOPPED", "APP_STARTING"})
ERRORS = frozenset({"NO_APP_FILE", "CONFIG_ERROR", "BUILD_ERROR", "RUNTIME_ERROR"})
ASLEEP = frozenset({"SLEEPING", "STOPPED"})

STEPS = ("queued", "building", "starting", "running")
#: a build's phases, as the builder writes them at the start of each build log line (spaces.services.builds)
PHASES: dict[str, str] = {
    "queued": "starting the build", "fetching": "fetching the code", "resolving": "resolving the environment",
    "installing": "installing packages", "built": "built", "failed": "failed",
}
#: the step an error stage stopped at
FAILED_AT = {"NO_APP_FILE": "queued", "CONFIG_ERROR": "queued", "BUILD_ERROR": "building",
             "RUNTIME_ERROR": "starting"}
WAKE_HINT = "Opening it wakes it up: the app appears below in a few seconds."
WAKING_MESSAGE = "A visit woke it: the app opens in a few seconds."
#: the reason the runtime records for a start that waits for room on a node (spaces.runtime.capacity)
WAITING_FOR_CAPACITY = "waiting_for_capacity"


@dataclass(frozen=True)
class Observed:
    """What the database says: the Space's stage, reason and message, its newest build's status (``queued``,
    ``running``, ``built``, ``failed``, ``superseded`` or None) and, while that build runs, its phase."""

    stage: str
    reason: str = ""
    message: str = ""
    build: str | None = None
    phase: str | None = None
    #: asleep on record, but a visit asked for it (the wake service wrote it down, or this proxy wakes it)
    waking: bool = False


@dataclass(frozen=True)
class Status:
    stage: str
    label: str  # the badge's text
    tone: str  # ok | busy | error | idle
    view: str  # the App tab's body: "app" (the frame), "progress" (the stepper), "error" or "paused"
    step: str | None  # where on the stepper (STEPS), None off it (asleep, paused)
    failed: bool  # the step failed: the stepper stops there in red
    phase: str | None  # while building: what the builder does now, in words
    busy: bool  # something is under way: the current step spins
    banner: str | None  # "sleeping" | "stopped": the App tab's banner above the frame
    headline: str  # one line for the panel and the banner
    message: str  # the stage's message (why it is in this stage), or the banner's sentence

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def phase_of(line: str) -> str | None:
    """The phase a build log line starts with, or None for a line that names none."""
    word = line.split(None, 1)[0] if line.strip() else ""
    return word if word in PHASES else None


def label(stage: str) -> tuple[str, str]:
    return LABELS.get(stage, (stage.replace("_", " ").capitalize(), "idle"))


def derive(o: Observed, *, sleep_after: str = "") -> Status:
    """The status of a Space as every page shows it. ``sleep_after``: how long without visitors sends it to sleep
    ("2 days"), for the banner's default sentence."""
    text, tone = label(o.stage)
    step, phase, busy, failed = _step(o)
    banner = ("sleeping" if o.stage == "SLEEPING" else "stopped") if o.stage in ASLEEP else None
    message = o.message or ""
    headline = _headline(o.stage, text, step)
    if banner and o.waking:
        text, tone, headline, message = "Waking up", "busy", "This Space is waking up", WAKING_MESSAGE
    elif banner:
        message = _asleep_sentence(o.message, sleep_after)
    elif o.reason == WAITING_FOR_CAPACITY and step == "starting":
        headline = "This Space is waiting for room on the server"
    return Status(stage=o.stage, label=text, tone=tone, view=_view(o.stage), step=step,
                  failed=failed, phase=phase, busy=busy, banner=banner, headline=headline, message=message)


def _view(stage: str) -> str:
    if stage in SERVING:
        return "app"
    return "error" if stage in ERRORS else "paused" if stage == "PAUSED" else "progress"


def step_states(status: Status) -> list[tuple[str, str]]:
    """Each step and how the stepper shows it: done, current (spinning while busy), failed or todo."""
    at = STEPS.index(status.step) if status.step in STEPS else -1
    out = []
    for i, name in enumerate(STEPS):
        if i < at or (i == at and not status.busy and not status.failed):
            out.append((name, "done"))
        elif i == at:
            out.append((name, "failed" if status.failed else "current"))
        else:
            out.append((name, "todo"))
    return out


def _step(o: Observed) -> tuple[str | None, str | None, bool, bool]:
    if o.stage in ERRORS:
        return FAILED_AT[o.stage], None, False, True
    if o.stage in ("BUILDING", "RUNNING_BUILDING"):
        if o.build == "queued" or (o.build is None and o.reason == "build_queued"):
            return "queued", None, True, False
        return "building", PHASES.get(o.phase or "queued") if o.build == "running" else None, True, False
    if o.stage in ("APP_STARTING", "RUNNING_APP_STARTING"):
        return "starting", None, True, False
    if o.stage == "RUNNING":
        return "running", None, False, False
    return None, None, False, False


def _headline(stage: str, text: str, step: str | None) -> str:
    if stage in ASLEEP:
        return f"This Space is {'sleeping' if stage == 'SLEEPING' else 'stopped'}"
    if stage == "PAUSED":
        return "This Space is paused"
    if stage in ERRORS:
        return text
    if step == "queued":
        return "Waiting for a builder"
    return text + ("…" if stage != "RUNNING" and step else "")


def _asleep_sentence(message: str, sleep_after: str) -> str:
    said = message or (f"It had no visitors for {sleep_after}, so it went to sleep to free its hardware."
                       if sleep_after else "It went to sleep to free its hardware.")
    return said if "wake" in said.lower() else f"{said} {WAKE_HINT}"
