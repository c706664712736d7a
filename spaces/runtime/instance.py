"""What a Space runs, as the reconciler records it on the Space row (``Space.instance``, JSON).

Three shapes share one record: a running instance (``current``, its ``placement`` on a node), a revision being
swapped in (``previous`` keeps serving until ``current`` answers: the zero-downtime swap), and a *standby* (a
fresh instance frozen before anyone uses it: no placement, the ``hardware`` it was started for and ``since``,
when it started). The JSON keeps the keys it always had, so databases written before this type read the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from spaces.runtime.contracts import Handle


@dataclass(frozen=True)
class InstanceRecord:
    current: Handle
    previous: Handle | None = None
    #: where the scheduler placed it (``spaces.runtime.capacity.placement_json``); None: it holds no capacity
    placement: Mapping[str, Any] | None = field(default=None, hash=False)
    standby: bool = False
    hardware: str | None = None  # a standby's flavor when it started: another one asked for replaces it
    since: float | None = None  # when it was started (epoch seconds): its start-up timeout counts from here
    #: when it first answered (epoch seconds): after ``Policy.crash_reset_after`` of that its crashes are forgotten
    ready_at: float | None = None
    #: where ``previous`` was placed: it becomes the placement again when the swap is abandoned (the new revision
    #: failed, or a newer one replaces it) and ``previous`` is the current instance again
    previous_placement: Mapping[str, Any] | None = field(default=None, hash=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> InstanceRecord | None:
        """The record stored on a Space row; None when nothing runs (no row value, or no current instance)."""
        if not data or not data.get("current"):
            return None
        previous = data.get("previous")
        return cls(Handle.from_json(data["current"]), Handle.from_json(previous) if previous else None,
                   data.get("placement"), bool(data.get("standby")), data.get("hardware"), data.get("since"),
                   data.get("ready_at"), data.get("previous_placement"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"current": self.current.to_json(),
                               "previous": self.previous.to_json() if self.previous else None,
                               "placement": dict(self.placement) if self.placement is not None else None}
        if self.standby:
            out.update(standby=True, hardware=self.hardware)
        for key in ("since", "ready_at"):  # only when known: records written before these keys read the same
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.previous is not None and self.previous_placement is not None:
            out["previous_placement"] = dict(self.previous_placement)
        return out

    @classmethod
    def started(cls, current: Handle, placement: Mapping[str, Any] | None, previous: Handle | None = None, *,
                since: float | None = None, previous_placement: Mapping[str, Any] | None = None) -> InstanceRecord:
        return cls(current, previous, placement, since=since,
                   previous_placement=previous_placement if previous is not None else None)

    @classmethod
    def of_standby(cls, current: Handle, hardware: str, since: float) -> InstanceRecord:
        return cls(current, None, None, True, hardware, since)

    def claimed(self, placement: Mapping[str, Any]) -> InstanceRecord:
        """A standby that a visitor woke, now holding a running Space's capacity: an instance like any other."""
        return InstanceRecord(self.current, None, placement, since=self.since)

    def without_previous(self) -> InstanceRecord:
        return replace(self, previous=None, previous_placement=None)

    def reverted(self) -> InstanceRecord:
        """The swap abandoned: ``previous``, which kept serving, is the current instance again, where it was placed.
        Its start and first answer are not known here (it is not the revision being started)."""
        assert self.previous is not None
        return InstanceRecord(self.previous, None, self.previous_placement or self.placement)

    def answered(self, at: float) -> InstanceRecord:
        return replace(self, ready_at=at)

    def handles(self) -> tuple[Handle, ...]:
        return (self.current,) + ((self.previous,) if self.previous else ())
