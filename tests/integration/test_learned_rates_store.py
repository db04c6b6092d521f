"""The learned rates' store (adapters/learned_rates.py): EMPTY before any version, a saved
version read back whole as the newest, versions listed newest first with their segment
counts, the save lock's look-up of a version by its window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import learned_rates as store
from schemas.learned_rates import EMPTY, LearnedRate
from tests.workflows.conftest import scratch_databases

END = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)
START = END - timedelta(days=180)


def _rate(dimension: str, segment: str, attempts: int, reached: int, converted: int) -> LearnedRate:
    return LearnedRate(
        dimension=dimension,
        segment=segment,
        attempts=attempts,
        reached=reached,
        conversions=converted,
        contact_rate=reached / attempts,
        contact_low=reached / attempts - 0.05,
        contact_high=reached / attempts + 0.05,
        conversion_rate=converted / attempts,
        conversion_low=0.0,
        conversion_high=converted / attempts + 0.02,
        shrunk_contact_rate=0.4,
        shrunk_conversion_rate=0.05,
    )


@pytest.fixture
async def dialler() -> AsyncIterator[AsyncEngine]:
    async with scratch_databases("rates_store") as (engine, _):
        yield engine


async def test_empty_until_a_version_is_saved_then_the_newest_is_read_whole(
    dialler: AsyncEngine,
) -> None:
    async with dialler.connect() as conn:
        assert await store.newest_rates(conn) == EMPTY
        assert await store.versions(conn) == []
    assert EMPTY.rate("region", "London") is None

    first = [_rate("overall", "all", 1000, 400, 50), _rate("region", "London", 100, 30, 4)]
    second = [
        _rate("overall", "all", 2000, 900, 120),
        _rate("region", "London", 200, 70, 9),
        _rate("region", "Scotland", 50, 30, 5),
        _rate("channel", "sms", 20, 5, 1),
    ]
    async with dialler.begin() as conn:
        assert await store.version_for_window(conn, START, END) is None
        one = await store.save_version(
            conn, window_start=START, window_end=END, attempts=1000, reached=400,
            conversions=50, seconds=1.5, rates=first,
        )  # fmt: skip
    later = END + timedelta(days=1)
    async with dialler.begin() as conn:
        two = await store.save_version(
            conn, window_start=START + timedelta(days=1), window_end=later, attempts=2000,
            reached=900, conversions=120, seconds=2.5, rates=second,
        )  # fmt: skip
    assert two > one

    async with dialler.connect() as conn:
        table = await store.newest_rates(conn)
        listed = await store.versions(conn)
        older = await store.rates_of(conn, one)
        missing = await store.rates_of(conn, two + 100)
        assert await store.version_for_window(conn, START, END) == one
    assert table.version_id == two and table.computed_at is not None
    assert table.overall_contact_rate == pytest.approx(0.45)
    assert table.overall_conversion_rate == pytest.approx(0.06)
    assert table.rates == {(r.dimension, r.segment): r for r in second}
    assert table.rate("region", "Scotland") == second[2]
    assert table.rate("region", "Wales") is None
    assert [r.segment for r in table.dimension("region")] == ["London", "Scotland"]
    assert older.rates == {(r.dimension, r.segment): r for r in first}
    assert missing == EMPTY
    assert [(v.id, v.segments, v.attempts, v.seconds) for v in listed] == [
        (two, 4, 2000, 2.5),
        (one, 2, 1000, 1.5),
    ]
    assert listed[0].window_end == later


async def test_without_an_overall_row_the_version_totals_give_the_overall_rates(
    dialler: AsyncEngine,
) -> None:
    async with dialler.begin() as conn:
        await store.save_version(
            conn, window_start=START, window_end=END, attempts=10, reached=4, conversions=1,
            seconds=0.1, rates=[_rate("queue", "unsigned", 10, 4, 1)],
        )  # fmt: skip
        nothing = await store.save_version(
            conn, window_start=START, window_end=END + timedelta(hours=1), attempts=0,
            reached=0, conversions=0, seconds=0.1, rates=[],
        )  # fmt: skip
    async with dialler.connect() as conn:
        empty_version = await store.newest_rates(conn)
        assert empty_version.version_id == nothing and empty_version.rates == {}
        assert empty_version.overall_contact_rate is None
        table = await store.rates_of(conn, nothing - 1)
    assert table.overall_contact_rate == pytest.approx(0.4)
    assert table.overall_conversion_rate == pytest.approx(0.1)
