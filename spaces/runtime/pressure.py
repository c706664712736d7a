"""Memory pressure on this machine: when it is high, sleeping Spaces give their memory back first.

The second sleep tier (stop a frozen Space) normally waits ``stop_frozen_after``; under pressure the reconciler
stops sleeping Spaces at once, one per sweep, until there is room again: the longest-asleep instances that served
visitors first (a Streamlit Space's stop leaves a standby, a fresh server that holds a fraction of that memory),
then the standbys. Pressure is read from ``/proc/meminfo``: ``MemAvailable`` (what the kernel can hand out without
swapping) below a fraction of ``MemTotal``. Only the local backend's machine is known here; Docker hosts and
Kubernetes nodes evict on their own.
"""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def available_fraction(meminfo: str | None = None) -> float | None:
    """``MemAvailable / MemTotal`` from a /proc/meminfo text (read now when None); None when unknown."""
    if meminfo is None:
        try:
            meminfo = MEMINFO.read_text()
        except OSError:
            return None
    fields = {}
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    total, available = fields.get("MemTotal"), fields.get("MemAvailable")
    if not total or available is None:
        return None
    return available / total


def low_memory(min_available: float, meminfo: str | None = None) -> bool:
    """True when less than ``min_available`` (a fraction of all memory) is available; False when unknown."""
    fraction = available_fraction(meminfo)
    return fraction is not None and fraction < min_available
