"""Link events through the landing route (`/m/<token>`): each opening of the page is an
`opened` event, the claimant's confirmation a `used` one; an unknown, used-up or purged
token records nothing."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from quart import Quart
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.magic_links import TOKEN_BYTES
from schemas import dialler_db as db
from tests.web.test_magic_links import (  # noqa: F401 (app, link_settings: fixtures)
    Client,
    _new_link,
    app,
    link_settings,
)


@pytest.fixture
def client(app: Quart) -> Client:  # noqa: F811 (the fixture imported above)
    return Client(app)


async def _events(engine: AsyncEngine, link_id: int) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.scalars(
            select(db.magic_link_events.c.event)
            .where(db.magic_link_events.c.link_id == link_id)
            .order_by(db.magic_link_events.c.id)
        )
        return list(rows)


async def test_opening_and_using_a_link_are_recorded(
    client: Client, dialler_db: AsyncEngine
) -> None:
    token, link_id, _ = await _new_link(dialler_db)

    assert (await client.get(f"/m/{token}")).status_code == 200
    assert (await client.get(f"/m/{token}")).status_code == 200
    assert await _events(dialler_db, link_id) == ["opened", "opened"]

    assert (await client.post(f"/m/{token}")).status_code == 303
    assert await _events(dialler_db, link_id) == ["opened", "opened", "used"]

    # used up: opening or using it again is refused and records nothing
    assert (await client.get(f"/m/{token}")).status_code == 404
    assert (await client.post(f"/m/{token}")).status_code == 404
    assert await _events(dialler_db, link_id) == ["opened", "opened", "used"]
    async with dialler_db.connect() as conn:
        at = (
            await conn.execute(
                select(db.magic_link_events.c.at).where(db.magic_link_events.c.link_id == link_id)
            )
        ).scalars()
        assert all(moment is not None for moment in at)


async def test_unknown_expired_and_purged_tokens_record_nothing(
    client: Client, dialler_db: AsyncEngine
) -> None:
    before = await _count(dialler_db)
    assert (await client.get("/m/" + secrets.token_urlsafe(TOKEN_BYTES))).status_code == 404
    token, link_id, _ = await _new_link(dialler_db, expires_in=timedelta(seconds=-1))
    assert (await client.get(f"/m/{token}")).status_code == 404
    assert (await client.post(f"/m/{token}")).status_code == 404
    # a live link whose secret was purged cannot be found by its token any more
    live, live_id, _ = await _new_link(dialler_db)
    async with dialler_db.begin() as conn:
        await conn.execute(
            update(db.magic_links).where(db.magic_links.c.id == live_id).values(token_hash=None)
        )
    assert (await client.get(f"/m/{live}")).status_code == 404
    assert await _events(dialler_db, link_id) == [] and await _events(dialler_db, live_id) == []
    assert await _count(dialler_db) == before


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return len((await conn.scalars(select(db.magic_link_events.c.id))).all())
