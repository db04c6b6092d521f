"""`run_cdc_worker` (what `dialler sync start` runs) built from settings alone: the binlog
source through CDC_BINLOG_URL with the minimal-grant reader, the SQS source through
AWS_ENDPOINT_URL and SQS_QUEUE_URL; and a clear refusal of a server without the binlog."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from pydantic import AnyHttpUrl, SecretStr
from redis.asyncio import Redis
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_binlog import BinlogConfigError
from adapters.cdc_metrics import read_metrics
from adapters.local_mariadb import RunningMariaDB
from config.settings import CdcSource, Settings
from schemas import replica
from tests.cdc.conftest import READER, READER_PASSWORD, CdcHarness, cdc_harness, sqs_queue
from tests.factories import add_claimant
from tests.workflows.helpers import eventually, task_in
from workers.cdc import run_cdc_worker


def worker_settings(ch: CdcHarness, settings: Settings, **values: object) -> Settings:
    return settings.model_copy(
        update={
            "database_url": ch.h.dialler.url.render_as_string(hide_password=False),
            "replica_database_url": ch.h.replica.url.render_as_string(hide_password=False),
            "temporal_task_queue": ch.h.task_queue,
            **values,
        }
    )


@asynccontextmanager
async def running_worker(settings: Settings, redis: Redis) -> AsyncIterator[None]:
    await redis.delete(f"dialler:cdc:metrics:{settings.cdc_source.value}")
    stop = asyncio.Event()
    task = asyncio.create_task(run_cdc_worker(settings, stop))
    try:
        await eventually(
            lambda: read_metrics(redis, settings.cdc_source.value),
            lambda metrics: bool(metrics.get("heartbeat_at")) or task.done(),
        )
        if task.done():
            task.result()
        yield
    finally:
        stop.set()
        await task


async def test_the_binlog_worker_from_settings(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    binlog_server: RunningMariaDB,
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cdc_proc", binlog_server) as ch:
        address = temporal_env.client.service_client.config.target_host
        binlog_url = binlog_server.url(ch.database, READER, READER_PASSWORD)
        configured = worker_settings(
            ch,
            settings,
            temporal_address=address,
            cdc_source=CdcSource.BINLOG,
            cdc_binlog_url=binlog_url,
        )
        async with running_worker(configured, redis):
            user_id = await add_claimant(ch.h.replica, signed=False)
            await task_in(ch.h, user_id, "unsigned")


async def test_the_sqs_worker_from_settings(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis, sqs_endpoint: str
) -> None:
    async with (
        cdc_harness(temporal_env, settings, redis, "sqs_proc") as ch,
        sqs_queue(sqs_endpoint) as (client, queue_url),
    ):
        address = temporal_env.client.service_client.config.target_host
        configured = worker_settings(
            ch,
            settings,
            temporal_address=address,
            cdc_source=CdcSource.SQS,
            aws_endpoint_url=AnyHttpUrl(sqs_endpoint),
            aws_access_key_id="testing",
            aws_secret_access_key=SecretStr("testing"),
            sqs_queue_url=queue_url,
            sqs_wait_seconds=1,
        )
        user_id = await add_claimant(ch.h.replica, signed=False)
        async with ch.h.replica.connect() as conn:
            claim = (
                await conn.execute(select(replica.claims).where(replica.claims.c.id == user_id))
            ).one()
        record = {
            "data": dict(claim._mapping),
            "metadata": {
                "timestamp": datetime.now(UTC).isoformat(),
                "record-type": "data",
                "operation": "insert",
                "schema-name": "rmc_main",
                "table-name": "claims",
                "transaction-id": 1,
            },
        }
        async with running_worker(configured, redis):
            await client.send_message(
                QueueUrl=queue_url, MessageBody=json.dumps(record, default=str)
            )
            await task_in(ch.h, user_id, "unsigned")


async def test_a_server_without_the_binlog_is_refused_by_name(
    settings: Settings, replica_db: str
) -> None:
    """The machine's MariaDB runs without the binlog."""
    configured = settings.model_copy(update={"cdc_source": CdcSource.BINLOG})
    with pytest.raises(BinlogConfigError, match=r"the binlog is off \(log_bin=0\)"):
        await run_cdc_worker(configured, asyncio.Event())
