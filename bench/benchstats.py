"""Figures shared by the bench scripts (each is run as ``python bench/NAME.py``, so this directory is on the path)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; NaN when there are none. With 20 samples, p99 is the
    slowest and p95 the second slowest."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]
