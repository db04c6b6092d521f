"""The worker reports the time spent in garbage collection per generation."""

from __future__ import annotations

import gc

from adapters.gc_stats import GcStats


def test_collections_are_counted_and_timed_per_generation() -> None:
    stats = GcStats().install()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        stats.uninstall()
    assert stats.collections[2] >= 1 and stats.collections[0] >= 1
    assert stats.seconds[2] > 0
    assert stats.summary()["gen2"].startswith(f"{stats.collections[2]} in ")
    counted = stats.collections[2]
    gc.collect(2)  # after uninstall: no longer counted
    assert stats.collections[2] == counted
