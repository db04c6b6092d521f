"""Demo logins for local development: one agent per queue, a supervisor and an admin.

Created only when the dialler DB has no agents at all, so a real deployment that already
has staff never gets demo accounts; the password comes from DEMO_PASSWORD.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store
from adapters.passwords import hash_password
from schemas.enums import AgentRole, Queue


@dataclass(frozen=True)
class DemoLogin:
    email: str
    display_name: str
    role: AgentRole
    queue: Queue | None


DEMO_LOGINS = (
    DemoLogin("unsigned.agent@demo.rmc", "Priya Shah", AgentRole.AGENT, Queue.UNSIGNED),
    DemoLogin("outstanding.agent@demo.rmc", "Tom Evans", AgentRole.AGENT, Queue.OUTSTANDING),
    DemoLogin("callback.agent@demo.rmc", "Aisha Khan", AgentRole.AGENT, Queue.CALLBACK),
    DemoLogin("supervisor@demo.rmc", "Gareth Jones", AgentRole.SUPERVISOR, None),
    DemoLogin("admin@demo.rmc", "Fiona Campbell", AgentRole.ADMIN, None),
)


async def create_demo_logins(engine: AsyncEngine, password: str) -> list[DemoLogin]:
    """Create the demo logins when there are no agents; return those created."""
    async with engine.begin() as conn:
        if await agent_store.count_agents(conn):
            return []
        password_hash = hash_password(password)
        await agent_store.add_agents(
            conn,
            [
                agent_store.NewAgent(
                    email=login.email,
                    display_name=login.display_name,
                    role=login.role.value,
                    queue=login.queue.value if login.queue else None,
                    password_hash=password_hash,
                )
                for login in DEMO_LOGINS
            ],
        )
    return list(DEMO_LOGINS)
