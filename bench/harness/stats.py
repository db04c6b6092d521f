"""Percentiles and the latency rows every benchmark prints. Pure: no I/O."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence


def percentile(values: Sequence[float], pct: int) -> float:
    """The `pct`th percentile (1-99), interpolated between closest ranks (numpy's default,
    `statistics.quantiles(method="inclusive")`); NaN for no values."""
    if not 1 <= pct <= 99:
        raise ValueError(f"percentile must be 1-99, got {pct}")
    if not values:
        return float("nan")
    if len(values) == 1:  # quantiles() needs two points before Python 3.13
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency_row(name: str, values: Sequence[float]) -> list[str]:
    """[name, count, p50, p95, p99, max]; blank percentiles when nothing was measured."""
    if not values:
        return [name, "0", "", "", "", ""]
    return [
        name,
        str(len(values)),
        *(ms(percentile(values, p)) for p in (50, 95, 99)),
        ms(max(values)),
    ]


LATENCY_COLUMNS = ["operation", "count", "p50", "p95", "p99", "max"]


def busiest(times: Mapping[int, Sequence[float]], window: float) -> int:
    """The most events one source sent within any `window` seconds (times sorted per source)."""
    best = 0
    for stamps in times.values():
        low = 0
        for high, at in enumerate(stamps):
            while at - stamps[low] >= window:
                low += 1
            best = max(best, high - low + 1)
    return best


def per_window(at: Iterable[float], seconds: float, window: float) -> list[float]:
    """Events per second in each `window` of a stage `seconds` long (stamps in seconds since
    it began); the last window counts as long as it lasted, and one under 1 s is left out."""
    buckets = Counter(int(stamp // window) for stamp in at)
    rates = []
    for i in range(int(seconds // window) + 1):
        length = min(window, seconds - i * window)
        if length >= 1:
            rates.append(buckets.get(i, 0) / length)
    return rates


def counts(counter: Counter[str]) -> str:
    """'a x3, b x1' (most common first), or '0'."""
    return ", ".join(f"{k} x{v}" for k, v in counter.most_common()) or "0"
