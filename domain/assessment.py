"""One claimant's standing: stage, score with its breakdown, and when they may be called.

`assess` is what the outreach workflow's assess activity returns. The stage is passed in
(derived by `domain.stages.derive_stage` with `rules.stage_priority`) so this function only
combines the contact policy and the score; it stays pure and deterministic for a given `now`.
"""

from __future__ import annotations

from datetime import datetime

from domain.agent_actions import paused_reason
from domain.agent_preference import HELD_FOR, agent_preference, preference_factor
from domain.ai_routing import NO_MODEL, handoff_points, route_contact
from domain.callback_routing import PERSONAL_CALLBACK, callback_hold
from domain.calling_windows import as_utc
from domain.consent import channel_refusals, rescreen_at
from domain.contact_policy import earliest_contact
from domain.facts import WRONG_NUMBER_REASON, wrong_number_in_force
from domain.rules import DiallerRules
from domain.scoring import score
from schemas.ai import AiAvailability
from schemas.enums import ConsentChannel
from schemas.outreach import (
    Assessment,
    Claim,
    ClaimantFacts,
    ContactHistory,
    ScoreFactor,
    Stage,
    TaskShape,
)


def assess(
    facts: ClaimantFacts,
    history: ContactHistory,
    rules: DiallerRules,
    now: datetime,
    stage: Stage,
    available: AiAvailability | None = None,
) -> Assessment:
    """`available`: the AI agent on duty, as the worker knows it (None: none, so every
    contact is a person's)."""
    now = as_utc(now, "now")
    # Vulnerable claimants are routed to people only, never to AI agents (DESIGN section 4).
    people_only = facts.is_vulnerable
    if stage is Stage.DONE:
        return Assessment(
            user_id=facts.user_id,
            stage=stage,
            score=0.0,
            factors=[],
            not_before=None,
            not_before_reason=_done_reason(facts),
            people_only=people_only,
        )
    not_before, reason = earliest_contact(facts, history, rules, now)
    if not_before is not None and wrong_number_in_force(facts):
        not_before, reason = None, WRONG_NUMBER_REASON
    # Consent and the TPS (PECR 21A, 21): no right to call means no task, whatever the time.
    refusals = channel_refusals(facts, stage.queue, rules.compliance, now)
    live_call = refusals.get(ConsentChannel.LIVE_CALL.value)
    if not_before is not None and live_call is not None:
        not_before, reason = None, live_call
    paused = paused_reason(facts)
    if paused is not None:  # a supervisor's hold outranks every other reason
        not_before, reason = None, paused
    total, factors = score(
        facts,
        history,
        stage,
        rules.scoring,
        now,
        callable_at=not_before,
        windows=rules.calling_windows,
    )
    boost = handoff_points(facts, rules.ai)
    if boost:
        total += boost
        factors = [*factors, ScoreFactor("ai_handoff", boost, f"handed over by the AI +{boost:g}")]
    hold = callback_hold(facts, stage, rules.contact.personal_callback_grace)
    routing = route_contact(
        facts,
        stage.queue,
        refusals,
        hold.owner_agent_id if hold else None,
        history.attempts_7d,
        rules.ai,
        available or AiAvailability(unavailable_reason=NO_MODEL),
        now,
    )
    # A personal callback's hold outranks the previous successful agent's (same columns).
    preferred = None
    if hold is None:
        preferred = agent_preference(
            facts, history, rules, stage, not_before, now, to_ai=routing.to_ai
        )
    factors = [*factors, preference_factor(preferred, rules, now)]
    owner, held_until, held_for = None, None, None
    if hold is not None:
        owner, held_until, held_for = hold.owner_agent_id, hold.held_until, PERSONAL_CALLBACK
    elif preferred is not None and preferred.held_until is not None:
        owner, held_until, held_for = preferred.agent_id, preferred.held_until, HELD_FOR
    return Assessment(
        user_id=facts.user_id,
        stage=stage,
        score=total,
        factors=factors,
        not_before=not_before,
        not_before_reason=reason,
        people_only=people_only,
        owner_agent_id=owner,
        held_until=held_until,
        held_for=held_for,
        channel_refusals=refusals,
        rescreen_at=rescreen_at(facts, stage.queue, rules.compliance),
        routing=routing,
    )


def task_shape(assessment: Assessment, claim: Claim | None) -> TaskShape:
    """What the claimant's task should say: published in the stage's queue while the
    claimant may be called at some time (`not_before` set), no task otherwise."""
    queue = assessment.stage.queue
    listed = queue is not None and assessment.not_before is not None
    return TaskShape(
        queue=queue.value if listed and queue else None,
        score=assessment.score,
        not_before=assessment.not_before,
        claimed_by=claim.agent_id if claim else None,
        people_only=assessment.people_only,
        owner_agent_id=assessment.owner_agent_id,
        held_until=assessment.held_until,
        ai_routed=listed and assessment.routing is not None and assessment.routing.to_ai,
    )


def _done_reason(facts: ClaimantFacts) -> str:
    if facts.opted_out:
        return "opted out: outreach stopped for good"
    if facts.deceased:
        return "recorded as deceased: outreach stopped"
    return "nothing left to chase"
