"""Create the local databases and schemas that development and tests need.

Production databases are provisioned by operators; these helpers are for `dialler dev`,
`dialler db` and the test suite. The replica schema is created here only because locally
there is no main app to own it: this module is the replica's schema provisioner (DDL from
`schemas.replica.metadata`, as `migrations/` is the dialler DB's), and never reads or
writes a replica row; rows are `adapters.replica_reader`'s.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiomysql
import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations
from schemas import replica

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# The migrations ship inside the `migrations` package, so they are found the same way from a
# checkout, an editable install or a wheel (alembic.ini at the root is for the `alembic` CLI).
MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def _database_name(url: URL) -> str:
    name = url.database or ""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"refusing to manage a database with an unusual name: {name!r}")
    return name


async def _postgres_admin(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database="postgres",
    )


async def ensure_postgres_database(database_url: str) -> bool:
    """Create the database if it is missing; True when it was created."""
    url = make_url(database_url)
    name = _database_name(url)
    conn = await _postgres_admin(url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        return not exists
    finally:
        await conn.close()


async def drop_postgres_database(database_url: str) -> None:
    url = make_url(database_url)
    name = _database_name(url)
    conn = await _postgres_admin(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _mysql_admin(url: URL) -> aiomysql.Connection:
    return await aiomysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        autocommit=True,
    )


async def ensure_mysql_database(replica_url: str) -> bool:
    url = make_url(replica_url)
    name = _database_name(url)
    conn = await _mysql_admin(url)
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", name
            )
            exists = await cur.fetchone() is not None
            if not exists:
                await cur.execute(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
        return not exists
    finally:
        conn.close()


async def drop_mysql_database(replica_url: str) -> None:
    url = make_url(replica_url)
    name = _database_name(url)
    conn = await _mysql_admin(url)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


async def create_replica_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(replica.metadata.create_all)


def _alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str:
    """The newest migration in `migrations/versions`."""
    head = ScriptDirectory.from_config(_alembic_config("")).get_current_head()
    assert head is not None, "no migrations found"
    return head


async def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the dialler DB. Alembic's env runs its own loop, so it runs in a thread."""
    await asyncio.to_thread(command.upgrade, _alembic_config(database_url), revision)


async def downgrade(database_url: str, revision: str = "base") -> None:
    await asyncio.to_thread(command.downgrade, _alembic_config(database_url), revision)


async def current_revision(database_url: str) -> str | None:
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database,
    )
    try:
        exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return None
        value = await conn.fetchval("SELECT version_num FROM alembic_version")
        return str(value) if value is not None else None
    finally:
        await conn.close()
