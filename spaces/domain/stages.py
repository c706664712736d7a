"""Space stages, reason codes and the stage a Space shows for its state.

Stage names are Hugging Face's ``SpaceStage`` values so the real clients understand them. Every stage change
records a reason (a short code) and a message (a sentence): "why is my Space not running" always has an answer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Protocol


class SpaceStage(str, Enum):
    NO_APP_FILE = "NO_APP_FILE"
    CONFIG_ERROR = "CONFIG_ERROR"
    BUILDING = "BUILDING"
    BUILD_ERROR = "BUILD_ERROR"
    APP_STARTING = "APP_STARTING"
    RUNNING = "RUNNING"
    RUNNING_BUILDING = "RUNNING_BUILDING"
    RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    SLEEPING = "SLEEPING"
    DELETING = "DELETING"


class RouteState(str, Enum):
    """What the proxy does with a Space's host (the reconciler publishes it; ``spaces.proxy.routes.Route.state``
    carries the value): serve it, show that it starts, wake it, or show why it cannot run."""

    RUNNING = "running"
    STARTING = "starting"
    SLEEPING = "sleeping"
    PAUSED = "paused"
    ERROR = "error"


#: stages that ``wait_for_space`` (and our own waiters) keep polling through
INTERMEDIATE = frozenset(
    {SpaceStage.BUILDING, SpaceStage.RUNNING_BUILDING, SpaceStage.APP_STARTING, SpaceStage.RUNNING_APP_STARTING}
)

#: stages a visitor cannot fix by waiting; the proxy shows the message instead of waking the Space
ERROR_STAGES = frozenset(
    {SpaceStage.NO_APP_FILE, SpaceStage.CONFIG_ERROR, SpaceStage.BUILD_ERROR, SpaceStage.RUNTIME_ERROR}
)


class Staged(Protocol):
    """What carries a stage: the Space row (``spaces.db.models.Space``), or anything shaped like it in a test."""

    stage: str
    stage_reason: str
    stage_message: str
    stage_changed_at: datetime


def set_stage(space: Staged, stage: SpaceStage, reason: str, message: str, now: datetime | None = None) -> None:
    """The one way a Space's stage changes (builds, the reconciler, API writes, restores all call this).

    ``stage_changed_at`` moves only when something changed: the sleeper and the reconciler measure how long a
    Space has been asleep or starting from it, and a step that finds nothing new must not restart that clock.
    """
    if (space.stage, space.stage_reason, space.stage_message) != (stage.value, reason, message):
        space.stage, space.stage_reason, space.stage_message = stage.value, reason, message
        space.stage_changed_at = now or datetime.now(timezone.utc)
