"""Who may take a callback: a personal callback is held for its owner, a shared one is not.

- A personal callback (one with an owner) is offered only to its owner from the time it is
  due until `held_until` = due time + the grace period (`contact.personal_callback_grace`
  in the rules file, 15 minutes by default).
- After that it falls to the shared callback pool: any callback agent may take it.
- It falls to the pool at once when the owner is away (disabled or logged out): the claim
  service knows that (sessions and agent states), the workflow does not, so the claim
  request says so (`owner_away`).
- A shared callback (no owner) goes to any callback agent.

Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.outreach import ClaimantFacts, Stage

PERSONAL_CALLBACK = "a personal callback"


@dataclass(frozen=True)
class CallbackHold:
    owner_agent_id: int
    held_until: datetime


def callback_hold(facts: ClaimantFacts, stage: Stage, grace: timedelta) -> CallbackHold | None:
    """The hold on the claimant's task for the callback's owner, or None (not a callback
    task, or a shared callback)."""
    owner, due = facts.callback_owner_agent_id, facts.callback_at
    if stage is not Stage.CALLBACK or owner is None or due is None:
        return None
    return CallbackHold(owner_agent_id=owner, held_until=due + grace)


def claim_refusal(
    owner_agent_id: int | None,
    held_until: datetime | None,
    agent_id: int,
    now: datetime,
    *,
    owner_away: bool = False,
    held_for: str | None = None,
) -> str | None:
    """Why `agent_id` may not take the task now because it is held for another agent (a
    personal callback, or `held_for` says what: domain.agent_preference), or None."""
    if owner_agent_id is None or held_until is None or owner_agent_id == agent_id:
        return None
    if owner_away or held_until <= now:
        return None
    until = held_until.isoformat()
    if held_for is None or held_for == PERSONAL_CALLBACK:
        return f"{PERSONAL_CALLBACK} held for agent {owner_agent_id} until {until}"
    return f"held for agent {owner_agent_id} ({held_for}) until {until}"
