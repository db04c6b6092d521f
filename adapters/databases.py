"""Engines for the dialler DB (PostgreSQL, asyncpg) and the claims replica (MySQL, aiomysql)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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
