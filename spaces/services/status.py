"""What the database records about a Space's state, read for :func:`spaces.domain.status.derive`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces.db.models import Build, Space
from spaces.domain.status import ASLEEP, Observed, phase_of
from spaces.services.logs import LogBus


def observe(s: Session, logs: LogBus, space: Space) -> Observed:
    """The stage, the newest build's status and, while that build runs, the phase its newest log line names."""
    build = s.scalar(select(Build.status).where(Build.space_id == space.id).order_by(Build.id.desc()).limit(1))
    phase = None
    if build == "running":
        last = logs.history(space.id, "build", 1)
        phase = phase_of(last[0].data) if last else None
    return Observed(stage=space.stage, reason=space.stage_reason or "", message=space.stage_message or "",
                    build=build, phase=phase, waking=waking(space))


def waking(space: Space) -> bool:
    """Asleep on record, but no longer wanted asleep: a visit's wake is under way (the stage moves once the
    reconciler acts on it)."""
    return space.stage in ASLEEP and not space.asleep
