"""The console and calling tests' world: their own PostgreSQL and MariaDB databases (so no
other test's tasks sit in the queues), an outreach worker on the app's task queue, and the
app built by `create_app` against them, with calling windows open all day except one bank
holiday (so calls work at any hour and a callback on that day is refused)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from domain.rules import DiallerRules
from schemas import dialler_db as db
from schemas.enums import Queue
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from tests.workflows.conftest import Harness, open_rules, running_harness, scratch_databases
from tests.workflows.helpers import start, task_in
from web import create_app
from web.services import EXTENSION_KEY, WebServices

HTMX = {"HX-Request": "true"}
_CSRF = re.compile(r'"X-CSRF-Token": "([0-9a-f]+)"')
LONDON = ZoneInfo("Europe/London")


def holiday() -> date:
    """A weekday at least two days ahead: a bank holiday in the app's rules."""
    day = datetime.now(LONDON).date() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def console_rules() -> DiallerRules:
    rules = open_rules()
    windows = rules.calling_windows.model_copy(update={"bank_holidays": [holiday()]})
    return rules.model_copy(update={"calling_windows": windows})


@dataclass
class World:
    app: Quart
    harness: Harness
    dialler: AsyncEngine
    replica: AsyncEngine
    settings: Settings


def _url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def world(
    settings: Settings,
    temporal_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    outbox: Path = tmp_path_factory.mktemp("outbox")
    worker_settings = settings.model_copy(update={"email_outbox_dir": outbox})
    async with (
        scratch_databases("console") as (dialler, replica),
        running_harness(temporal_env, worker_settings, dialler, replica) as harness,
    ):
        app_settings = settings.model_copy(
            update={
                "database_url": _url(dialler),
                "replica_database_url": _url(replica),
                "temporal_address": temporal_env.client.service_client.config.target_host,
                "temporal_task_queue": harness.task_queue,
                "wrap_up_seconds": 30,
                "recordings_dir": tmp_path_factory.mktemp("recordings"),
            }
        )
        app = create_app(app_settings)
        services_of(app).use_rules(console_rules())
        # live events of this run only (other test runs may share the Redis server)
        services_of(app).live_namespace = f"test-{uuid.uuid4().hex[:8]}:"
        async with app.test_app():
            yield World(app, harness, dialler, replica, app_settings)


@pytest.fixture
def w(world: World) -> World:
    """The module's world, under a short name."""
    return world


def services_of(app: Quart) -> WebServices:
    deps = app.extensions[EXTENSION_KEY]
    assert isinstance(deps, WebServices)
    return deps


async def csrf(client: TestClientProtocol) -> str:
    """The session's CSRF token, as htmx sends it (from <body hx-headers>)."""
    page = await (await client.get("/console", headers={"Accept": "text/html"})).get_data(
        as_text=True
    )
    found = _CSRF.search(page)
    assert found, "no CSRF token on the console"
    return found.group(1)


@dataclass
class Agent:
    staff: Staff
    client: TestClientProtocol
    token: str

    def headers(self) -> dict[str, str]:
        return HTMX | {"X-CSRF-Token": self.token}

    async def post(self, path: str, form: dict[str, str] | None = None) -> Any:
        return await self.client.post(path, form=form or {}, headers=self.headers())

    async def get(self, path: str) -> Any:
        return await self.client.get(path, headers=HTMX)

    async def text(self, response: Any) -> str:
        return str(await response.get_data(as_text=True))


async def signed_in_agent(w: World, queue: Queue | None = Queue.UNSIGNED, **kwargs: Any) -> Agent:
    staff = await make_staff(w.dialler, queue=queue, **kwargs)
    client = w.app.test_client()
    assert await sign_in(client, staff) == 303
    return Agent(staff, client, await csrf(client))


async def ready_claimant(w: World, **kwargs: Any) -> int:
    """A claimant whose task is ready in the unsigned queue, and the only one there."""
    kwargs.setdefault("signed", False)
    kwargs.setdefault("pending", 1)
    user_id = await add_claimant(w.replica, **kwargs)
    await start(w.harness, user_id)
    row = await task_in(w.harness, user_id, Queue.UNSIGNED.value)
    await only_ready(w, user_id)
    return int(row.user_id)


async def only_ready(w: World, user_id: int) -> None:
    """Take every other ready task out of the queues, so "Next call" finds this claimant."""
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.status == "ready", db.call_tasks.c.user_id != user_id)
            .values(status="withdrawn")
        )


async def claim(w: World, agent: Agent, user_id: int | None = None) -> str:
    """Ready, then Next call: the page with the claimed claimant's context."""
    user_id = user_id or await ready_claimant(w)
    ready = await agent.post("/console/state", {"state": "ready"})
    assert ready.status_code == 200, await agent.text(ready)
    response = await agent.post("/console/next")
    page = await agent.text(response)
    assert response.status_code == 200, page
    assert f'data-user-id="{user_id}"' in page, page
    return page


async def task_of(w: World, user_id: int) -> Any:
    async with w.dialler.connect() as conn:
        return (
            await conn.execute(select(db.call_tasks).where(db.call_tasks.c.user_id == user_id))
        ).one()


async def calls_of(w: World, user_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(db.calls).where(db.calls.c.user_id == user_id).order_by(db.calls.c.id)
                )
            ).all()
        )


async def latest_state(w: World, agent_id: int) -> Any:
    async with w.dialler.connect() as conn:
        return (
            await conn.execute(
                select(db.agent_state_changes)
                .where(db.agent_state_changes.c.agent_id == agent_id)
                .order_by(db.agent_state_changes.c.id.desc())
                .limit(1)
            )
        ).one()


def now() -> datetime:
    return datetime.now(UTC)
