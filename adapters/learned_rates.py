"""The learned rates (`rate_versions`, `learned_rates`; issue 14): the one module that reads
and writes them; and the one shape of an attempt count (`count_attempts`), which the owners
of the attempts (`call_log` for calls, `ai_conversations` for SMS conversations) run over
their own tables.

The nightly job (`activities/learning.py`) saves one version per run; the scorer reads the
newest (`newest_rates`, two indexed reads: the highest version id, then its rows), and
`dialler scoring rates` lists the versions. A version is never changed once saved. Each
function takes the caller's connection, so the caller decides the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Interval, Subquery, func, insert, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import dialler_db as db
from schemas.learned_rates import (
    EMPTY,
    SEGMENT_LENGTH,
    SLOT_MINUTES,
    AttemptCounts,
    Dimension,
    LearnedRate,
    RateTable,
    RateVersion,
    Tally,
)

__all__ = [
    "EMPTY",
    "LearnedRate",
    "RateTable",
    "RateVersion",
    "count_attempts",
    "newest_rates",
    "rates_of",
    "save_version",
    "slot_of",
    "version_for_window",
    "versions",
]

_V = db.rate_versions.c
_R = db.learned_rates.c
_RATE_COLUMNS = (
    _R.dimension,
    _R.segment,
    _R.attempts,
    _R.reached,
    _R.conversions,
    _R.contact_rate,
    _R.contact_low,
    _R.contact_high,
    _R.conversion_rate,
    _R.conversion_low,
    _R.conversion_high,
    _R.shrunk_contact_rate,
    _R.shrunk_conversion_rate,
)
# saving is serialised, so a retried save finds the version the first attempt committed
_SAVE_LOCK = 7_300_014


async def newest_rates(conn: AsyncConnection) -> RateTable:
    """The newest saved version (the highest id), or EMPTY when none is saved."""
    newest = await conn.scalar(select(func.max(_V.id)))
    return EMPTY if newest is None else await rates_of(conn, int(newest))


async def rates_of(conn: AsyncConnection, version_id: int) -> RateTable:
    """One version's rates (EMPTY when there is no such version)."""
    version = (
        await conn.execute(
            select(_V.id, _V.computed_at, _V.attempts, _V.reached, _V.conversions).where(
                _V.id == version_id
            )
        )
    ).one_or_none()
    if version is None:
        return EMPTY
    rows = await conn.execute(select(*_RATE_COLUMNS).where(_R.version_id == version_id))
    rates = {(r.dimension, r.segment): LearnedRate(**r._mapping) for r in rows}
    overall = next((r for (d, _), r in rates.items() if d == Dimension.OVERALL.value), None)
    contact: float | None
    conversion: float | None
    if overall is not None:
        contact, conversion = overall.contact_rate, overall.conversion_rate
    elif version.attempts > 0:
        contact = version.reached / version.attempts
        conversion = version.conversions / version.attempts
    else:
        contact = conversion = None
    return RateTable(int(version.id), version.computed_at, contact, conversion, rates)


async def save_version(
    conn: AsyncConnection,
    *,
    window_start: datetime,
    window_end: datetime,
    attempts: int,
    reached: int,
    conversions: int,
    seconds: float,
    rates: Sequence[LearnedRate],
) -> int:
    """A new version with its rates (one row per dimension and segment); its id."""
    version_id = await conn.scalar(
        insert(db.rate_versions)
        .values(
            window_start=window_start,
            window_end=window_end,
            attempts=attempts,
            reached=reached,
            conversions=conversions,
            seconds=seconds,
        )
        .returning(_V.id)
    )
    assert version_id is not None
    if rates:
        await conn.execute(
            insert(db.learned_rates),
            [
                {
                    "version_id": version_id,
                    "dimension": r.dimension,
                    "segment": r.segment[:SEGMENT_LENGTH],
                    "attempts": r.attempts,
                    "reached": r.reached,
                    "conversions": r.conversions,
                    "contact_rate": r.contact_rate,
                    "contact_low": r.contact_low,
                    "contact_high": r.contact_high,
                    "conversion_rate": r.conversion_rate,
                    "conversion_low": r.conversion_low,
                    "conversion_high": r.conversion_high,
                    "shrunk_contact_rate": r.shrunk_contact_rate,
                    "shrunk_conversion_rate": r.shrunk_conversion_rate,
                }
                for r in rates
            ],
        )
    return int(version_id)


async def version_for_window(
    conn: AsyncConnection, window_start: datetime, window_end: datetime
) -> int | None:
    """The version already saved for exactly this window, if any, under the save lock (held
    to the end of the caller's transaction): a retried save asks this first."""
    await conn.execute(select(func.pg_advisory_xact_lock(_SAVE_LOCK)))
    found = await conn.scalar(
        select(func.max(_V.id)).where(_V.window_start == window_start, _V.window_end == window_end)
    )
    return None if found is None else int(found)


async def versions(conn: AsyncConnection, limit: int = 20) -> list[RateVersion]:
    """The saved versions, newest first, with how many segments each holds."""
    segments = (
        select(func.count())
        .where(_R.version_id == _V.id)
        .correlate(db.rate_versions)
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(
            _V.id,
            _V.computed_at,
            _V.window_start,
            _V.window_end,
            _V.attempts,
            _V.reached,
            _V.conversions,
            _V.seconds,
            segments.label("segments"),
        )
        .order_by(_V.id.desc())
        .limit(max(0, limit))
    )
    return [RateVersion(**r._mapping) for r in rows]


# --- counting attempts (the owners of the attempts run it over their tables) -------------------


# date_bin's origin: any moment on a quarter hour
_SLOT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def slot_of(moment: ColumnElement[datetime]) -> ColumnElement[datetime]:
    """The UTC quarter hour a timestamptz column's moment falls in (its start): cheap
    arithmetic, no time-zone rules, per row."""
    return func.date_bin(
        literal(timedelta(minutes=SLOT_MINUTES), Interval()), moment, literal(_SLOT_ORIGIN)
    )


# GROUPING(queue, slot, user_id) of each grouping set: a bit is 1 where the column is rolled
# up (the first column is the highest bit)
_BY_QUEUE, _BY_SLOT, _BY_USER = 0b011, 0b101, 0b110
# the three sets are hashed in one pass when their tables fit: at a million calls about
# 60 MB (the claimants' is the largest); for this transaction only
_HASH_MEMORY = "256MB"


async def count_attempts(conn: AsyncConnection, attempts: Subquery) -> AttemptCounts:
    """Attempts counted in one scan (GROUPING SETS) by queue, slot and claimant; the total
    is the queues' sum. `attempts` has one row per attempt with the columns queue, user_id,
    slot (`slot_of`), reached and converted (booleans)."""
    a = attempts.c
    await conn.execute(select(func.set_config("work_mem", _HASH_MEMORY, True)))
    rows = await conn.execute(
        select(
            a.queue,
            a.slot,
            a.user_id,
            func.grouping(a.queue, a.slot, a.user_id).label("set"),
            func.count().label("attempts"),
            func.count().filter(a.reached).label("reached"),
            func.count().filter(a.converted).label("converted"),
        ).group_by(func.grouping_sets(tuple_(a.queue), tuple_(a.slot), tuple_(a.user_id)))
    )
    found = AttemptCounts(Tally(), {}, {}, {})
    for r in rows:
        tally = Tally(int(r.attempts), int(r.reached), int(r.converted))
        if r.set == _BY_QUEUE:
            found.by_queue[r.queue] = tally
        elif r.set == _BY_SLOT:
            found.by_slot[r.slot] = tally
        elif r.set == _BY_USER:
            found.by_user[int(r.user_id)] = tally
    total = sum(found.by_queue.values(), Tally())
    return AttemptCounts(total, found.by_queue, found.by_slot, found.by_user)
