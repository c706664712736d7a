"""Memory pressure from /proc/meminfo: when sleeping Spaces give their memory back before their time."""

from __future__ import annotations

from spaces.runtime.pressure import available_fraction, low_memory

MEMINFO = """MemTotal:       24683520 kB
MemFree:        20000000 kB
MemAvailable:    %d kB
Buffers:          100000 kB
"""


def test_available_fraction_is_memavailable_over_memtotal():
    assert available_fraction(MEMINFO % 12341760) == 0.5


def test_low_memory_below_the_threshold_only():
    assert low_memory(0.15, MEMINFO % 2468352)  # 10% available
    assert not low_memory(0.15, MEMINFO % 12341760)  # 50% available
    assert low_memory(1.0, MEMINFO % 24000000)  # 1.0: always under pressure (tests use it)
    assert not low_memory(0.0, MEMINFO % 0)  # 0: never


def test_unknown_memory_is_no_pressure():
    assert available_fraction("MemTotal: 100 kB\n") is None
    assert not low_memory(0.5, "garbage")


def test_this_machine_has_a_reading():
    fraction = available_fraction()
    assert fraction is not None and 0 < fraction <= 1
