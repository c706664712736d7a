"""App ports of the local backend: from their own range, never one in use, never one port for two starts."""

from __future__ import annotations

import socket

import pytest

from spaces.runtime.contracts import StartFailed
from spaces.runtime.sandbox import PortAllocator


def _free_block(size: int) -> int:
    """The first port of ``size`` consecutive bindable ports below the ephemeral range."""
    for lo in range(21000, 32000, 97):
        socks = []
        try:
            for p in range(lo, lo + size):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return lo
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip("no free block of ports")


def test_ports_come_from_the_range_and_are_never_handed_out_twice() -> None:
    lo = _free_block(8)
    ports = PortAllocator(lo, lo + 7)
    taken = [ports.take() for _ in range(8)]
    assert sorted(taken) == list(range(lo, lo + 8))  # all distinct although none is bound yet
    with pytest.raises(StartFailed, match="no free port left"):
        ports.take()


def test_a_port_in_use_is_skipped() -> None:
    lo = _free_block(2)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", lo))
        listener.listen()
        ports = PortAllocator(lo, lo + 1)
        assert ports.take() == lo + 1
        with pytest.raises(StartFailed):
            ports.take()


def test_a_held_port_is_free_again_after_the_hold() -> None:
    lo = _free_block(1)
    ports = PortAllocator(lo, lo, hold_s=0.0)
    assert ports.take() == lo
    assert ports.take() == lo  # nothing bound it: handed out again once the hold is over


@pytest.mark.parametrize("lo,hi", [(80, 100), (30000, 20000), (60000, 70000)])
def test_a_bad_range_is_refused(lo: int, hi: int) -> None:
    with pytest.raises(ValueError):
        PortAllocator(lo, hi)


@pytest.mark.parametrize("env", [{"SPACES_LOCAL__PORT_MIN": "30000", "SPACES_LOCAL__PORT_MAX": "20000"},
                                 {"SPACES_LOCAL__PORT_MIN": "80"}])
def test_a_bad_range_in_the_settings_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    from pydantic import ValidationError

    from spaces.settings import Settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match="port_m"):
        Settings()
