"""Alembic environment: async migrations of the dialler DB (PostgreSQL via asyncpg)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from config.settings import load_settings
from schemas.dialler_db import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    # Tests and `dialler db` pass the URL explicitly; otherwise it comes from DATABASE_URL.
    explicit = config.attributes.get("database_url")
    return str(explicit) if explicit else load_settings().async_database_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
