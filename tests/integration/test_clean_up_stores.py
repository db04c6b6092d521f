"""The daily clean-up's deletes in their owners (adapters.agent_store, adapters.magic_links)
against a real PostgreSQL: only what ended before the cut-off goes; a session or link still
in use is never deleted."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, magic_links
from schemas import dialler_db as db
from tests.factories import next_id


async def _agent(engine: AsyncEngine) -> int:
    email = f"clean-up-{next_id()}@example.com"
    async with engine.begin() as conn:
        await agent_store.add_agents(
            conn, [agent_store.NewAgent(email, "Clean Up", "agent", None, None)]
        )
        found = await agent_store.credentials(conn, email)
    assert found is not None
    return found.agent_id


async def _session(engine: AsyncEngine, agent_id: int, expires_at: datetime) -> str:
    token_hash = secrets.token_hex(32)
    async with engine.begin() as conn:
        await agent_store.create_session(
            conn,
            agent_id=agent_id,
            token_hash=token_hash,
            expires_at=expires_at,
            ip_address="2001:db8::1%" + "x" * 60,  # longer than the column: cut, not refused
            user_agent=None,
        )
    return token_hash


async def _kept(engine: AsyncEngine, token_hashes: list[str]) -> set[str]:
    sessions = db.agent_sessions.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(sessions.token_hash).where(sessions.token_hash.in_(token_hashes))
        )
        return {str(r[0]) for r in rows}


async def _live(engine: AsyncEngine, token_hash: str, now: datetime) -> bool:
    async with engine.connect() as conn:
        found = await agent_store.live_session(
            conn, token_hash, now=now, idle_since=now - timedelta(hours=1)
        )
    return found is not None


async def test_only_sessions_ended_before_the_cut_off_are_deleted(dialler_db: AsyncEngine) -> None:
    now = datetime.now(UTC)
    agent_id = await _agent(dialler_db)
    expired = await _session(dialler_db, agent_id, now - timedelta(days=40))
    revoked = await _session(dialler_db, agent_id, now + timedelta(hours=12))
    recently_revoked = await _session(dialler_db, agent_id, now + timedelta(hours=12))
    live = await _session(dialler_db, agent_id, now + timedelta(hours=12))
    async with dialler_db.begin() as conn:
        await agent_store.revoke_session(conn, revoked, now - timedelta(days=40))
        await agent_store.revoke_session(conn, recently_revoked, now)
    assert await _live(dialler_db, live, now)
    assert not await _live(dialler_db, recently_revoked, now)

    async with dialler_db.begin() as conn:
        removed = await agent_store.delete_ended_sessions(conn, now - timedelta(days=30))

    assert removed >= 2  # other tests' old sessions may go too
    assert await _kept(dialler_db, [expired, revoked, recently_revoked, live]) == {
        recently_revoked,
        live,
    }
    assert await _live(dialler_db, live, now)


async def test_only_links_expired_before_the_cut_off_lose_their_secret(
    dialler_db: AsyncEngine,
) -> None:
    user_id = next_id()
    hashes = [secrets.token_hex(32) for _ in range(2)]
    async with dialler_db.begin() as conn:
        for token_hash in hashes:
            await magic_links.create_link(
                conn,
                user_id=user_id,
                token_hash=token_hash,
                channel="sms",
                purpose="documents",
                created_by=None,
                ttl=timedelta(hours=1),
            )
    now = datetime.now(UTC)
    async with dialler_db.begin() as conn:
        await magic_links.purge_expired_secrets(conn, now)
        # a link expiring in the future survives a cut-off of now, and opens
        assert await magic_links.count_click(conn, hashes[0]) is not None
        used = await magic_links.consume(conn, hashes[1])
        assert used is not None and used.user_id == user_id
        # used once: it is gone for a second use and for opening
        assert await magic_links.consume(conn, hashes[1]) is None
        assert await magic_links.count_click(conn, hashes[1]) is None

    async with dialler_db.begin() as conn:
        purged = await magic_links.purge_expired_secrets(conn, now + timedelta(hours=2))
    assert purged >= 2
    async with dialler_db.begin() as conn:
        assert await magic_links.count_click(conn, hashes[0]) is None
