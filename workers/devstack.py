"""`dialler dev`: the whole product on one machine, as plain processes.

Starts a MariaDB of its own with the binlog on (data in DEV_STATE_DIR/mariadb, port
LOCAL_REPLICA_PORT) when REPLICA_DATABASE_URL points at it, checks PostgreSQL, MariaDB and
Redis (saying which URL failed and how to start it), prepares the databases and demo data,
starts the Temporal dev server from the pip package (SQLite with WAL, search attributes
registered, Web UI on :8233), then every process of the product (the outreach worker, the
CDC worker following that MariaDB's binlog, the AI worker when a model is configured, the web
app), prints the URLs, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import httpx
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from adapters import agent_store
from adapters.cdc_binlog import BinlogConfigError, BinlogConnection, server_position
from adapters.cdc_metrics import read_metrics
from adapters.databases import dialler_engine, redacted, replica_engine
from adapters.local_mariadb import answers, initialise, server_argv
from adapters.provisioning import (
    create_replica_schema,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from adapters.redis_client import connect_redis
from adapters.temporal import connect_temporal, dev_server_flags
from config.settings import CdcSource, Settings
from demo.data import generate
from demo.load import load_demo_data, replica_is_empty
from demo.logins import create_demo_logins
from workers.schedules import RECONCILE_SCHEDULE_ID

HOW_TO_START = {
    "PostgreSQL": "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
    "main start` (Debian), or `docker compose up -d postgres`",
    "MariaDB": "point REPLICA_DATABASE_URL at 127.0.0.1:LOCAL_REPLICA_PORT and `dialler dev` "
    "runs its own, or start it with `start-stop-daemon --start --oknodo --background --exec "
    "/usr/sbin/mariadbd`, or `docker compose up -d mariadb`",
    "Redis": "start it with `redis-server --daemonize yes`, or `docker compose up -d redis`",
}


class PreflightError(Exception):
    """A dependency is unreachable; the message says which URL and how to start it."""


def _log(message: str) -> None:
    print(f"[dev] {message}", flush=True)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def _require(service: str, url: str, probe: Awaitable[object]) -> None:
    try:
        await asyncio.wait_for(probe, timeout=10)
    except Exception as error:
        raise PreflightError(
            f"cannot reach {service} at {redacted(url)} ({type(error).__name__}: {error}); "
            f"{HOW_TO_START[service]}"
        ) from None


async def prepare_data(settings: Settings, seed_users: int) -> list[str]:
    """Databases, migrations, replica schema, demo data and logins. Returns lines to print."""
    redis = connect_redis(settings.redis_url, decode_responses=False)
    try:
        await _require(
            "PostgreSQL",
            settings.database_url,
            ensure_postgres_database(settings.async_database_url),
        )
        await _require(
            "MariaDB",
            settings.replica_database_url,
            ensure_mysql_database(settings.async_replica_url),
        )
        await _require("Redis", settings.redis_url, redis.ping())
    finally:
        await redis.aclose()

    await migrate(settings.async_database_url)
    lines: list[str] = []
    dialler, replica = dialler_engine(settings, pool_size=2), replica_engine(settings, pool_size=2)
    try:
        await create_replica_schema(replica)
        if await replica_is_empty(replica):
            _log(f"replica is empty: loading demo data for {seed_users:,} claimants")
            report = await load_demo_data(
                replica, dialler, generate(seed_users, now=datetime.now(UTC)), replace=False
            )
            _log(f"demo data loaded in {report.seconds:.1f}s")
        created = await create_demo_logins(dialler, settings.demo_password.get_secret_value())
        if created:
            lines.append(
                f"Demo logins created (password: {settings.demo_password.get_secret_value()}):"
            )
            lines += [
                f"  {login.email:<30} {login.role.value:<10} {login.queue or ''}"
                for login in created
            ]
    finally:
        await dialler.dispose()
        await replica.dispose()
    return lines


@dataclass
class Process:
    name: str
    argv: list[str]
    ready: Callable[[], Awaitable[bool]]
    echo: bool = True  # stream output to the console as well as the log file
    handle: asyncio.subprocess.Process | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


async def _pump(stream: asyncio.StreamReader, name: str, log: TextIO, echo: bool) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        log.write(text + "\n")
        log.flush()
        if echo:
            print(f"[{name}] {text}", flush=True)


def _bin(name: str) -> str:
    """Executables installed by pip into the same environment as this interpreter."""
    return str(Path(sys.executable).parent / name)


def temporal_process(settings: Settings) -> Process | None:
    """The Temporal dev server, unless one already answers at TEMPORAL_ADDRESS."""
    host, _, port = settings.temporal_address.rpartition(":")
    if _port_open(host, int(port)):
        _log(f"Temporal already answers at {settings.temporal_address}; using it")
        return None
    state = settings.dev_state_dir
    state.mkdir(parents=True, exist_ok=True)
    ui_port = make_url(
        f"http://{settings.temporal_ui_url.host}:{settings.temporal_ui_url.port}"
    ).port
    argv = [
        _bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        port,
        "--ui-port",
        str(ui_port or 8233),
        "--namespace",
        settings.temporal_namespace,
        "--db-filename",
        str(state / "temporal.sqlite"),
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]
    ui = str(settings.temporal_ui_url).rstrip("/")

    async def ready() -> bool:
        return _port_open(host, int(port)) and await _http_ok(ui)

    return Process("temporal", argv, ready, echo=False)


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


def runs_local_replica(settings: Settings) -> bool:
    """True when the replica URL points at the MariaDB `dialler dev` runs itself."""
    url = make_url(settings.replica_database_url)
    return url.host in ("127.0.0.1", "localhost") and url.port == settings.local_replica_port


async def local_replica_process(settings: Settings) -> Process | None:
    """The dedicated MariaDB with the binlog on, unless one already answers on its port.
    Its data directory is created on first use."""
    if not runs_local_replica(settings):
        return None
    port = settings.local_replica_port
    if _port_open("127.0.0.1", port):
        _log(f"MariaDB already answers on 127.0.0.1:{port}; using it")
        return None
    datadir = (settings.dev_state_dir / "mariadb").resolve()
    if await initialise(datadir):
        _log(f"MariaDB data directory created in {datadir}")

    async def ready() -> bool:
        return await answers(port)

    return Process("mariadb", server_argv(datadir, port), ready, echo=False)


def product_processes(settings: Settings) -> list[Process]:
    """Every process of the product."""
    health_url = f"http://{settings.web_host}:{settings.web_port}/api/health"

    async def web_ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                return (await client.get(health_url)).status_code == 200
        except httpx.HTTPError:
            return False

    async def worker_ready() -> bool:
        return await _task_queue_polled(settings, settings.temporal_task_queue)

    async def ai_worker_ready() -> bool:
        return await _task_queue_polled(settings, settings.ai_task_queue)

    started = time.time()

    async def cdc_ready() -> bool:
        """The CDC worker publishes its metrics once a second once it follows the source."""
        redis = connect_redis(settings.redis_url)
        try:
            metrics = await read_metrics(redis, settings.cdc_source.value)
        finally:
            await redis.aclose()
        return float(metrics.get("heartbeat_at") or 0) >= started

    processes = [Process("outreach-worker", [_bin("dialler"), "worker", "outreach"], worker_ready)]
    if settings.cdc_source is not CdcSource.NONE:
        processes.append(Process("cdc-worker", [_bin("dialler"), "sync", "start"], cdc_ready))
    if settings.ai_configured:
        processes.append(Process("ai-worker", [_bin("dialler"), "worker", "ai"], ai_worker_ready))
    else:
        _log(AI_NOT_STARTED)
    processes.append(Process("web", [_bin("dialler"), "web"], web_ready))
    return processes


AI_NOT_STARTED = (
    "AI worker not started: no model is configured (OPENAI_MODEL); every contact goes to people"
)


def _ai_line(settings: Settings) -> str:
    if not settings.ai_configured:
        return "off: no model configured (OPENAI_MODEL), every contact goes to people"
    return f"model {settings.openai_model.strip()}, task queue {settings.ai_task_queue}"


async def _task_queue_polled(settings: Settings, task_queue: str) -> bool:
    """True once a worker polls `task_queue` for workflow or activity tasks (the outreach
    worker provisions the schedules first)."""
    try:
        client = await connect_temporal(settings)
        for kind in (
            TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        ):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.temporal_namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            if response.pollers:
                return True
    except RPCError:
        return False
    return False


class DevStack:
    def __init__(self, settings: Settings, seed_users: int) -> None:
        self.settings = settings
        self.seed_users = seed_users
        self.processes: list[Process] = []
        self.log_dir = settings.dev_state_dir / "logs"

    async def _start(self, process: Process, ready_within: float = 60) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{process.name}.log").open("a")
        process.handle = await asyncio.create_subprocess_exec(
            *process.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        assert process.handle.stdout is not None
        process.pumps.append(
            asyncio.create_task(_pump(process.handle.stdout, process.name, log, process.echo))
        )
        self.processes.append(process)
        deadline = time.monotonic() + ready_within
        while not await process.ready():
            if process.handle.returncode is not None:
                raise RuntimeError(
                    f"{process.name} exited with {process.handle.returncode}; "
                    f"see {self.log_dir / (process.name + '.log')}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} not ready after {ready_within:.0f}s")
            await asyncio.sleep(0.25)
        _log(f"{process.name} is ready")

    async def _binlog_readable(self) -> bool:
        """The binlog CDC worker needs a server with the binlog on; without one the stack
        runs without it (reconcile and the catch-up schedule keep the queues current)."""
        if self.settings.cdc_source is not CdcSource.BINLOG:
            return True
        try:
            await server_position(BinlogConnection.from_url(self.settings.binlog_url))
        except BinlogConfigError as error:
            _log(f"CDC worker not started: {error}")
            _log("set CDC_SOURCE=none to silence this, or use the default REPLICA_DATABASE_URL")
            return False
        return True

    async def _ai_agent_exists(self) -> bool:
        """The AI worker works as the AI agent AI_AGENT_EMAIL and stops at once without
        it: then the stack runs without the AI worker (people make every contact) and says
        how to create the agent."""
        email = self.settings.ai_agent_email
        engine = dialler_engine(self.settings, pool_size=1)
        try:
            async with engine.connect() as conn:
                record = await agent_store.staff_by_email(conn, email)
        finally:
            await engine.dispose()
        if record is not None and record.is_ai and record.is_active:
            return True
        _log(
            f"AI worker not started: AI_AGENT_EMAIL={email} is not an active AI agent; create "
            f"it with `dialler agents add {email} --name 'AI agent' --queue outstanding --ai`"
        )
        return False

    async def _first_reconcile(self) -> None:
        """Run the reconcile schedule now rather than in 5 minutes, so the queues fill while
        the developer opens the app (it proceeds in the background)."""
        client = await connect_temporal(self.settings)
        await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).trigger()
        _log("reconcile triggered: claimants are being brought under workflows")

    async def stop(self) -> None:
        for process in reversed(self.processes):
            handle = process.handle
            if handle is None or handle.returncode is not None:
                continue
            handle.terminate()
            try:
                await asyncio.wait_for(handle.wait(), timeout=10)
            except TimeoutError:
                handle.kill()
                await handle.wait()
            _log(f"{process.name} stopped")
        for process in self.processes:
            for pump in process.pumps:
                pump.cancel()

    async def run(self) -> int:
        started = time.monotonic()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            mariadb = await local_replica_process(self.settings)
            if mariadb:
                await self._start(mariadb)
            lines = await prepare_data(self.settings, self.seed_users)
            temporal = temporal_process(self.settings)
            if temporal:
                await self._start(temporal)
            for process in product_processes(self.settings):
                if process.name == "cdc-worker" and not await self._binlog_readable():
                    continue
                if process.name == "ai-worker" and not await self._ai_agent_exists():
                    continue
                await self._start(process)
            await self._first_reconcile()
        except PreflightError as error:
            print(f"[dev] {error}", file=sys.stderr, flush=True)
            await self.stop()
            return 1
        except (RuntimeError, OSError) as error:  # LocalMariaDBError is a RuntimeError
            print(f"[dev] could not start: {error}", file=sys.stderr, flush=True)
            await self.stop()
            return 1

        web = f"http://{self.settings.web_host}:{self.settings.web_port}"
        summary = [
            f"RMC Dialler is running (ready in {time.monotonic() - started:.1f}s):",
            f"  web app       {web}",
            f"  health        {web}/api/health",
            f"  API spec      {web}/openapi.json",
            f"  Temporal UI   {str(self.settings.temporal_ui_url).rstrip('/')}",
            f"  replica       {redacted(self.settings.replica_database_url)}",
            f"  CDC           {self.settings.cdc_source.value} (`dialler sync status`)",
            f"  AI agents     {_ai_line(self.settings)}",
            f"  logs          {self.log_dir}/",
            *lines,
            "Press Ctrl-C to stop everything.",
        ]
        print("\n".join(summary), flush=True)

        exits = [asyncio.create_task(p.handle.wait()) for p in self.processes if p.handle]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
        crashed = [p.name for p in self.processes if p.handle and p.handle.returncode is not None]
        if crashed and stopper not in done:
            print(f"[dev] {', '.join(crashed)} exited unexpectedly; stopping", file=sys.stderr)
        _log("stopping")
        await self.stop()
        stopper.cancel()
        return 1 if crashed and stopper not in done else 0
