"""Engines for the dialler DB (PostgreSQL, asyncpg) and the claims replica (MySQL, aiomysql)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from config.settings import Settings


def dialler_engine(
    settings: Settings, *, pool_size: int = 10, pre_ping: bool = True
) -> AsyncEngine:
    """`pre_ping=False` is for callers that retry (activities): a connection a database
    restart dropped then fails one attempt and the pool is renewed, instead of every
    checkout paying a round trip to test its connection."""
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
    )


def replica_engine(settings: Settings, *, pool_size: int = 5, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` as for `dialler_engine`."""
    return create_async_engine(
        settings.async_replica_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=3600,  # MySQL closes idle connections after wait_timeout
    )


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


# A report aggregates a long range in one statement, once. PostgreSQL would JIT-compile it
# (its estimated cost passes jit_above_cost), which took longer than the query itself at a
# million calls (0.65 s of 1 s), and would group by sorting on disk past the default 4 MB
# of work_mem (the hour of a timestamp has no statistics: it is estimated as one group per
# row). Both settings last until the end of the caller's transaction.
_REPORT_SETTINGS = text(
    "SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true)"
)


async def for_reports(conn: AsyncConnection) -> None:
    """Tune the connection's current transaction for one-off aggregate statements."""
    await conn.execute(_REPORT_SETTINGS)
