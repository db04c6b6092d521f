"""Harness for workflow tests: a real Temporal dev server, the real activities against
throwaway PostgreSQL and MariaDB databases, and rules with calling windows open all day
(so tests can claim at any hour; the window rules have their own tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from adapters.provisioning import (
    create_replica_schema,
    drop_mysql_database,
    drop_postgres_database,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from adapters.rules_file import load_rules_file
from adapters.rules_source import RulesSource
from adapters.temporal import DATA_CONVERTER
from config.settings import Settings
from domain.rules import DiallerRules, parse_rules
from schemas import search_attributes
from services.claims import ClaimService
from tests.conftest import MYSQL_HOST, PG_HOST
from tests.fake_openai import FakeModel, fake_openai
from workers.outreach import build_worker, outreach_activities
from workflows.outreach_client import OutreachClient


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


@asynccontextmanager
async def scratch_databases(
    name: str, mysql_host: str = MYSQL_HOST
) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """A migrated PostgreSQL database and a MariaDB replica schema of their own (on the
    machine's MariaDB unless `mysql_host` names another, e.g. the CDC tests' binlog one)."""
    pg = f"postgresql+asyncpg://postgres@{PG_HOST}/dialler_{name}_{os.getpid()}"
    my = f"mysql+aiomysql://root@{mysql_host}/rmc_{name}_{os.getpid()}"
    await drop_postgres_database(pg)
    await ensure_postgres_database(pg)
    await migrate(pg)
    await drop_mysql_database(my)
    await ensure_mysql_database(my)
    dialler, replica = create_async_engine(pg, pool_size=20), create_async_engine(my, pool_size=10)
    await create_replica_schema(replica)
    try:
        yield dialler, replica
    finally:
        await dialler.dispose()
        await replica.dispose()
        await drop_postgres_database(pg)
        await drop_mysql_database(my)


def typed_client(env: WorkflowEnvironment) -> Client:
    config = env.client.config()
    config["data_converter"] = DATA_CONVERTER
    return Client(**config)


@dataclass
class Harness:
    client: Client
    dialler: AsyncEngine
    replica: AsyncEngine
    task_queue: str
    claims: ClaimService
    rules: DiallerRules  # in force while no version is saved in the harness's database
    rules_source: RulesSource


@asynccontextmanager
async def running_harness(
    env: WorkflowEnvironment,
    settings: Settings,
    dialler: AsyncEngine,
    replica: AsyncEngine,
    rules: DiallerRules | RulesSource | None = None,
    wrap: Callable[[list[Callable[..., Any]]], list[Callable[..., Any]]] | None = None,
) -> AsyncIterator[Harness]:
    """An outreach worker on its own task queue, with the real activities (`wrap` may
    stand some in). Its rules are those of a worker: the newest version saved in `dialler`,
    else (for a file) the given rules, by default calling windows open all day."""
    client = typed_client(env)
    if isinstance(rules, RulesSource):
        source = rules
    else:
        source = RulesSource(dialler, rules or open_rules())
    task_queue = f"outreach-test-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    activities = outreach_activities(settings, client, dialler, replica, source)
    if wrap is not None:
        activities = wrap(activities)
    try:
        async with build_worker(client, task_queue, activities):
            yield Harness(
                client,
                dialler,
                replica,
                task_queue,
                ClaimService(dialler, OutreachClient.over(client, task_queue)),
                source.file_rules,
                source,
            )
    finally:
        await terminate_running(client, task_queue)


async def terminate_running(client: Client, task_queue: str) -> None:
    """Workflow ids are shared by every test on the session's Temporal server: a claimant's
    workflow left running on a finished harness's queue would capture another test's
    signal-with-start for the same id (USE_EXISTING) and never run again. End them."""
    gate = asyncio.Semaphore(20)

    async def end(workflow_id: str, run_id: str | None) -> None:
        async with gate:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(workflow_id, run_id=run_id).terminate(
                    "test harness finished"
                )

    query = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'"
    try:
        running = [(w.id, w.run_id) async for w in client.list_workflows(query)]
    except RPCError:  # the time-skipping test server has no visibility: nothing to share
        return
    await asyncio.gather(*(end(workflow_id, run_id) for workflow_id, run_id in running))


@pytest.fixture(scope="session")
async def harness(temporal_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Harness]:
    async with (
        scratch_databases("wf") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as h,
    ):
        yield h


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: timers (leases, callbacks) fire without waiting."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server")
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type)
                for key in search_attributes.ALL
            },
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="module")
def model() -> Iterator[FakeModel]:
    """The scripted OpenAI-compatible fake (tests/fake_openai.py) for a module's AI tests."""
    with fake_openai() as served:
        yield served


@pytest.fixture(scope="session")
def default_rules(settings: Settings) -> DiallerRules:
    return load_rules_file(settings.rules_file)
