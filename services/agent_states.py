"""Agent states: Ready / Paused (with a reason) / On call / Wrap-up / Offline.

Every change is a row in `agent_state_changes` with its time; an agent's current state is
their latest row (an agent with none is Offline). Agents choose Ready and Paused themselves;
the console records On call (a call starts), Wrap-up (an outcome is saved) and Ready again
(wrap-up ends); signing in records Paused ("signed in") and signing out Offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store
from schemas.enums import AgentState

LABELS: dict[AgentState, str] = {
    AgentState.READY: "Ready",
    AgentState.PAUSED: "Paused",
    AgentState.ON_CALL: "On call",
    AgentState.WRAP_UP: "Wrap-up",
    AgentState.OFFLINE: "Offline",
}
PAUSE_REASONS = (
    "Break",
    "Lunch",
    "Comfort break",
    "Training",
    "Team meeting",
    "Coaching",
    "Admin",
    "Technical problem",
)
# Agents may set these themselves; the others follow from what they do.
CHOOSABLE = frozenset({AgentState.READY, AgentState.PAUSED})
REASON_MAX_LENGTH = 200
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class AgentStateError(ValueError):
    """A state change the agent may not make; the message says why, for the agent."""


@dataclass(frozen=True)
class AgentStatus:
    agent_id: int
    state: AgentState
    reason: str | None
    since: datetime

    @property
    def label(self) -> str:
        return LABELS[self.state]

    def seconds_in_state(self, now: datetime) -> float:
        return max(0.0, (now - self.since).total_seconds())


class AgentStateService:
    def __init__(self, engine: AsyncEngine, on_change: Callable[[], None] | None = None) -> None:
        self._engine = engine
        # told after each change commits (the supervisors' wallboard); must not raise
        self._on_change = on_change

    async def current(self, agent_id: int) -> AgentStatus:
        found = await self.current_for([agent_id])
        return found[agent_id]

    async def current_for(self, agent_ids: Iterable[int]) -> dict[int, AgentStatus]:
        """The current state of each agent (Offline for an agent with no recorded state)."""
        ids = sorted(set(agent_ids))
        async with self._engine.connect() as conn:
            changes = await agent_store.latest_states(conn, ids)
        latest = {
            c.agent_id: AgentStatus(c.agent_id, AgentState(c.state), c.reason, c.at)
            for c in changes
        }
        return {i: latest.get(i, AgentStatus(i, AgentState.OFFLINE, None, _NEVER)) for i in ids}

    async def record(
        self, agent_id: int, state: AgentState, reason: str | None = None
    ) -> AgentStatus:
        """Record a change (a repeat of the current state and reason records nothing)."""
        reason = (reason or "").strip()[:REASON_MAX_LENGTH] or None
        current = await self.current(agent_id)
        if current.state is state and current.reason == reason:
            return current
        async with self._engine.begin() as conn:
            at = await agent_store.record_state(conn, agent_id, state.value, reason)
        if self._on_change is not None:
            self._on_change()
        return AgentStatus(agent_id, state, reason, at)

    async def choose(self, agent_id: int, state: str, reason: str | None) -> AgentStatus:
        """A change the agent asked for: Ready, or Paused with a reason."""
        try:
            wanted = AgentState(state)
        except ValueError:
            raise AgentStateError("Choose Ready or Paused.") from None
        if wanted not in CHOOSABLE:
            raise AgentStateError("Choose Ready or Paused.")
        reason = (reason or "").strip()
        if wanted is AgentState.PAUSED and not reason:
            raise AgentStateError("Choose a reason for pausing.")
        if len(reason) > REASON_MAX_LENGTH:
            raise AgentStateError(f"A reason is at most {REASON_MAX_LENGTH} characters.")
        return await self.record(agent_id, wanted, reason if wanted is AgentState.PAUSED else None)
