"""The benchmark harness's pure parts: percentiles (what every figure is made of) and the run
record with the docs/benchmarks.md table generated from it (hand-written prose kept)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.harness.record import (
    BEGIN,
    END,
    Figure,
    RunRecord,
    Table,
    append_run,
    latest_figures,
    load_runs,
    regenerate_docs,
    render_docs,
)
from bench.harness.stats import busiest, counts, latency_row, per_window, percentile

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def closest_ranks(values: list[float], pct: int) -> float:
    """The textbook definition: linear interpolation between closest ranks (numpy's
    default), written out independently of the harness."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_percentile_of_known_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of the input does not matter


@given(st.lists(finite, min_size=1, max_size=200), st.integers(min_value=1, max_value=99))
def test_percentile_interpolates_between_closest_ranks(values: list[float], pct: int) -> None:
    found = percentile(values, pct)
    assert found == pytest.approx(closest_ranks(values, pct), rel=1e-9, abs=1e-6)
    assert min(values) - 1e-6 <= found <= max(values) + 1e-6


@given(st.lists(finite, min_size=2, max_size=100))
def test_higher_percentiles_are_never_lower(values: list[float]) -> None:
    p50, p95, p99 = (percentile(values, p) for p in (50, 95, 99))
    assert p50 <= p95 + 1e-9 and p95 <= p99 + 1e-9


def test_percentile_of_nothing_is_nan_and_out_of_range_is_refused() -> None:
    assert math.isnan(percentile([], 95))
    assert percentile([7.5], 99) == 7.5
    for bad in (0, 100, -5):
        with pytest.raises(ValueError, match="1-99"):
            percentile([1.0, 2.0], bad)


def test_latency_row_in_milliseconds_and_blank_when_nothing_was_measured() -> None:
    assert latency_row("claim", [0.010, 0.020, 0.030]) == [
        "claim", "3", "20.0 ms", "29.0 ms", "29.8 ms", "30.0 ms",
    ]  # fmt: skip
    assert latency_row("none", []) == ["none", "0", "", "", "", ""]


def test_busiest_source_within_a_window() -> None:
    times = {1: [0.0, 0.5, 0.9, 5.0], 2: [0.0, 2.0]}
    assert busiest(times, 1.0) == 3
    assert busiest(times, 0.5) == 2
    assert busiest({}, 1.0) == 0


def test_rate_per_window_counts_a_short_last_window_as_long_as_it_lasted() -> None:
    # 30 s windows over a 45 s stage: 3 events in the first, 3 in the last 15 s
    assert per_window([1.0, 2.0, 29.0, 30.0, 40.0, 44.0], 45.0, 30.0) == [0.1, 0.2]
    assert per_window([], 0.5, 30.0) == []  # under a second: no window


def test_counts_most_common_first() -> None:
    assert counts(Counter({"a": 1, "b": 3})) == "b x3, a x1"
    assert counts(Counter()) == "0"


def record(benchmark: str, at: str, *figures: Figure, **params: object) -> RunRecord:
    return RunRecord(
        benchmark=benchmark,
        title=benchmark.replace("_", " "),
        recorded_at=at,
        code="abc123",
        machine={"nproc": "2", "cpu": "AMD EPYC", "memory": "23.5 GiB"},
        params=dict(params),
        figures=list(figures),
        notes=["a note with | a pipe"],
        tables=[Table("T", ["a", "b"], [["1", "x | y"]])],
    )


def test_record_round_trips_through_json() -> None:
    original = record("claim_next", "2026-11-28 21:22 UTC", Figure("p99", "9.4 s", "≤ 50 ms"))
    again = RunRecord.from_json(original.to_json())
    assert again == original
    assert "\n" not in original.to_json()  # one run, one line


def test_append_run_adds_one_line_per_run(tmp_path: Path) -> None:
    first = record("reconcile", "2026-11-29 01:10 UTC", Figure("growth", "13.2x"))
    second = record("reconcile", "2026-12-03 09:00 UTC", Figure("growth", "9.8x"))
    path = append_run(first, tmp_path)
    append_run(second, tmp_path)
    assert path == tmp_path / "reconcile.jsonl"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert load_runs(tmp_path) == [first, second]


def test_latest_figures_take_each_figure_from_its_latest_run() -> None:
    old = record("cdc_freshness", "2026-11-29 00:55 UTC", Figure("p95", "84.4 ms"),
                 Figure("burst", "83.5 s"))  # fmt: skip
    new = record("cdc_freshness", "2026-12-03 09:00 UTC", Figure("p95", "90.1 ms"))
    other = record("agents_http", "2026-11-29 02:02 UTC", Figure("claim p99", "123.5 ms"))
    found = [(r.recorded_at, f.name, f.value) for r, f in latest_figures([new, other, old])]
    assert found == [
        ("2026-11-29 02:02 UTC", "claim p99", "123.5 ms"),
        ("2026-12-03 09:00 UTC", "p95", "90.1 ms"),  # the newer run wins
        ("2026-11-29 00:55 UTC", "burst", "83.5 s"),  # only the older run measured it
    ]


def test_docs_table_replaces_only_the_generated_part() -> None:
    runs = [record("claim_next", "2026-11-28 21:22 UTC",
                   Figure("claim_next p99, 50 claimers", "9365.5 ms", "≤ 50 ms", "missed"),
                   users=2750, claimers=50, no_pause=True, extra=False, cache=None)]  # fmt: skip
    page = f"# Benchmarks\n\nHand-written intro.\n\n{BEGIN}\nstale table\n{END}\n\n## Why\nKept.\n"
    rendered = render_docs(page, runs)
    assert rendered.startswith("# Benchmarks\n\nHand-written intro.\n\n" + BEGIN)
    assert rendered.endswith(END + "\n\n## Why\nKept.\n")
    assert "stale table" not in rendered
    row = next(line for line in rendered.splitlines() if "claim_next p99" in line)
    assert "| 9365.5 ms | ≤ 50 ms | missed | 2026-11-28 21:22 UTC (abc123) |" in row
    assert "2 cores, AMD EPYC, 23.5 GiB" in row
    assert "`.venv/bin/python -m bench.claim_next --claimers 50 --no-pause --users 2750`" in row
    assert render_docs(rendered, runs) == rendered  # regenerating changes nothing


def test_docs_without_markers_get_the_table_appended(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nProse.\n", encoding="utf-8")
    append_run(record("reconcile", "2026-11-29 01:10 UTC", Figure("a | b", "1")), tmp_path)
    regenerate_docs(tmp_path, docs)
    text = docs.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nProse.\n\n" + BEGIN)
    assert "| a \\| b |" in text  # a pipe in a cell cannot break the table
    assert text.rstrip().endswith(END)
