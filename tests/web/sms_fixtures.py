"""The world of the SMS, webhook and API tests: their own PostgreSQL and MariaDB databases
(so no other test's tasks sit in the queues), an outreach worker on the app's task queue,
the app built by `create_app` against them, and helpers to sign Twilio webhooks and to call
the API with a bearer token or with a session cookie and its CSRF token."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from adapters.messaging import SimulatedSms
from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import start, task_in
from web import create_app
from web.auth.tokens import issue_api_token
from web.services import EXTENSION_KEY, WebServices
from web.twilio_signature import public_url, sign

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
_sids = itertools.count(1)
_addresses = (f"10.88.{i // 250}.{i % 250 + 1}" for i in itertools.count())
AuthMode = Literal["bearer", "cookie"]


def new_sid() -> str:
    return f"SM{next(_sids):032d}"


@dataclass
class World:
    app: Quart
    harness: Harness
    dialler: AsyncEngine
    replica: AsyncEngine
    settings: Settings

    @property
    def services(self) -> WebServices:
        deps = self.app.extensions[EXTENSION_KEY]
        assert isinstance(deps, WebServices)
        return deps

    def sent_sms(self) -> SimulatedSms:
        sender = self.services.sms_sender()
        assert isinstance(sender, SimulatedSms)
        return sender


def _url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
async def world(
    request: pytest.FixtureRequest, settings: Settings, temporal_env: WorkflowEnvironment
) -> AsyncIterator[World]:
    name = str(request.module.__name__).rsplit(".", 1)[-1].removeprefix("test_")
    async with (
        scratch_databases(name) as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as harness,
    ):
        app_settings = settings.model_copy(
            update={
                "database_url": _url(dialler),
                "replica_database_url": _url(replica),
                "temporal_address": temporal_env.client.service_client.config.target_host,
                "temporal_task_queue": harness.task_queue,
            }
        )
        app = create_app(app_settings)
        async with app.test_app():
            yield World(app, harness, dialler, replica, app_settings)


# --- people -----------------------------------------------------------------------------------


class Client:
    """A test client with an address of its own (rate limits are per address)."""

    def __init__(self, app: Quart) -> None:
        self.raw: TestClientProtocol = app.test_client()
        self.scope = {"client": (next(_addresses), 40000)}

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.raw.get(path, scope_base=self.scope, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.raw.post(path, scope_base=self.scope, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Any:
        return await self.raw.put(path, scope_base=self.scope, **kwargs)


async def page_csrf(client: Client, path: str = "/sms") -> str:
    page = await (await client.get(path, headers={"Accept": "text/html"})).get_data(as_text=True)
    found = _CSRF.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


@dataclass
class Person:
    """A signed-in member of staff with their session's CSRF token."""

    staff: Staff
    client: Client
    csrf: str

    async def get(self, path: str) -> Any:
        return await self.client.get(path, headers={"Accept": "text/html"})

    async def post(self, path: str, form: dict[str, str], *, csrf: bool = True) -> Any:
        data = form | ({"csrf_token": self.csrf} if csrf else {})
        return await self.client.post(path, form=data)


async def signed_in(
    w: World, role: AgentRole = AgentRole.AGENT, queue: Queue | None = Queue.UNSIGNED
) -> Person:
    staff = await make_staff(w.dialler, role, queue)
    client = Client(w.app)
    assert await sign_in(client.raw, staff) == 303
    return Person(staff, client, await page_csrf(client))


@dataclass
class Caller:
    """Calls the JSON API as one member of staff, by bearer token or by session cookie
    (which then sends the CSRF token in X-CSRF-Token unless told not to)."""

    staff: Staff
    client: Client
    mode: AuthMode
    token: str

    def headers(self, csrf: bool = True) -> dict[str, str]:
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self.token}"}
        return {"X-CSRF-Token": self.token} if csrf else {}

    async def get(self, path: str) -> Any:
        return await self.client.get(path, headers=self.headers())

    async def post(self, path: str, json: Any = None, *, csrf: bool = True) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers(csrf)}
        if json is not None:
            kwargs["json"] = json
        return await self.client.post(path, **kwargs)

    async def put(self, path: str, json: Any, *, csrf: bool = True) -> Any:
        return await self.client.put(path, json=json, headers=self.headers(csrf))


async def caller(
    w: World,
    mode: AuthMode,
    role: AgentRole = AgentRole.AGENT,
    queue: Queue | None = Queue.UNSIGNED,
    *,
    is_ai: bool = False,
) -> Caller:
    staff = await make_staff(w.dialler, role, queue)
    if is_ai:
        async with w.dialler.begin() as conn:
            await conn.execute(
                update(db.agents).where(db.agents.c.id == staff.id).values(is_ai=True)
            )
    client = Client(w.app)
    if mode == "bearer":
        secret = w.settings.jwt_secret.get_secret_value()
        return Caller(staff, client, mode, issue_api_token(staff.id, role.value, secret))
    assert await sign_in(client.raw, staff) == 303
    return Caller(staff, client, mode, await page_csrf(client))


# --- claimants and the queue ---------------------------------------------------------------------


async def claimant_in_queue(w: World, queue: Queue = Queue.UNSIGNED, **kwargs: Any) -> int:
    """A claimant whose task is ready in `queue`, and the only ready task there."""
    if queue is Queue.UNSIGNED:
        kwargs.setdefault("signed", False)
        kwargs.setdefault("pending", 1)
    else:
        kwargs.setdefault("signed", True)
        kwargs.setdefault("pending", 2)
    user_id = await add_claimant(w.replica, **kwargs)
    await start(w.harness, user_id)
    await task_in(w.harness, user_id, queue.value)
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.status == "ready", db.call_tasks.c.user_id != user_id)
            .values(status="withdrawn")
        )
    return user_id


async def rows(engine: AsyncEngine, table: Any, *where: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(table).where(*where).order_by(table.c.id))).all())


async def add_message(
    w: World,
    user_id: int | None,
    body: str,
    *,
    inbound: bool = True,
    number: str = "+447700900100",
) -> int:
    async with w.dialler.begin() as conn:
        message_id = await conn.scalar(
            insert(db.sms_messages)
            .values(
                user_id=user_id,
                direction="inbound" if inbound else "outbound",
                provider_sid=new_sid(),
                from_number=number if inbound else "+447700900000",
                to_number="+447700900000" if inbound else number,
                body=body,
                status="received" if inbound else "delivered",
            )
            .returning(db.sms_messages.c.id)
        )
    return int(message_id or 0)


async def suppress(w: World, reason: str, **subject: Any) -> None:
    async with w.dialler.begin() as conn:
        await conn.execute(insert(db.suppressions).values(reason=reason, source="test", **subject))


# --- Twilio webhooks -------------------------------------------------------------------------


async def post_signed(
    w: World,
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = None,
    client: Client | None = None,
) -> Any:
    """POST `params` to a webhook as Twilio would, signed for the public URL (or with the
    `signature` given; "" sends none)."""
    if signature is None:
        signature = sign(w.settings, public_url(w.settings, path), params)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return await (client or Client(w.app)).post(path, form=params, headers=headers)


def inbound_params(from_number: str, body: str, sid: str | None = None) -> dict[str, str]:
    return {
        "MessageSid": sid or new_sid(),
        "AccountSid": "AC" + "0" * 32,
        "From": from_number,
        "To": "+447700900000",
        "Body": body,
        "NumMedia": "0",
    }
