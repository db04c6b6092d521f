"""Migrations against the real PostgreSQL: up and down on an empty database, and the
migrated schema equals `schemas.dialler_db` exactly."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from adapters.provisioning import (
    current_revision,
    downgrade,
    drop_postgres_database,
    ensure_postgres_database,
    head_revision,
    migrate,
)
from schemas.dialler_db import audit_log, metadata, suppressions
from tests.conftest import PG_HOST


@pytest.fixture
async def empty_pg() -> AsyncIterator[str]:
    url = f"postgresql+asyncpg://postgres@{PG_HOST}/dialler_migrations_{os.getpid()}"
    await drop_postgres_database(url)
    await ensure_postgres_database(url)
    yield url
    await drop_postgres_database(url)


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrade_then_downgrade_on_an_empty_database(empty_pg: str) -> None:
    engine = create_async_engine(empty_pg)
    try:
        await migrate(empty_pg)
        assert await current_revision(empty_pg) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(metadata.tables) | {"alembic_version"}
            assert await conn.run_sync(_schema_diff) == []

        await downgrade(empty_pg, "base")
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {"alembic_version"}
        assert await current_revision(empty_pg) is None

        await migrate(empty_pg)  # and back up again: downgrade left nothing behind
        assert await current_revision(empty_pg) == head_revision()
    finally:
        await engine.dispose()


async def test_audit_log_and_suppressions_are_append_only(empty_pg: str) -> None:
    await migrate(empty_pg)
    engine = create_async_engine(empty_pg)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(audit_log).values(actor_type="agent", action="view", subject_type="user")
            )
            await conn.execute(
                insert(suppressions).values(user_id=7, reason="sms_stop", source="t")
            )
        for statement in (
            "UPDATE audit_log SET action = 'edited'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "DELETE FROM suppressions",
            "UPDATE suppressions SET reason = 'undone'",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(statement))
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM audit_log"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_claim_next_query_uses_the_partial_index(dialler_db: object) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(dialler_db, AsyncEngine)
    async with dialler_db.begin() as conn:
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in await conn.execute(
                text(
                    "EXPLAIN SELECT id FROM call_tasks WHERE status = 'ready' "
                    "AND queue = 'unsigned' AND not_before <= now() "
                    "ORDER BY score DESC LIMIT 1 FOR UPDATE SKIP LOCKED"
                )
            )
        )
    assert "ix_call_tasks_ready_queue_score" in plan
