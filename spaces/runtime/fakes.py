"""A backend for testing the layers above the ``Backend`` Protocol (the reconciler, the scheduler's callers)
without processes: each instance is only its phase. Shipped in the package, like HTTPX's MockTransport, so the
tests share one fake that follows the Protocol instead of each keeping a copy that drifts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from spaces.runtime.contracts import Handle, Observed, Phase


class PhaseBackend:
    """Instances as phases; a start listens at once unless ``listening`` is False. A test moves an instance by
    setting ``phases[ref]``; ``exit_code`` and ``exit_message`` are what an EXITED instance reports, ``lines``
    what each instance printed, ``on_poll`` runs before every poll (to change the world mid-pass)."""

    name = "fake"

    def __init__(self) -> None:
        self.phases: dict[str, Phase] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.listening = True
        self.exit_code: int | None = None
        self.exit_message = ""
        self.lines: dict[str, list[str]] = {}
        self.on_poll: Callable[[], None] | None = None
        self._refs = itertools.count(1)

    def start(self) -> Handle:
        ref = str(next(self._refs))
        self.phases[ref] = Phase.RUNNING if self.listening else Phase.STARTING
        self.started.append(ref)
        return Handle("fake", ref, "local", {"port": 7000 + int(ref)})

    def poll(self, handle: Handle) -> Observed:
        if self.on_poll is not None:
            self.on_poll()
        phase = self.phases.get(handle.ref, Phase.GONE)
        if phase == Phase.GONE:
            return Observed(phase)
        exited = phase == Phase.EXITED
        return Observed(phase, ("127.0.0.1", handle.data["port"]), self.exit_code if exited else None,
                        self.exit_message)

    def stop(self, handle: Handle) -> None:
        if self.phases.pop(handle.ref, None) is not None:
            self.stopped.append(handle.ref)

    def freeze(self, handle: Handle) -> None:
        self.phases[handle.ref] = Phase.FROZEN

    def thaw(self, handle: Handle) -> None:
        self.phases[handle.ref] = Phase.RUNNING

    def logs(self, handle: Handle, follow: bool = False) -> Iterator[str]:
        return iter([] if follow else self.lines.get(handle.ref, []))

    def list(self, labels: dict[str, str]) -> list[Handle]:
        return []


class ClaimsKept:
    """A backend's storage of buckets (``HoldsClaims``): the ids it holds, and those it was told to give back.
    ``on_list`` runs as it lists and returns what was made at that moment (a bucket created mid-sweep)."""

    def __init__(self, held: set[str], on_list: Callable[[], set[str]] = set) -> None:
        self.held, self.forgotten, self.on_list = held, [], on_list

    def claims(self) -> set[str]:
        self.held |= self.on_list()
        return set(self.held)

    def forget_claim(self, bucket_id: str) -> None:
        self.forgotten.append(bucket_id)
