"""The previous successful agent: a claimant is offered first to the person who recorded their
latest positive outcome, for a while, then to anyone (a soft preference with a time limit).

It reuses the personal callback's hold (`owner_agent_id` + `held_until` on the task, see
`domain.callback_routing` and `adapters.task_store`'s claim query):

- the hold lasts `scoring.preferred_agent_hold` (10 minutes by default) from the moment the
  claimant became callable again after their last contact: the end of the cooldown (or lock,
  or cap) moved into the calling window, the same `domain.contact_policy.earliest_contact`
  that sets the task's `not_before`. It is anchored there, not at the assessment, so a
  re-assessment never lengthens it;
- while it lasts, only that agent is offered the claimant; at once anyone when the agent is
  away (disabled, signed out, no live session), as for a personal callback;
- never an AI agent (the call log only names a person), never while a callback is the
  claimant's stage (a personal callback already says whose it is, a shared one was shared on
  purpose), and never when this attempt is the AI's (the routing policy decides that first).

Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calling_windows import as_utc, format_local
from domain.contact_policy import earliest_contact
from domain.rules import DiallerRules
from schemas.outreach import ClaimantFacts, ContactHistory, ScoreFactor, Stage

HELD_FOR = "their previous successful agent"
FACTOR = "preferred_agent"


@dataclass(frozen=True)
class AgentPreference:
    """The claimant's previous successful agent, and until when the claimant is held for
    them (`held_until` None: not held now, `why_not` says why)."""

    agent_id: int
    held_until: datetime | None
    why_not: str = ""


def callable_since(
    facts: ClaimantFacts,
    history: ContactHistory,
    rules: DiallerRules,
    not_before: datetime,
    now: datetime,
) -> datetime | None:
    """When the claimant became (or becomes) callable after their last contact: `not_before`
    when that is ahead, else the earliest contact time as it stood at the last contact (the
    counts are today's, so a cap that bound in between is missed: the hold only ever comes
    out shorter). None: never contacted, so nothing to anchor a hold to."""
    now, not_before = as_utc(now, "now"), as_utc(not_before, "not_before")
    if not_before > now:
        return not_before
    contacts = [as_utc(t) for t in (history.last_contact_at, history.last_disposition_at) if t]
    if not contacts:
        return None
    since, _ = earliest_contact(facts, history, rules, max(contacts))
    if since is None:
        return None
    return min(since, now)


def agent_preference(
    facts: ClaimantFacts,
    history: ContactHistory,
    rules: DiallerRules,
    stage: Stage,
    not_before: datetime | None,
    now: datetime,
    *,
    to_ai: bool,
) -> AgentPreference | None:
    """The hold for the claimant's previous successful agent, or None (no such agent)."""
    agent = history.previous_agent_id
    if agent is None:
        return None
    hold = rules.scoring.preferred_agent_hold
    if stage is Stage.CALLBACK:
        return AgentPreference(agent, None, "not held: a callback says whose the claimant is")
    if to_ai:
        return AgentPreference(agent, None, "not held: this attempt is the AI's")
    if hold <= timedelta(0):
        return AgentPreference(agent, None, "not held: the preference is off")
    if not_before is None:
        return AgentPreference(agent, None, "not held: the claimant may not be called")
    since = callable_since(facts, history, rules, not_before, now)
    if since is None:
        return AgentPreference(agent, None, "not held: no contact to start the hold from")
    held_until = since + hold
    if held_until <= as_utc(now, "now"):
        when = format_local(held_until, rules.calling_windows.zone, now)
        return AgentPreference(agent, None, f"offered to them first until {when}, now to anyone")
    return AgentPreference(agent, held_until)


def preference_factor(
    preference: AgentPreference | None, rules: DiallerRules, now: datetime
) -> ScoreFactor:
    """The preference in the score's breakdown: it moves no points, it says who is offered
    the claimant first and until when."""
    if preference is None:
        return ScoreFactor(FACTOR, 0.0, "no previous successful agent +0")
    agent = preference.agent_id
    if preference.held_until is None:
        detail = f"previous successful agent {agent}: {preference.why_not} +0"
        return ScoreFactor(FACTOR, 0.0, detail)
    when = format_local(preference.held_until, rules.calling_windows.zone, now)
    return ScoreFactor(
        FACTOR, 0.0, f"offered first to agent {agent} ({HELD_FOR}) until {when}, then anyone +0"
    )
