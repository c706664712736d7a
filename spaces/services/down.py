"""``spaces down``'s database part: every Space is recorded as stopped, and as asleep, so nothing starts by itself.

An operator who took the platform down wants it to come back quietly: after ``spaces down`` the next ``spaces
serve`` starts no Space until its first visitor (a visit wakes it, as a Space that slept; the owner's restart
does too). Paused Spaces stay paused. Their usage (billing) ends now; their instance records are cleared, since
what they named was stopped. Builds that were running are queued again by the next ``spaces serve``, as after a
crash.
"""

from __future__ import annotations

from sqlalchemy import or_, select

from spaces.db.models import Space, UsageInterval, utcnow
from spaces.db.session import Database
from spaces.domain.stages import SpaceStage

REASON = "stopped_by_operator"
MESSAGE = "Stopped by the operator (spaces down); opening it starts it again."


def mark_down(db: Database) -> int:
    """Record every Space as stopped and asleep (paused ones as paused); return how many were running or had an
    instance."""
    from spaces.services.spaces import SpaceService

    changed = 0
    with db.session() as s:
        for row in s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))):
            row.ended_at = utcnow()
        for space in s.scalars(select(Space).where(or_(Space.instance.is_not(None), Space.asleep.is_(False)))):
            if space.instance is not None:
                changed += 1
            space.instance, space.instance_sha, space.hardware_current, space.queued_at = None, None, None, None
            if space.paused:
                continue
            space.asleep = True
            stage = SpaceStage.SLEEPING if space.hardware == "cpu-basic" else SpaceStage.STOPPED
            if space.stage not in (SpaceStage.NO_APP_FILE.value, SpaceStage.CONFIG_ERROR.value,
                                   SpaceStage.BUILD_ERROR.value, SpaceStage.BUILDING.value):
                SpaceService.set_stage(space, stage, REASON, MESSAGE)
    return changed
