"""Web test harness: the app built by `create_app` against the test databases, Redis and
the test Temporal server, plus helpers to create staff and sign them in."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from quart import Quart
from quart.typing import TestClientProtocol
from redis.asyncio import Redis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from adapters.passwords import hash_password
from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.conftest import REDIS_URL
from web import create_app

PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@dataclass(frozen=True)
class Staff:
    id: int
    email: str
    role: AgentRole
    queue: Queue | None


@pytest.fixture
async def web_settings(
    settings: Settings,
    migrated_pg: str,
    replica_db: str,
    temporal_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return settings.model_copy(
        update={
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "recordings_dir": tmp_path_factory.mktemp("recordings"),
        }
    )


@pytest.fixture(autouse=True)
async def _fresh_rate_limits() -> None:
    """Every test client shares one address; each test starts with a full allowance (rate
    limits and the sign-in throttle's failure counts)."""
    redis = Redis.from_url(REDIS_URL)
    keys = [key for pattern in ("ratelimit:*", "signin-throttle:*")
            async for key in redis.scan_iter(pattern)]  # fmt: skip
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def app(web_settings: Settings) -> AsyncIterator[Quart]:
    application = create_app(web_settings)
    async with application.test_app():
        yield application


async def make_staff(
    engine: AsyncEngine,
    role: AgentRole = AgentRole.AGENT,
    queue: Queue | None = Queue.UNSIGNED,
    *,
    active: bool = True,
) -> Staff:
    email = f"staff{next(_emails)}-{role.value}@test.rmc"
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=email,
                display_name=f"Test {role.value}",
                role=role.value,
                queue=queue.value if queue else None,
                password_hash=hash_password(PASSWORD),
                is_active=active,
            )
            .returning(db.agents.c.id)
        )
    return Staff(int(agent_id or 0), email, role, queue)


async def csrf_from(client: TestClientProtocol, path: str) -> str:
    page = await (await client.get(path)).get_data(as_text=True)
    found = _CSRF.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


async def sign_in(client: TestClientProtocol, staff: Staff, password: str = PASSWORD) -> int:
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": password, "csrf_token": token}
    )
    return response.status_code
