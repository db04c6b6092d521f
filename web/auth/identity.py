"""The signed-in member of staff, however they authenticated."""

from __future__ import annotations

from dataclasses import dataclass

from quart import g

from schemas.enums import AgentRole, Queue


@dataclass(frozen=True)
class CurrentAgent:
    id: int
    email: str
    display_name: str
    role: AgentRole
    queue: Queue | None
    is_ai: bool
    via: str  # "session" (cookie, CSRF applies) or "bearer" (API token)
    session_hash: str | None = None


def current_agent() -> CurrentAgent | None:
    agent: CurrentAgent | None = g.get("agent")
    return agent


def require_agent() -> CurrentAgent:
    agent = current_agent()
    if agent is None:  # the access rules run first; reaching here is a programming error
        raise RuntimeError("route declared for signed-in staff ran without a signed-in agent")
    return agent
