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
from spaces.domain.status import Status, derive
from spaces.hub.serialize import gc_timeout
from spaces.services.status import observe

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


def sse(event: str, data: dict[str, Any] | None) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def stream(hub: Any, space_id: str, read: Callable[[], Awaitable[Status | None]],
                 disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
    """``status`` events for one Space while the reader stays; ``gone`` (and the end) once ``read`` finds it no
    longer visible (deleted, renamed, made private)."""
    loop = asyncio.get_running_loop()
    hint = asyncio.Event()

    def on_bus(message: dict[str, Any]) -> None:  # the bus's thread: hand over to the loop, never block
        if message.get("space_id") in (None, space_id):
            loop.call_soon_threadsafe(hint.set)

    unsubscribes = [hub.logs.bus.subscribe(channel, on_bus) for channel in HINTS]
    lines = hub.logs.subscribe(space_id, "build")
    drain = asyncio.create_task(_forward(lines, hint))
    try:
        last: Status | None = None
        quiet = 0.0
        while True:
            hint.clear()
            now = await read()
            if now is None:
                yield sse("gone", None)
                return
            if now != last:
                last, quiet = now, 0.0
                yield sse("status", now.to_json())
            try:
                await asyncio.wait_for(hint.wait(), POLL_SECONDS)
                await asyncio.sleep(0.1)  # a burst of lines (a build prints hundreds a second) is one read
            except asyncio.TimeoutError:
                quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                if await disconnected():
                    return
                yield b": keep-alive\n\n"
    finally:
        drain.cancel()
        hub.logs.unsubscribe(space_id, "build", lines)
        for unsubscribe in unsubscribes:
            unsubscribe()


async def _forward(queue: asyncio.Queue, hint: asyncio.Event) -> None:
    while True:
        await queue.get()
        hint.set()
