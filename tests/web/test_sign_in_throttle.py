"""Failed sign-ins count per account and address across every sign-in route, in Redis;
lockouts grow with repeated failures and each one is audited."""

from __future__ import annotations

import time
import types

import pytest
from limits.aio.storage.redis import redispy
from quart import Quart
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from schemas import dialler_db as db
from tests.conftest import free_port
from tests.web.conftest import PASSWORD, Staff, csrf_from, make_staff
from web import create_app
from web.auth import throttle
from web.auth.throttle import LOCKED_OUT


class MovableClock:
    """Stands in for the `time` module where the sign-in windows read the time, so a test
    can let a lockout pass without waiting for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    moving = MovableClock()
    fake = types.SimpleNamespace(time=moving.time)
    monkeypatch.setattr(redispy, "time", fake)
    monkeypatch.setattr(throttle, "time", fake)
    return moving


async def _fail_on_login(app: Quart, staff: Staff, times: int) -> list[int]:
    client = app.test_client()
    token = await csrf_from(client, "/login")
    statuses = []
    for _ in range(times):
        response = await client.post(
            "/login", form={"email": staff.email, "password": "guess", "csrf_token": token}
        )
        statuses.append(response.status_code)
    return statuses


async def _token_status(app: Quart, staff: Staff, password: str = PASSWORD) -> tuple[int, str]:
    response = await app.test_client().post(
        "/api/auth/token", json={"email": staff.email, "password": password}
    )
    return response.status_code, response.headers.get("Retry-After", "")


async def _lockouts(engine: AsyncEngine, subject: str) -> list[dict[str, str]]:
    audit = db.audit_log.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(audit.detail, audit.actor_type, audit.ip_address)
            .where(audit.action == LOCKED_OUT, audit.subject_id == subject)
            .order_by(audit.id)
        )
        return [dict(row.detail) | {"actor_type": row.actor_type} for row in rows]


async def test_failures_on_the_form_lock_the_token_endpoint_too(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    assert await _fail_on_login(app, staff, 5) == [401] * 5
    status, retry_after = await _token_status(app, staff)  # the right password, another route
    assert status == 429
    assert 0 < int(retry_after) <= 60


async def test_failures_on_the_token_endpoint_lock_the_form_too(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    assert [(await _token_status(app, staff, "guess"))[0] for _ in range(5)] == [401] * 5
    client = app.test_client()
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 429


async def test_the_count_is_shared_by_every_web_process(
    app: Quart, web_settings: Settings, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    assert await _fail_on_login(app, staff, 5) == [401] * 5
    other_process = create_app(web_settings)  # its own app, clients and limiter
    async with other_process.test_app():
        assert (await _token_status(other_process, staff))[0] == 429


async def test_lockouts_grow_with_repeated_failures_and_each_is_audited(
    app: Quart, dialler_db: AsyncEngine, clock: MovableClock
) -> None:
    staff = await make_staff(dialler_db)
    assert await _fail_on_login(app, staff, 5) == [401] * 5
    status, first = await _token_status(app, staff)
    # about a minute: the window's reset is rounded up to whole seconds, so 60 or 61
    assert status == 429 and 0 < int(first) <= 61

    clock.now += int(first) + 1  # the first lockout has passed: guessing may resume...
    assert await _fail_on_login(app, staff, 5) == [401] * 5
    status, second = await _token_status(app, staff)
    assert status == 429 and int(second) > 120  # ...and the next lockout is longer

    clock.now += int(second) + 1
    assert (await _token_status(app, staff))[0] == 200  # the real owner gets back in

    lockouts = await _lockouts(dialler_db, staff.email)
    assert [entry["scope"] for entry in lockouts] == ["account_at_address"] * 2
    assert [entry["route"] for entry in lockouts] == ["/login", "/login"]
    assert int(lockouts[0]["retry_after_seconds"]) < int(lockouts[1]["retry_after_seconds"])
    assert lockouts[0]["actor_type"] == "system"


async def test_one_account_guessed_from_many_addresses_across_routes_is_locked(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    target = await make_staff(dialler_db)
    statuses = []
    for n in range(21):
        address = {"client": (f"10.1.{n // 250}.{n % 250 + 1}", 40000)}
        client = app.test_client()
        if n % 2:
            response = await client.post(
                "/api/auth/token",
                json={"email": target.email, "password": "guess"},
                scope_base=address,
            )
        else:
            token = await csrf_from(client, "/login")
            response = await client.post(
                "/login",
                form={"email": target.email, "password": "guess", "csrf_token": token},
                scope_base=address,
            )
        statuses.append(response.status_code)
    assert statuses[:20] == [401] * 20
    assert statuses[20] == 429
    assert [entry["scope"] for entry in await _lockouts(dialler_db, target.email)] == ["account"]


async def test_magic_link_guesses_are_throttled_per_address_and_audited(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    guesser = app.test_client()
    statuses = []
    for n in range(11):
        response = await guesser.post(f"/m/{'A' * 42}{n:01d}")
        statuses.append(response.status_code)
    assert statuses[:10] == [404] * 10
    assert statuses[10] == 429
    audit = db.audit_log.c
    async with dialler_db.connect() as conn:
        scopes = (
            await conn.scalars(
                select(audit.detail["scope"].astext).where(
                    audit.action == LOCKED_OUT, audit.subject_type == "address"
                )
            )
        ).all()
    assert "magic_link_address" in scopes
    elsewhere = app.test_client()  # another address is not affected
    response = await elsewhere.post(f"/m/{'B' * 43}", scope_base={"client": ("10.9.9.9", 1)})
    assert response.status_code == 404


async def test_without_redis_sign_in_is_still_throttled_and_tokens_are_not_trusted(
    web_settings: Settings, dialler_db: AsyncEngine
) -> None:
    """Redis down: the failure counts live in process memory (still enforced), and a bearer
    token whose revocation cannot be checked gets a 503, never a 500 or a pass."""
    staff = await make_staff(dialler_db)
    settings = web_settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(settings)
    async with app.test_app():
        signed_in = await app.test_client().post(
            "/api/auth/token", json={"email": staff.email, "password": PASSWORD}
        )
        assert signed_in.status_code == 200
        token = (await signed_in.get_json())["access_token"]
        me = await app.test_client().get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 503
        assert (await me.get_json())["error"]["code"] == "token_check_unavailable"
        assert await _fail_on_login(app, staff, 6) == [401] * 5 + [429]
