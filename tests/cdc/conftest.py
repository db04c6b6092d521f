"""Harness for the CDC tests: a MariaDB of their own with the binlog on (the machine's runs
without it), a reading user with only REPLICATION SLAVE, BINLOG MONITOR and SELECT, an SQS
endpoint from moto (`ThreadedMotoServer`), and helpers to run the CDC consumer against the
real outreach worker of `running_harness`."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from moto.server import ThreadedMotoServer
from redis.asyncio import Redis
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_binlog import BinlogConnection, BinlogSource
from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_metrics import CdcMetrics
from adapters.cdc_source import ChangeSource
from adapters.cdc_sqs import SqsSource
from adapters.cdc_store import CdcStore
from adapters.context_cache import ContextCache
from adapters.local_mariadb import RunningMariaDB, create_reader, temporary_mariadb
from config.settings import Settings
from tests.conftest import MYSQL_HOST, REDIS_URL, free_port
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from workers.cdc import CdcConsumer, Deliver, temporal_deliver

READER, READER_PASSWORD = "cdc_reader", "cdc-reader-pw-1"
AWS = {"region_name": "eu-west-2", "aws_access_key_id": "testing", "aws_secret_access_key": "x"}


@pytest.fixture(scope="session")
async def binlog_server() -> AsyncIterator[RunningMariaDB]:
    async with temporary_mariadb(free_port()) as server:
        await create_reader(server.port, READER, READER_PASSWORD)
        yield server


@pytest.fixture(scope="session")
def sqs_endpoint() -> Any:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@dataclass
class CdcHarness:
    h: Harness
    server: RunningMariaDB | None
    redis: Redis

    @property
    def database(self) -> str:
        return str(self.h.replica.url.database)

    def binlog(self, **options: Any) -> BinlogSource:
        assert self.server is not None
        connection = BinlogConnection(
            "127.0.0.1", self.server.port, READER, READER_PASSWORD, self.database
        )
        return BinlogSource(connection, CdcStore(self.h.dialler), server_id=4201, **options)

    def cache(self) -> ContextCache:
        return ContextCache(self.redis, self.h.replica)


@asynccontextmanager
async def cdc_harness(
    env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    name: str,
    server: RunningMariaDB | None = None,
) -> AsyncIterator[CdcHarness]:
    """Scratch databases (the replica on the binlog server when given), and an outreach
    worker with the real activities on its own task queue."""
    mysql_host = f"127.0.0.1:{server.port}" if server else MYSQL_HOST
    async with (
        scratch_databases(name, mysql_host=mysql_host) as (dialler, replica),
        running_harness(env, settings, dialler, replica) as h,
    ):
        yield CdcHarness(h, server, redis)


@asynccontextmanager
async def running_consumer(
    ch: CdcHarness,
    source: ChangeSource,
    *,
    deliver: Deliver | None = None,
    cache: ContextCache | None = None,
    lanes: int = 4,
    drain_seconds: float = 5.0,
) -> AsyncIterator[CdcConsumer]:
    """The CDC consumer against the harness's worker, stopped (drained) on exit."""
    consumer = CdcConsumer(
        source,
        deliver=deliver or temporal_deliver(ch.h.client, ch.h.task_queue),
        store=CdcStore(ch.h.dialler),
        lookups=ReplicaLookups(ch.h.replica),
        metrics=CdcMetrics(source.name),
        cache=cache,
        redis=ch.redis,
        lanes=lanes,
        drain_seconds=drain_seconds,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield consumer
    finally:
        stop.set()
        await task


@asynccontextmanager
async def sqs_queue(endpoint: str) -> AsyncIterator[tuple[Any, str]]:
    """An SQS client on moto and a fresh queue; yields (client, queue URL)."""
    session = aioboto3.Session()
    async with session.client("sqs", endpoint_url=endpoint, **AWS) as client:
        created = await client.create_queue(QueueName=f"dms-{uuid.uuid4().hex[:8]}")
        yield client, created["QueueUrl"]


def sqs_source(ch: CdcHarness, client: Any, queue_url: str, **options: Any) -> SqsSource:
    options.setdefault("wait_seconds", 1)
    return SqsSource(client, queue_url, CdcStore(ch.h.dialler), **options)


async def queue_counts(client: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    attributes = (
        await client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


DIALLER = str(Path(sys.executable).parent / "dialler")


async def dialler_cli(
    ch: CdcHarness, env: WorkflowEnvironment, *args: str, **variables: str
) -> tuple[int, str]:
    """Run the `dialler` command against the harness (its databases, worker, Redis)."""
    environment = {
        **os.environ,
        "DATABASE_URL": ch.h.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": ch.h.replica.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": ch.h.task_queue,
        **variables,
    }
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode()
