"""The status every page shows (spaces.domain.status) for one Space row, and its live stream to open pages.

The stream is the database read again whenever a hint says it may have changed: a line of the Space's build log
(a new phase, the build's end), a ``nudge`` or ``ready`` on the bus (a change the controller acts on, an app that
answers), and at the latest every ``POLL_SECONDS`` (the bus only carries hints: what the reconciler writes without
a message, such as a Space going to sleep, is found by the timer). An event is sent only when the status changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from spaces.db.models import Space
from spaces.domain.status import Observed, Status, derive
from spaces.hub.serialize import gc_timeout
from spaces.services.status import observe, waking

POLL_SECONDS = 2.0
KEEPALIVE_SECONDS = 15.0
HINTS = ("nudge", "ready")  # bus channels whose messages name a Space whose state may have moved


def duration(seconds: int | None) -> str:
    if seconds is None or seconds < 0:
        return "never"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def status_of(hub: Any, s: Any, space: Space) -> Status:
    return derive(observe(s, hub.logs, space), sleep_after=duration(gc_timeout(space)))


def card_status(space: Space) -> Status:
    """What a card shows: the stage alone (no build phase), for the list pages' many Spaces at once."""
    return derive(Observed(space.stage, space.stage_reason or "", space.stage_message or "", waking=waking(space)),
                  sleep_after=duration(gc_timeout(space)))


def sse(event: str, data: dict[str, Any] | None) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(hub: Any, space_id: str, read: Callable[[], Awaitable[Status | None]],
                 disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """``status`` events for one Space while the reader stays; ``gone`` (and the end) once ``read`` finds it no
    longer visible (deleted, renamed, made private)."""
    async def read_one() -> dict[str, Status] | None:
        now = await read()
        return None if now is None else {space_id: now}

    async for change in _watch(hub, [space_id], read_one, disconnected, build_lines=True):
        if change is KEEPALIVE:
            yield b": keep-alive\n\n"
        elif change is None:
            yield sse("gone", None)
        else:
            yield sse("status", change[space_id].to_json())


async def stream_many(hub: Any, ids: dict[str, str], read: Callable[[], Awaitable[dict[str, Status]]],
                      disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """For list pages: ``status`` events ``{"id": repo_id, ...}`` for each of the Spaces (``ids``: Space id ->
    repo id) whose status changed. Only the stage is read (the cards show no build phase)."""
    async for change in _watch(hub, list(ids), read, disconnected, build_lines=False):
        if change is KEEPALIVE:
            yield b": keep-alive\n\n"
        elif change:
            for space_id, now in change.items():
                yield sse("status", {"id": ids[space_id], **now.to_json()})


KEEPALIVE: dict[str, Status] = {}  # a marker: time to see whether the reader is still there


async def _watch(hub: Any, space_ids: list[str], read: Callable[[], Awaitable[dict[str, Status] | None]],
                 disconnected: Callable[[], Awaitable[bool]], *,
                 build_lines: bool) -> AsyncIterator[dict[str, Status] | None]:
    """What changed since the last read (Space id -> Status), read again on every hint and timer; None (and the
    end) when ``read`` says the Spaces are gone; KEEPALIVE every KEEPALIVE_SECONDS without a change."""
    loop = asyncio.get_running_loop()
    hint = asyncio.Event()
    watched = set(space_ids)

    def on_bus(message: dict[str, Any]) -> None:  # the bus's thread: hand over to the loop, never block
        if message.get("space_id") is None or message.get("space_id") in watched:
            loop.call_soon_threadsafe(hint.set)

    unsubscribes = [hub.logs.bus.subscribe(channel, on_bus) for channel in HINTS]
    queues = [(space_id, hub.logs.subscribe(space_id, "build")) for space_id in space_ids] if build_lines else []
    drains = [asyncio.create_task(_forward(queue, hint)) for _, queue in queues]
    try:
        last: dict[str, Status] = {}
        quiet = 0.0
        while True:
            hint.clear()
            now = await read()
            if now is None:
                yield None
                return
            changed = {k: v for k, v in now.items() if last.get(k) != v}
            if changed:
                last.update(changed)
                quiet = 0.0
                yield changed
            try:
                await asyncio.wait_for(hint.wait(), POLL_SECONDS)
                await asyncio.sleep(0.1)  # a burst of lines (a build prints hundreds a second) is one read
            except asyncio.TimeoutError:
                quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                if await disconnected():
                    return
                yield KEEPALIVE
    finally:
        for drain in drains:
            drain.cancel()
        for space_id, queue in queues:
            hub.logs.unsubscribe(space_id, "build", queue)
        for unsubscribe in unsubscribes:
            unsubscribe()


async def _forward(queue: asyncio.Queue, hint: asyncio.Event) -> None:
    while True:
        await queue.get()
        hint.set()
