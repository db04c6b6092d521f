"""The processes and databases a benchmark runs against, each started fresh and removed on
the way out: the Temporal dev server, scratch databases (`bench_<tag>_<pid>`), and the
product's own processes (`dialler web`, `dialler worker ...`, a bench worker) as children."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client, Interceptor
from temporalio.runtime import Runtime

from adapters.provisioning import (
    create_replica_schema,
    drop_mysql_database,
    drop_postgres_database,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from adapters.temporal import DATA_CONVERTER, dev_server_flags
from bench.harness.cli import say
from bench.harness.record import REPO
from config.settings import Environment, Settings

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1:5432")
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1:3306")
NAMESPACE = "default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_binary(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: install the dev extras (make install)")
    return str(path)


async def wait_for(
    probe: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.2
) -> bool:
    """Poll until `probe()` is true; False if `within` seconds pass first."""
    deadline = time.monotonic() + within
    while not await probe():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


# --- Temporal ----------------------------------------------------------------------------------


@dataclass
class DevServer:
    address: str
    pid: int


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[DevServer]:
    """`temporal server start-dev` from the venv on free ports, SQLite file with WAL (as
    `dialler dev` runs it), the outreach search attributes registered, no UI."""
    state = Path(tempfile.mkdtemp(prefix="bench-temporal-"))
    port = free_port()
    argv = [
        venv_binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1",
        "--port", str(port), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--headless", "--namespace", NAMESPACE, "--db-filename", str(state / "temporal.sqlite"),
        "--log-level", "error", *dev_server_flags(),
    ]  # fmt: skip
    log = (state / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log)
    address = f"127.0.0.1:{port}"

    async def serving() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"temporal dev server exited: {process.returncode}")
        try:
            await (await Client.connect(address, namespace=NAMESPACE)).count_workflows()
        except Exception:
            return False
        return True

    try:
        if not await wait_for(serving, within=60, interval=0.25):
            raise RuntimeError("the temporal dev server did not start within 60 s")
        yield DevServer(address=address, pid=process.pid)
    finally:
        await _stop(process, 15)
        log.close()
        shutil.rmtree(state, ignore_errors=True)


async def connect_client(
    address: str, interceptors: Sequence[Interceptor] = (), runtime: Runtime | None = None
) -> Client:
    """A client as the product builds one: its data converter, default namespace."""
    return await Client.connect(
        address,
        namespace=NAMESPACE,
        data_converter=DATA_CONVERTER,
        interceptors=interceptors,
        identity="bench",
        runtime=runtime,
    )


# --- scratch databases -------------------------------------------------------------------------


@dataclass
class Databases:
    pg_url: str
    mysql_url: str
    dialler: AsyncEngine
    replica: AsyncEngine
    extra: list[AsyncEngine] = field(default_factory=list)

    def dialler_engine(self, pool_size: int, max_overflow: int = 0) -> AsyncEngine:
        """Another engine on the scratch PostgreSQL database, disposed with the others."""
        engine = create_async_engine(self.pg_url, pool_size=pool_size, max_overflow=max_overflow)
        self.extra.append(engine)
        return engine

    def settings(self, temporal_address: str, task_queue: str, **more: Any) -> Settings:
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment=Environment.TEST,
            database_url=self.pg_url,
            replica_database_url=self.mysql_url,
            temporal_address=temporal_address,
            temporal_task_queue=task_queue,
            **more,
        )


@contextlib.asynccontextmanager
async def scratch_databases(
    tag: str,
    *,
    pg_pool: int = 20,
    pg_overflow: int | None = None,
    mysql_pool: int = 10,
    mysql_host: str = MYSQL_HOST,
) -> AsyncIterator[Databases]:
    """`bench_<tag>_<pid>` on PostgreSQL (migrated) and MariaDB (replica schema), dropped on
    the way out. Pool sizes default to the outreach worker's (`run_outreach_worker`)."""
    name = f"bench_{tag}_{os.getpid()}"
    pg = f"postgresql+asyncpg://postgres@{PG_HOST}/{name}"
    my = f"mysql+aiomysql://root@{mysql_host}/{name}"
    await drop_postgres_database(pg)
    await ensure_postgres_database(pg)
    await drop_mysql_database(my)
    await ensure_mysql_database(my)
    dbs: Databases | None = None
    try:
        await migrate(pg)
        overflow = pg_pool if pg_overflow is None else pg_overflow
        dialler = create_async_engine(pg, pool_size=pg_pool, max_overflow=overflow)
        replica = create_async_engine(
            my, pool_size=mysql_pool, max_overflow=mysql_pool, pool_recycle=3600
        )
        dbs = Databases(pg, my, dialler, replica)
        await create_replica_schema(replica)
        yield dbs
    finally:
        if dbs is not None:
            for engine in (dbs.dialler, dbs.replica, *dbs.extra):
                await engine.dispose()
        await drop_postgres_database(pg)
        await drop_mysql_database(my)


async def warm_pool(engine: AsyncEngine, connections: int, *, within: float = 300.0) -> None:
    """Open `connections` connections now and keep them pooled: PostgreSQL's
    max_connections (100) is shared with other engineers' test runs, so a benchmark takes
    what it needs before measuring, waiting (up to `within` seconds) while the server is
    full, rather than failing in the middle of a measurement."""
    deadline = time.monotonic() + within
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(connections):
                    conn = await stack.enter_async_context(engine.connect())
                    await conn.execute(text("SELECT 1"))
            return
        except DBAPIError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            say(f"PostgreSQL is full (other test runs); waiting for {connections} connections")
            await asyncio.sleep(5)


# --- the product's processes -------------------------------------------------------------------


def stack_env(
    dbs: Databases, temporal_address: str, task_queue: str, redis_url: str, **more: str
) -> dict[str, str]:
    """The environment of a product process on the benchmark's stack (`config/settings.py`
    reads it); `more` adds or overrides variables."""
    return {
        **os.environ,
        "DATABASE_URL": dbs.pg_url,
        "REPLICA_DATABASE_URL": dbs.mysql_url,
        "REDIS_URL": redis_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "PYTHONUNBUFFERED": "1",
        **more,
    }


@dataclass
class Child:
    name: str
    pid: int
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def child_process(
    name: str,
    argv: Sequence[str],
    env: dict[str, str],
    logs: Path,
    *,
    ready: Callable[[], Awaitable[bool]] | None = None,
    stop_within: float = 20.0,
) -> AsyncIterator[Child]:
    """A subprocess with its output in `logs/<name>.log`, yielded once `ready()` (if given)
    is true, stopped with SIGTERM (then SIGKILL after `stop_within` s) on the way out."""
    path = logs / f"{name}.log"
    with path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=log, stderr=log, env=env, cwd=str(REPO)
        )
        child = Child(name, process.pid, path)
        try:
            if ready is not None:

                async def started() -> bool:
                    if process.returncode is not None:
                        raise RuntimeError(f"{name} exited:\n{child.tail()}")
                    return await ready()

                if not await wait_for(started, within=60.0):
                    raise RuntimeError(f"{name} did not start within 60 s:\n{child.tail()}")
            yield child
        finally:
            await _stop(process, stop_within)


def dialler(*args: str) -> list[str]:
    """The argv of a `dialler` command (the product's CLI)."""
    return [venv_binary("dialler"), *args]


def serving(base: str) -> Callable[[], Awaitable[bool]]:
    """A readiness probe for the web app: the login page answers 200."""

    async def probe() -> bool:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get("/login")).status_code == 200
        return False

    return probe


def keep_logs(logs: Path, prefix: str) -> Path:
    """Copy the child processes' logs out of a directory that is about to be removed."""
    kept = Path(tempfile.mkdtemp(prefix=prefix))
    for log in logs.glob("*.log"):
        shutil.copy(log, kept / log.name)
    return kept


async def _stop(process: asyncio.subprocess.Process, within: float) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=within)
    except TimeoutError:
        process.kill()
        await process.wait()
