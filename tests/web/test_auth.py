"""Sign-in, sessions, CSRF, roles, brute force and API tokens over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from quart import Quart
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import dialler_db as db
from schemas.enums import AgentRole
from tests.web.conftest import PASSWORD, csrf_from, make_staff, sign_in


async def test_sign_in_sets_a_secure_session_cookie(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": PASSWORD, "csrf_token": token,
                        "next": "/api/me"},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["Location"] == "/api/me"
    cookie = response.headers["Set-Cookie"]
    assert "rmc_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = await client.get("/api/me")
    assert me.status_code == 200
    assert (await me.get_json())["email"] == staff.email
    async with dialler_db.connect() as conn:
        stored = await conn.scalar(
            select(db.agent_sessions.c.token_hash).where(db.agent_sessions.c.agent_id == staff.id)
        )
    assert stored and stored not in cookie  # only the hash is stored


async def test_wrong_password_re_renders_the_form_with_a_message(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    assert await sign_in(client, staff, "wrong") == 401
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": "nope", "csrf_token": token}
    )
    page = await response.get_data(as_text=True)
    assert "Email or password is incorrect." in page
    assert f'value="{staff.email}"' in page


async def test_open_redirects_are_refused(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": PASSWORD, "csrf_token": token,
                        "next": "//evil.example/"},
    )  # fmt: skip
    assert response.headers["Location"] == "/console"


@pytest.mark.parametrize(
    "target", ["/\\evil.example/", "/\t/evil.example/", "\\\\evil.example", "/%5Cevil.example"]
)
async def test_backslash_and_control_character_redirects_stay_on_site(
    app: Quart, dialler_db: AsyncEngine, target: str
) -> None:
    """Browsers read `/\\host` as `//host` and drop tabs: both leave the site."""
    staff = await make_staff(dialler_db)
    client = app.test_client()
    form_page = await client.get("/login", query_string={"next": target})
    assert "evil.example" not in await form_page.get_data(as_text=True)
    token = await csrf_from(client, "/login")
    response = await client.post(
        "/login", form={"email": staff.email, "password": PASSWORD, "csrf_token": token,
                        "next": target},
    )  # fmt: skip
    assert response.status_code == 303
    assert response.headers["Location"] == "/console"


async def test_missing_or_wrong_csrf_token_is_403(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    missing = await client.post("/login", form={"email": staff.email, "password": PASSWORD})
    assert missing.status_code == 403
    assert (await missing.get_json())["error"]["code"] == "csrf_failed"
    await sign_in(client, staff)
    forged = await client.post("/logout", form={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    assert (await client.get("/api/me")).status_code == 200  # still signed in


async def test_logout_revokes_the_session(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    await sign_in(client, staff)
    token = await csrf_from(client, "/login")  # any page carries the session's token
    response = await client.post("/logout", form={"csrf_token": token})
    assert response.status_code == 303
    assert (await client.get("/api/me")).status_code == 401


async def test_idle_and_absolute_expiry_send_you_back_to_sign_in(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    await sign_in(client, staff)
    sessions = db.agent_sessions
    async with dialler_db.begin() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.agent_id == staff.id)
            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=31))
        )
    assert (await client.get("/api/me")).status_code == 401
    page = await client.get("/console", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/console")

    other = app.test_client()
    await sign_in(other, staff)
    async with dialler_db.begin() as conn:
        await conn.execute(
            update(sessions)
            .where(sessions.c.agent_id == staff.id, sessions.c.revoked_at.is_(None))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await other.get("/api/me")).status_code == 401


async def test_disabled_account_loses_its_session(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    await sign_in(client, staff)
    async with dialler_db.begin() as conn:
        await conn.execute(
            update(db.agents).where(db.agents.c.id == staff.id).values(is_active=False)
        )
    assert (await client.get("/api/me")).status_code == 401


async def test_login_brute_force_is_rate_limited(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    token = await csrf_from(client, "/login")
    statuses = []
    for _ in range(7):
        response = await client.post(
            "/login", form={"email": staff.email, "password": "guess", "csrf_token": token}
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429


async def test_guessing_one_account_does_not_lock_out_colleagues_at_the_same_address(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    target, colleague = await make_staff(dialler_db), await make_staff(dialler_db)
    client = app.test_client()
    token = await csrf_from(client, "/login")
    for _ in range(6):
        await client.post(
            "/login", form={"email": target.email, "password": "guess", "csrf_token": token}
        )
    blocked = await client.post(
        "/login", form={"email": target.email, "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert await sign_in(app.test_client(), colleague) == 303


async def test_one_account_guessed_from_many_addresses_is_limited(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    target = await make_staff(dialler_db)
    statuses = []
    for n in range(22):
        client = app.test_client()
        response = await client.post(
            "/api/auth/token",
            json={"email": target.email, "password": "guess"},
            scope_base={"client": (f"10.0.{n // 250}.{n % 250 + 1}", 40000)},
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [401] * 20
    assert statuses[20:] == [429, 429]


async def test_api_bearer_tokens(app: Quart, dialler_db: AsyncEngine) -> None:
    staff = await make_staff(dialler_db, AgentRole.AGENT)
    client = app.test_client()
    bad = await client.post("/api/auth/token", json={"email": staff.email, "password": "x"})
    assert bad.status_code == 401
    invalid = await client.post("/api/auth/token", json={"email": staff.email})
    assert invalid.status_code == 400
    good = await client.post("/api/auth/token", json={"email": staff.email, "password": PASSWORD})
    body = await good.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = await app.test_client().get("/api/me", headers=headers)
    assert (await me.get_json())["id"] == staff.id
    forged = await app.test_client().get(
        "/api/me", headers={"Authorization": "Bearer " + body["access_token"][:-2] + "xx"}
    )
    assert forged.status_code == 401
