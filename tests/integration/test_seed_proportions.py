"""Demo data loaded into real MariaDB and PostgreSQL, measured with the seed's queue queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import queue_queries
from demo.data import DEMO_CALLBACK_MARKER, DemoData, generate
from demo.load import ReplicaNotEmptyError, load_demo_data, replica_is_empty
from schemas import dialler_db
from schemas import replica as replica_schema

# A fixed instant years before the test run: other tests in the session may add callbacks
# to the shared dialler DB, but those are scheduled around the real clock, so at this `now`
# only the demo callbacks can be due and the callback query's result can be checked exactly.
NOW = datetime(2020, 1, 15, 11, 20, 30, tzinfo=UTC)
USERS = 3_000
REPLICA_TABLES = (
    replica_schema.lenders,
    replica_schema.users,
    replica_schema.claims,
    replica_schema.claim_requirements,
    replica_schema.consents,
)
callbacks = dialler_db.callbacks


@pytest.fixture(scope="module")
async def loaded(replica: AsyncEngine, dialler_db: AsyncEngine) -> AsyncIterator[DemoData]:
    data = generate(USERS, seed=99, now=NOW)
    await load_demo_data(replica, dialler_db, data, replace=True)
    yield data


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table)
        if table is callbacks:
            query = query.where(callbacks.c.notes.startswith(DEMO_CALLBACK_MARKER))
        return int((await conn.execute(query)).scalar_one())


async def _counts(replica: AsyncEngine, dialler: AsyncEngine) -> dict[str, int]:
    counts = {table.name: await _count(replica, table) for table in REPLICA_TABLES}
    return counts | {"callbacks": await _count(dialler, callbacks)}


async def test_rows_round_trip_exactly(loaded: DemoData, replica: AsyncEngine) -> None:
    expected = {
        "lenders": loaded.lenders,
        "users": loaded.users,
        "claims": loaded.claims,
        "claim_requirements": loaded.claim_requirements,
        "consents": loaded.consents,
    }
    async with replica.connect() as conn:
        for table in REPLICA_TABLES:
            result = await conn.execute(select(table).order_by(table.c.id))
            assert [dict(row._mapping) for row in result] == expected[table.name], table.name


async def test_queue_proportions_match_the_seed(loaded: DemoData, replica: AsyncEngine) -> None:
    active = await queue_queries.active_claimant_ids(replica)
    unsigned = await queue_queries.unsigned_user_ids(replica)
    outstanding = await queue_queries.outstanding_user_ids(replica)
    assert 0.15 <= len(unsigned) / len(active) <= 0.20
    assert 0.60 <= len(outstanding) / len(active) <= 0.70
    assert unsigned <= active
    assert not unsigned & outstanding  # signed or not: a claimant is in one of the two


async def test_callback_query_returns_the_due_callbacks_of_enabled_users(
    loaded: DemoData, replica: AsyncEngine, dialler_db: AsyncEngine
) -> None:
    expected = {cb["user_id"] for cb in loaded.callbacks if cb["scheduled_for"] <= NOW}
    assert 0 < len(expected) < len(loaded.callbacks)
    disabled = next(u["id"] for u in loaded.users if not u["is_enabled"])
    enabled = next(u["id"] for u in loaded.users if u["is_enabled"] and u["id"] not in expected)
    extra = [  # the two halves of the seed's join: a disabled user, a callback not pending
        {"user_id": disabled, "scheduled_for": NOW - timedelta(hours=1), "status": "pending"},
        {"user_id": enabled, "scheduled_for": NOW - timedelta(hours=1), "status": "completed"},
    ]
    async with dialler_db.begin() as conn:
        await conn.execute(
            insert(callbacks), [{**row, "notes": DEMO_CALLBACK_MARKER} for row in extra]
        )

    assert await queue_queries.due_callback_user_ids(dialler_db, replica, NOW) == expected
    assert (
        await queue_queries.due_callback_user_ids(dialler_db, replica, NOW - timedelta(days=30))
        == set()
    )


async def test_due_callbacks_need_an_aware_now(
    replica: AsyncEngine, dialler_db: AsyncEngine
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await queue_queries.due_callback_user_ids(dialler_db, replica, NOW.replace(tzinfo=None))


async def test_enabled_user_ids_among_chunks_large_id_lists(
    loaded: DemoData, replica: AsyncEngine
) -> None:
    enabled = {u["id"] for u in loaded.users if u["is_enabled"]}
    asked = range(1, 12_001)  # more ids than one query takes, most of them unknown
    assert await queue_queries.enabled_user_ids_among(replica, asked) == enabled


async def test_loading_with_replace_twice_gives_the_same_counts(
    loaded: DemoData, replica: AsyncEngine, dialler_db: AsyncEngine
) -> None:
    queues_before = await queue_queries.outstanding_user_ids(replica)
    await load_demo_data(replica, dialler_db, loaded, replace=True)
    first = await _counts(replica, dialler_db)
    report = await load_demo_data(replica, dialler_db, loaded, replace=True)
    second = await _counts(replica, dialler_db)
    assert first == second == loaded.counts() == report.rows
    assert report.seconds > 0
    assert await queue_queries.outstanding_user_ids(replica) == queues_before


async def test_refuses_to_load_into_a_non_empty_replica_without_replace(
    loaded: DemoData, replica: AsyncEngine, dialler_db: AsyncEngine
) -> None:
    assert not await replica_is_empty(replica)
    with pytest.raises(ReplicaNotEmptyError):
        await load_demo_data(replica, dialler_db, loaded, replace=False)


async def test_replace_with_nothing_empties_the_replica(
    loaded: DemoData, replica: AsyncEngine, dialler_db: AsyncEngine
) -> None:
    empty = DemoData(
        seed=0,
        now=NOW,
        lenders=[],
        users=[],
        claims=[],
        claim_requirements=[],
        callbacks=[],
        consents=[],
    )
    await load_demo_data(replica, dialler_db, empty, replace=True)
    assert await replica_is_empty(replica)
    assert await _count(dialler_db, callbacks) == 0
    # Leave the session's replica as the other tests in this module found it.
    await load_demo_data(replica, dialler_db, loaded, replace=False)
    assert await _counts(replica, dialler_db) == loaded.counts()
