"""Server-side sessions: the cookie holds a random token, the database only its hash.

Sessions end after 30 idle minutes or 12 hours whatever the activity (both configurable),
and can be revoked at once (logout, an admin disabling an account).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from web.auth.identity import CurrentAgent

COOKIE_NAME = "rmc_session"
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most once a minute


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.absolute = timedelta(hours=settings.session_absolute_hours)

    async def create(self, agent_id: int, ip: str | None, user_agent: str | None) -> str:
        token = secrets.token_urlsafe(32)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(db.agent_sessions).values(
                    agent_id=agent_id,
                    token_hash=token_hash(token),
                    expires_at=datetime.now(UTC) + self.absolute,
                    ip_address=ip,
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
        return token

    async def resolve(self, token: str) -> CurrentAgent | None:
        """The agent behind a live session, or None (unknown, revoked, idle or expired)."""
        hashed = token_hash(token)
        now = datetime.now(UTC)
        sessions, agents = db.agent_sessions.c, db.agents.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        sessions.id,
                        sessions.last_seen_at,
                        agents.id.label("agent_id"),
                        agents.email,
                        agents.display_name,
                        agents.role,
                        agents.queue,
                        agents.is_ai,
                    )
                    .join(db.agents, agents.id == sessions.agent_id)
                    .where(
                        sessions.token_hash == hashed,
                        sessions.revoked_at.is_(None),
                        sessions.expires_at > now,
                        sessions.last_seen_at > now - self.idle,
                        agents.is_active,
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(db.agent_sessions)
                    .where(db.agent_sessions.c.id == row.id)
                    .values(last_seen_at=now)
                )
        return CurrentAgent(
            id=row.agent_id,
            email=row.email,
            display_name=row.display_name,
            role=AgentRole(row.role),
            queue=Queue(row.queue) if row.queue else None,
            is_ai=row.is_ai,
            via="session",
            session_hash=hashed,
        )  # fmt: skip

    async def bearer_agent(self, agent_id: int) -> CurrentAgent | None:
        """The active agent an API token names (a disabled account loses its tokens too)."""
        agents = db.agents.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(db.agents).where(agents.id == agent_id, agents.is_active))
            ).one_or_none()
        if row is None:
            return None
        return CurrentAgent(
            id=row.id,
            email=row.email,
            display_name=row.display_name,
            role=AgentRole(row.role),
            queue=Queue(row.queue) if row.queue else None,
            is_ai=row.is_ai,
            via="bearer",
        )

    async def revoke(self, token: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(db.agent_sessions)
                .where(db.agent_sessions.c.token_hash == token_hash(token))
                .values(revoked_at=datetime.now(UTC))
            )

    async def revoke_all(self, agent_id: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(db.agent_sessions)
                .where(
                    db.agent_sessions.c.agent_id == agent_id,
                    db.agent_sessions.c.revoked_at.is_(None),
                )
                .values(revoked_at=datetime.now(UTC))
            )
