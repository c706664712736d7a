"""Build and run logs: stored in the database (so they can be read later and replayed) and fanned out live.

``LogBus.append`` is called from any thread (builders and backends run in threads); subscribers are asyncio
queues on the server's event loop, fed with ``call_soon_threadsafe`` so a slow reader never blocks a writer.
A reader that falls too far behind loses live lines (bounded queue) but can always replay the stored ones.

Across processes (a build runs in a builder process, its follower is connected to any hub replica) lines travel on
the bus's ``logs`` channel, and every process's readers are fed from the bus only, so a line reaches a reader
once whichever process printed it. On a bus between processes a batch is published *after* it is stored: a reader
subscribes, then replays the store, so each line is either in its replay or arrives after it (the SSE endpoint
skips live lines not newer than the last one replayed). Published before storing, a line printed just before a
reader subscribed and written just after its replay would be in neither. ``end`` follows its lines the same way.
On the in-process bus (one process) lines go to readers at once, as they are appended: a replay there flushes
this process's pending lines first, which closes the same gap.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from spaces.bus import Bus, MemoryBus
from spaces.db.models import LogLine, Space, utcnow
from spaces.db.session import Database

KINDS = ("build", "run")
CHANNEL = "logs"
TICK = timedelta(microseconds=1)
log = logging.getLogger("spaces.logs")


@dataclass(frozen=True)
class LogEvent:
    ts: datetime
    data: str


class LogBus:
    """``keep``: stored lines per Space and kind; older ones are dropped as new ones are written (checked every tenth
    of ``keep`` new lines, so up to 10% more may be stored). Live readers see every line. ``bus``: how lines reach
    readers in other processes (default: this process only)."""

    def __init__(self, db: Database, keep: int = 10_000, bus: Bus | None = None) -> None:
        self.db = db
        self.keep = keep
        self.bus: Bus = bus or MemoryBus()
        self._at_once = isinstance(self.bus, MemoryBus)  # see the module's docstring
        self._unchecked: Counter[tuple[str, str]] = Counter()  # lines written per (Space, kind) since the last trim
        self._subs: dict[tuple[str, str], set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = defaultdict(set)
        self._lock = threading.Lock()
        self._last_ts = datetime.min.replace(tzinfo=timezone.utc)
        # Lines are written in batches: a build prints hundreds of lines a second, and one transaction per line
        # would keep the database's write lock busy for everyone else. Readers flush first (see history).
        self._pending: list[dict] = []
        self._flush_lock = threading.Lock()
        self._kick = threading.Event()
        self._unsubscribe = self.bus.subscribe(CHANNEL, self._receive)
        threading.Thread(target=self._writer, name="log-writer", daemon=True).start()

    def append(self, space_id: str, kind: str, data: str) -> None:
        data = data if data.endswith("\n") else data + "\n"
        with self._lock:
            # strictly increasing: a follower tells replayed lines from live ones by their time (see the endpoint)
            ts = self._last_ts = max(utcnow(), self._last_ts + TICK)
            self._pending.append({"space_id": space_id, "kind": kind, "ts": ts, "data": data})
        self._kick.set()
        if self._at_once:
            self.bus.publish(CHANNEL, _message(space_id, kind, [(ts, data)]))

    def end(self, space_id: str, kind: str) -> None:
        """Tell live readers of ``kind`` that what they follow may be over (a build finished): each then checks
        whether to stop. Delivered even to a full queue (a line is dropped instead), or a reader would never end."""
        if not self._at_once:
            try:
                self.flush()  # the lines before it are published first (flush publishes even what it fails to store)
            except Exception:
                log.exception("writing log lines failed")
        self.bus.publish(CHANNEL, {**_message(space_id, kind, []), "end": True})

    def _receive(self, message: dict[str, Any]) -> None:
        """A bus message: lines (or an end) for the readers of this process. On the bus's thread: quick."""
        try:
            key = (str(message["space_id"]), str(message["kind"]))
            with self._lock:
                subs = list(self._subs.get(key, ()))
            if not subs:
                return
            events = [LogEvent(datetime.fromisoformat(ts), data) for ts, data in message.get("lines", ())]
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed log message")
            return
        end = bool(message.get("end"))
        for loop, queue in subs:
            loop.call_soon_threadsafe(_offer_end if end else _offer, queue, events)

    def flush(self) -> None:
        """Write the pending lines. Lines of a Space deleted since they were printed (a stopping app's last
        words) are dropped; they must never cost the other Spaces' lines, or fail the caller's own work."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._store(batch)
            finally:  # stored or not, live readers get them (a failed batch is lost from the store only)
                if not self._at_once:
                    self._publish(batch)

    def _publish(self, batch: list[dict]) -> None:
        """One message per (Space, kind) of the batch, lines in order."""
        by_key: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
        for r in batch:
            by_key[(r["space_id"], r["kind"])].append((r["ts"], r["data"]))
        for (space_id, kind), lines in by_key.items():
            self.bus.publish(CHANNEL, _message(space_id, kind, lines))

    def _store(self, batch: list[dict]) -> None:
        try:
            self._insert(batch)
        except IntegrityError:
            with self.db.session() as s:
                alive = set(s.scalars(select(Space.id).where(Space.id.in_({r["space_id"] for r in batch}))))
            kept = [r for r in batch if r["space_id"] in alive]
            try:
                self._insert(kept)
            except IntegrityError:  # another Space went in between: this batch is not worth a third try
                log.warning("dropped %d log lines of Spaces deleted while they were written", len(batch))
                return
            batch = kept  # a deleted Space's lines were not stored: nothing of it to count for trimming
        try:
            self._trim(batch)
        except Exception:  # the lines are stored; trimming is tried again with the next batch of this Space
            log.exception("trimming stored log lines failed")

    def _trim(self, batch: list[dict]) -> None:
        """Keep the newest ``keep`` lines of each (Space, kind) that has had a tenth of that written since its last
        trim: a chatty app must not grow the database (and every replay, and the clear at its next start) forever."""
        self._unchecked.update((r["space_id"], r["kind"]) for r in batch)
        due = [key for key, n in self._unchecked.items() if n >= max(1, self.keep // 10)]
        for space_id, kind in due:
            mine = (LogLine.space_id == space_id, LogLine.kind == kind)
            with self.db.session() as s:
                oldest_kept = s.scalar(select(LogLine.id).where(*mine).order_by(LogLine.id.desc())
                                       .offset(self.keep - 1).limit(1))
                if oldest_kept is not None:
                    s.execute(delete(LogLine).where(*mine, LogLine.id < oldest_kept))
            del self._unchecked[(space_id, kind)]

    def _insert(self, rows: list[dict]) -> None:
        if rows:
            with self.db.session() as s:
                s.execute(insert(LogLine), rows)

    def _writer(self) -> None:
        while True:
            self._kick.wait()
            time.sleep(0.2)  # gather a batch
            self._kick.clear()
            try:
                self.flush()
            except Exception:  # a failed batch is dropped from the store, never from live readers
                log.exception("writing log lines failed")

    def clear(self, space_id: str, kind: str) -> None:
        """Forget the stored lines of ``kind`` (a new run or build starts). One statement: a chatty app leaves tens of
        thousands of lines, and deleting them one by one took a second per 20,000 on the reconciler's thread, in
        the way of the very wake that started the new run."""
        self.flush()
        with self.db.session() as s:
            s.execute(delete(LogLine).where(LogLine.space_id == space_id, LogLine.kind == kind))

    def history(self, space_id: str, kind: str, tail: int | None = None) -> list[LogEvent]:
        self.flush()
        with self.db.session() as s:
            q = select(LogLine).where(LogLine.space_id == space_id, LogLine.kind == kind).order_by(LogLine.id.desc())
            if tail:
                q = q.limit(tail)
            rows = list(s.scalars(q))
        # SQLite hands datetimes back without a zone; everything here is UTC, and live events are aware
        return [LogEvent(r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=timezone.utc), r.data) for r in reversed(rows)]

    def subscribe(self, space_id: str, kind: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)
        with self._lock:
            self._subs[(space_id, kind)].add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, space_id: str, kind: str, queue: asyncio.Queue) -> None:
        with self._lock:
            subs = self._subs.get((space_id, kind), set())
            subs.discard((asyncio.get_running_loop(), queue))
            if not subs:
                self._subs.pop((space_id, kind), None)


#: the marker ``end`` puts in a reader's queue, after the lines
END = LogEvent(datetime.min.replace(tzinfo=timezone.utc), "")


def _message(space_id: str, kind: str, lines: list[tuple[datetime, str]]) -> dict[str, Any]:
    return {"space_id": space_id, "kind": kind, "lines": [(ts.isoformat(), data) for ts, data in lines]}


def _offer_end(queue: asyncio.Queue, _events: list[LogEvent]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(END)


def _offer(queue: asyncio.Queue, events: list[LogEvent]) -> None:
    for event in events:
        if queue.full():
            return
        queue.put_nowait(event)
