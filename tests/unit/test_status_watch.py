"""spaces.hub.status.stream: an event only when the status changed, a re-read on a bus hint or a build log line
for this Space (not another's), ``gone`` and the end when the Space can no longer be read."""

from __future__ import annotations

import asyncio

import pytest

from spaces.bus import MemoryBus
from spaces.domain.status import Observed, derive
from spaces.hub import status


class Logs:
    """What the stream uses of spaces.services.logs.LogBus: its bus and live build-line queues."""

    def __init__(self) -> None:
        self.bus = MemoryBus()
        self.queues: dict[str, asyncio.Queue] = {}

    def subscribe(self, space_id: str, kind: str) -> asyncio.Queue:
        self.queues[space_id] = asyncio.Queue()
        return self.queues[space_id]

    def unsubscribe(self, space_id: str, kind: str, queue: asyncio.Queue) -> None:
        del self.queues[space_id]


class Hub:
    def __init__(self) -> None:
        self.logs = Logs()


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.fixture(autouse=True)
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "POLL_SECONDS", 3600.0)  # only hints can cause a read here


def test_events_only_on_change_and_hints_wake_the_reader() -> None:
    async def main() -> list:  # noqa: ANN202
        hub, reads = Hub(), []
        states = iter(["BUILDING", "BUILDING", "APP_STARTING", "RUNNING", None])

        async def read():  # noqa: ANN202
            stage = next(states)
            reads.append(stage)
            return derive(Observed(stage)) if stage else None

        gen = status.stream(hub, "s1", read, lambda: asyncio.sleep(0, False))
        got = [await gen.__anext__()]  # BUILDING
        hub.logs.bus.publish("nudge", {"space_id": "other"})  # another Space's: no read
        pending = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.3)
        assert reads == ["BUILDING"] and not pending.done()
        hub.logs.bus.publish("nudge", {"space_id": "s1"})  # BUILDING again: read, nothing sent
        await asyncio.sleep(0.3)
        assert reads == ["BUILDING", "BUILDING"] and not pending.done()
        hub.logs.queues["s1"].put_nowait(object())  # a build log line: APP_STARTING
        got.append(await pending)
        hub.logs.bus.publish("ready", {"space_id": "s1"})
        got.append(await gen.__anext__())
        hub.logs.bus.publish("nudge", {"space_id": None})  # "look at all": None, gone
        got.append(await gen.__anext__())
        with pytest.raises(StopAsyncIteration):
            await gen.__anext__()
        assert "s1" not in hub.logs.queues  # unsubscribed
        return got

    got = run(main())
    assert [g.split(b"\n")[0] for g in got] == [b"event: status"] * 3 + [b"event: gone"]
    assert [b'"stage": "%s"' % s in g for g, s in zip(got, [b"BUILDING", b"APP_STARTING", b"RUNNING"])] == [True] * 3
