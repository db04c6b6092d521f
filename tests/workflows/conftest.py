"""Harness for workflow tests: a real Temporal dev server, the real activities against
throwaway PostgreSQL and MariaDB databases, and rules with calling windows open all day
(so tests can claim at any hour; the window rules have their own tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from adapters.provisioning import (
    create_replica_schema,
    drop_mysql_database,
    drop_postgres_database,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from adapters.rules_file import load_rules_file
from config.settings import Settings
from domain.rules import DiallerRules, parse_rules
from services.claims import ClaimService
from tests.conftest import MYSQL_HOST, PG_HOST
from workers.outreach import build_worker, outreach_activities


def open_rules() -> DiallerRules:
    """Default rules with calling allowed all day, every day. `model_copy` skips validation on
    purpose: the DMA-hours check would (rightly) refuse these windows in a real rules file."""
    rules = parse_rules("")
    windows = rules.calling_windows.model_copy(
        update={
            "weekday_open": time(0, 0),
            "weekday_close": time(23, 59, 59),
            "weekend_open": time(0, 0),
            "weekend_close": time(23, 59, 59),
            "bank_holidays": [],
        }
    )
    return rules.model_copy(update={"calling_windows": windows})


@pytest.fixture(scope="session")
async def wf_databases() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    pg = f"postgresql+asyncpg://postgres@{PG_HOST}/dialler_wf_{os.getpid()}"
    my = f"mysql+aiomysql://root@{MYSQL_HOST}/rmc_wf_{os.getpid()}"
    await drop_postgres_database(pg)
    await ensure_postgres_database(pg)
    await migrate(pg)
    await drop_mysql_database(my)
    await ensure_mysql_database(my)
    dialler, replica = create_async_engine(pg, pool_size=20), create_async_engine(my, pool_size=10)
    await create_replica_schema(replica)
    yield dialler, replica
    await dialler.dispose()
    await replica.dispose()
    await drop_postgres_database(pg)
    await drop_mysql_database(my)


@pytest.fixture(scope="session")
def wf_settings(settings: Settings, temporal_env: WorkflowEnvironment) -> Settings:
    return settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "temporal_task_queue": f"outreach-test-{uuid.uuid4().hex[:8]}",
        }
    )


def typed_client(env: WorkflowEnvironment) -> Client:
    config = env.client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


@dataclass
class Harness:
    client: Client
    dialler: AsyncEngine
    replica: AsyncEngine
    task_queue: str
    claims: ClaimService
    rules: DiallerRules


@pytest.fixture(scope="session")
async def harness(
    temporal_env: WorkflowEnvironment,
    wf_databases: tuple[AsyncEngine, AsyncEngine],
    wf_settings: Settings,
) -> AsyncIterator[Harness]:
    dialler, replica = wf_databases
    client = typed_client(temporal_env)
    rules = open_rules()
    activities = outreach_activities(wf_settings, client, dialler, replica, rules)
    worker: Worker = build_worker(client, wf_settings.temporal_task_queue, activities)
    async with worker:
        yield Harness(
            client=client,
            dialler=dialler,
            replica=replica,
            task_queue=wf_settings.temporal_task_queue,
            claims=ClaimService(dialler, client, lease_seconds=600),
            rules=rules,
        )


@pytest.fixture(scope="session")
def default_rules(wf_settings: Settings) -> DiallerRules:
    return load_rules_file(wf_settings.rules_file)
