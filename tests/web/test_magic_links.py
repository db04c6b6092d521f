"""`/m/<token>`: the landing page does not use the link up, the POST does (once), and every
token that cannot be used gets one and the same answer."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import quart.typing
from pydantic import AnyHttpUrl
from quart import Quart
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from domain.magic_links import TOKEN_BYTES, hash_token, verify_handoff
from schemas import dialler_db as db
from web import create_app

MAIN_APP = "https://claim.example.test"
_addresses = (f"10.77.{i // 250}.{i % 250 + 1}" for i in itertools.count())
_user_ids = itertools.count(930_000)


@pytest.fixture
def link_settings(settings: Settings, migrated_pg: str) -> Settings:
    # These routes need PostgreSQL and Redis only (no Temporal, no replica).
    return settings.model_copy(update={"main_app_url": AnyHttpUrl(MAIN_APP)})


@pytest.fixture
async def app(link_settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(link_settings)
    async with app.test_app():  # runs startup and shutdown around the test
        yield app


class Client:
    """A test client with its own client address, so each test has its own rate limits."""

    def __init__(self, app: Quart) -> None:
        self._client: quart.typing.TestClientProtocol = app.test_client()
        self.address = next(_addresses)
        self._scope = {"client": (self.address, 40000)}

    async def get(self, path: str) -> Any:
        return await self._client.get(path, scope_base=self._scope)

    async def post(self, path: str) -> Any:
        return await self._client.post(path, scope_base=self._scope)


@pytest.fixture
def client(app: Quart) -> Client:
    return Client(app)


async def _new_link(
    engine: AsyncEngine, *, expires_in: timedelta = timedelta(hours=1)
) -> tuple[str, int, int]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    user_id = next(_user_ids)
    async with engine.begin() as conn:
        link_id = await conn.scalar(
            insert(db.magic_links)
            .values(
                user_id=user_id,
                token_hash=hash_token(token),
                channel="sms",
                purpose="signature",
                expires_at=datetime.now(UTC) + expires_in,
            )
            .returning(db.magic_links.c.id)
        )
    assert link_id is not None
    return token, int(link_id), user_id


async def _link(engine: AsyncEngine, link_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(db.magic_links).where(db.magic_links.c.id == link_id))
        ).one()
    return dict(row._mapping)


async def _invalid_answer(client: Client) -> tuple[int, bytes]:
    response = await client.get("/m/" + secrets.token_urlsafe(TOKEN_BYTES))
    return response.status_code, await response.get_data()


async def test_get_shows_the_page_and_keeps_the_link_usable(
    client: Client, dialler_db: AsyncEngine
) -> None:
    token, link_id, _ = await _new_link(dialler_db)

    first = await client.get(f"/m/{token}")
    second = await client.get(f"/m/{token}")

    assert first.status_code == second.status_code == 200
    assert first.mimetype == "text/html"
    page = (await first.get_data()).decode()
    assert "Continue to your claim" in page
    assert f'<form method="post" action="/m/{token}"' in page
    assert '<button type="submit"' in page
    assert 'href="/static/css/app.css"' in page
    assert "<script" not in page and "style=" not in page
    link = await _link(dialler_db, link_id)
    assert link["used_at"] is None
    assert link["clicks"] == 2
    assert link["last_clicked_at"] is not None


async def test_post_uses_the_link_and_hands_off_with_a_verifiable_token(
    client: Client, dialler_db: AsyncEngine, link_settings: Settings
) -> None:
    token, link_id, user_id = await _new_link(dialler_db)
    await client.get(f"/m/{token}")

    response = await client.post(f"/m/{token}")

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{MAIN_APP}/auth/dialler-handoff"
    )
    [handoff] = parse_qs(location.query)["token"]
    claims = verify_handoff(
        handoff, link_settings.magic_link_secret.get_secret_value(), datetime.now(UTC)
    )
    assert claims.user_id == user_id
    assert claims.link_id == link_id
    assert claims.expires_at - claims.issued_at == timedelta(minutes=5)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"

    link = await _link(dialler_db, link_id)
    assert link["used_at"] is not None
    async with dialler_db.connect() as conn:
        audit = (
            await conn.execute(
                select(db.audit_log).where(
                    db.audit_log.c.action == "magic_link_used",
                    db.audit_log.c.subject_id == str(user_id),
                )
            )
        ).one()
    assert audit.detail == {"link_id": link_id}
    assert audit.actor_type == "claimant"
    assert audit.ip_address == client.address
    assert token not in str(dict(audit._mapping))


async def test_each_handoff_has_its_own_jti(client: Client, dialler_db: AsyncEngine) -> None:
    jtis = set()
    for _ in range(2):
        token, _, _ = await _new_link(dialler_db)
        location = (await client.post(f"/m/{token}")).headers["Location"]
        raw = parse_qs(urlsplit(location).query)["token"][0]
        # the claims only: the signature is checked in the test above
        jtis.add(jwt.decode(raw, options={"verify_signature": False})["jti"])
    assert len(jtis) == 2


async def test_a_used_link_gets_the_generic_page(client: Client, dialler_db: AsyncEngine) -> None:
    token, link_id, _ = await _new_link(dialler_db)
    assert (await client.post(f"/m/{token}")).status_code == 303
    used_at = (await _link(dialler_db, link_id))["used_at"]

    again = await client.post(f"/m/{token}")
    opened = await client.get(f"/m/{token}")

    expected = await _invalid_answer(client)
    assert (again.status_code, await again.get_data()) == expected
    assert (opened.status_code, await opened.get_data()) == expected
    assert "Location" not in again.headers
    link = await _link(dialler_db, link_id)
    assert link["used_at"] == used_at
    assert link["clicks"] == 0


async def test_an_expired_link_gets_the_generic_page(
    client: Client, dialler_db: AsyncEngine
) -> None:
    token, link_id, _ = await _new_link(dialler_db, expires_in=-timedelta(seconds=1))

    opened = await client.get(f"/m/{token}")
    posted = await client.post(f"/m/{token}")

    expected = await _invalid_answer(client)
    assert (opened.status_code, await opened.get_data()) == expected
    assert (posted.status_code, await posted.get_data()) == expected
    link = await _link(dialler_db, link_id)
    assert link["used_at"] is None and link["clicks"] == 0


async def test_unknown_and_malformed_tokens_get_the_same_page(client: Client) -> None:
    status, body = await _invalid_answer(client)
    assert status == 404
    page = body.decode()
    assert "This link can no longer be used" in page
    assert "<form" not in page
    for path in ("/m/" + "A" * 43, "/m/short", "/m/" + "x" * 300, "/m/%3Cscript%3E"):
        for method in (client.get, client.post):
            response = await method(path)
            assert (response.status_code, await response.get_data()) == (status, body), path


async def test_two_simultaneous_posts_use_the_link_once(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    token, _, _ = await _new_link(dialler_db)
    clients = [Client(app) for _ in range(5)]

    responses = await asyncio.gather(*(c.post(f"/m/{token}") for c in clients))

    assert sorted(r.status_code for r in responses) == [303, 404, 404, 404, 404]


async def test_pages_carry_the_strict_csp_and_no_cache(
    client: Client, dialler_db: AsyncEngine
) -> None:
    token, _, _ = await _new_link(dialler_db)
    for response in (await client.get(f"/m/{token}"), await client.get("/m/" + "B" * 43)):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "noindex" in response.headers["X-Robots-Tag"]


async def test_the_landing_form_may_post_on_to_the_main_app(
    client: Client, dialler_db: AsyncEngine
) -> None:
    # browsers apply form-action to the redirect after the POST as well
    token, _, _ = await _new_link(dialler_db)
    csp = (await client.get(f"/m/{token}")).headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["form-action"] == ["'self'", MAIN_APP]


async def test_the_stylesheet_is_served(client: Client) -> None:
    response = await client.get("/static/css/app.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"


async def test_the_routes_have_a_tight_rate_limit(client: Client) -> None:
    statuses = [(await client.get("/m/" + "C" * 43)).status_code for _ in range(11)]
    assert statuses == [404] * 10 + [429]
    # the POST route has its own budget
    assert (await client.post("/m/" + "C" * 43)).status_code == 404
