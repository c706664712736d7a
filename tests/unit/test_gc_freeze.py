"""``spaces serve`` freezes its start-up heap once the hub serves (and not when SPACES_GC_FREEZE=false)."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

import pytest

from spaces.platform import _freeze_heap_once_started
from spaces.settings import Settings


@pytest.fixture(autouse=True)
def _unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_heap_is_frozen_only_once_the_server_has_started() -> None:
    server = SimpleNamespace(started=False)

    async def run() -> None:
        task = asyncio.create_task(_freeze_heap_once_started(server))
        await asyncio.sleep(0.15)
        assert gc.get_freeze_count() == 0 and not task.done()  # still starting: nothing frozen yet
        server.started = True
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert gc.get_freeze_count() > 0


def test_off_freezes_nothing() -> None:
    asyncio.run(_freeze_heap_once_started(SimpleNamespace(started=True), enabled=False))
    assert gc.get_freeze_count() == 0


def test_the_setting_is_on_by_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_freeze is True
    monkeypatch.setenv("SPACES_GC_FREEZE", "false")
    assert Settings().gc_freeze is False
