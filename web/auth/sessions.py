"""Server-side sessions: the cookie holds a random token, the database only its hash.

Sessions end after 30 idle minutes or 12 hours whatever the activity (both configurable),
and can be revoked at once (logout, an admin disabling an account).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store
from config.settings import Settings
from schemas.enums import AgentRole, Queue
from web.auth.identity import CurrentAgent

COOKIE_NAME = "rmc_session"
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most once a minute


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _current(
    agent: agent_store.Agent, *, via: str, session_hash: str | None = None
) -> CurrentAgent:
    return CurrentAgent(
        id=agent.id,
        email=agent.email,
        display_name=agent.display_name,
        role=AgentRole(agent.role),
        queue=Queue(agent.queue) if agent.queue else None,
        is_ai=agent.is_ai,
        via=via,
        session_hash=session_hash,
    )


class SessionStore:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self.idle = timedelta(minutes=settings.session_idle_minutes)
        self.absolute = timedelta(hours=settings.session_absolute_hours)

    async def create(self, agent_id: int, ip: str | None, user_agent: str | None) -> str:
        token = secrets.token_urlsafe(32)
        async with self._engine.begin() as conn:
            await agent_store.create_session(
                conn,
                agent_id=agent_id,
                token_hash=token_hash(token),
                expires_at=datetime.now(UTC) + self.absolute,
                ip_address=ip,
                user_agent=user_agent,
            )
        return token

    async def resolve(self, token: str) -> CurrentAgent | None:
        """The agent behind a live session, or None (unknown, revoked, idle or expired)."""
        hashed = token_hash(token)
        now = datetime.now(UTC)
        async with self._engine.connect() as conn:
            session = await agent_store.live_session(
                conn, hashed, now=now, idle_since=now - self.idle
            )
        if session is None:
            return None
        if now - session.last_seen_at > TOUCH_EVERY:
            async with self._engine.begin() as conn:
                await agent_store.touch_session(conn, session.session_id, now)
        return _current(session.agent, via="session", session_hash=hashed)

    async def bearer_agent(self, agent_id: int) -> CurrentAgent | None:
        """The active agent an API token names (a disabled account loses its tokens too)."""
        async with self._engine.connect() as conn:
            agent = await agent_store.active_agent(conn, agent_id)
        return None if agent is None else _current(agent, via="bearer")

    async def revoke(self, token: str) -> None:
        async with self._engine.begin() as conn:
            await agent_store.revoke_session(conn, token_hash(token), datetime.now(UTC))
