"""The previous successful agent's hold (domain.agent_preference): anchored where the
claimant became callable again, so a re-assessment never lengthens it; never in the callback
queue, never for an AI attempt; shown in the breakdown and in the workflow's refusal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from domain.agent_actions import claim_refusal
from domain.agent_preference import HELD_FOR, agent_preference, preference_factor
from domain.assessment import assess
from domain.callback_routing import PERSONAL_CALLBACK
from domain.callback_routing import claim_refusal as hold_refusal
from domain.rules import DiallerRules, parse_rules
from schemas.enums import Queue
from schemas.outreach import (
    Assessment,
    ClaimantFacts,
    ClaimFact,
    ClaimRequest,
    ContactHistory,
    OutreachState,
    ScoreFactor,
    Stage,
)

RULES = DiallerRules()
# Tuesday 14 July 2026, 11:00 BST.
NOW = datetime(2026, 7, 14, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
AGENT, OTHER = 7, 8
HOLD = RULES.scoring.preferred_agent_hold  # 10 minutes
PROMISED = timedelta(hours=48)  # promised_to_sign's cooldown


def facts(**changes: object) -> ClaimantFacts:
    base = ClaimantFacts(
        consent_channels=["live_call"],
        user_id=3,
        is_enabled=True,
        status="active",
        signed=False,
        age_years=40,
        is_vulnerable=False,
        phone_key="p",
        preferred_call_start=None,
        preferred_call_end=None,
        claims=[ClaimFact(1, "Santander", "new", NOW - 30 * DAY, None)],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def promised(at: datetime, agent: int | None = AGENT) -> ContactHistory:
    """The claimant promised `agent` to sign at `at` (their latest contact)."""
    return ContactHistory(
        last_contact_at=at,
        last_disposition="promised_to_sign",
        last_disposition_at=at,
        previous_agent_id=agent,
    )


def _preference_factor(assessment: Assessment) -> ScoreFactor:
    return next(f for f in assessment.factors if f.name == "preferred_agent")


def test_no_previous_successful_agent_no_hold() -> None:
    assessment = assess(facts(), promised(NOW - 3 * DAY, None), RULES, NOW, Stage.UNSIGNED)
    assert (assessment.owner_agent_id, assessment.held_until, assessment.held_for) == (
        None,
        None,
        None,
    )
    assert _preference_factor(assessment) == ScoreFactor(
        "preferred_agent", 0.0, "no previous successful agent +0"
    )


def test_held_for_the_agent_from_when_the_claimant_became_callable() -> None:
    # the cooldown after the promise ended a minute ago: held until 9 minutes from now
    history = promised(NOW - PROMISED - MINUTE)
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    assert assessment.not_before == NOW
    assert assessment.owner_agent_id == AGENT
    assert assessment.held_until == NOW - MINUTE + HOLD
    assert assessment.held_for == HELD_FOR
    assert _preference_factor(assessment).detail == (
        f"offered first to agent {AGENT} (their previous successful agent) until 11:09, "
        "then anyone +0"
    )
    assert _preference_factor(assessment).contribution == 0
    # the score is untouched: the preference decides who, not how soon
    without = assess(facts(), replace(history, previous_agent_id=None), RULES, NOW, Stage.UNSIGNED)
    assert assessment.score == without.score


def test_a_reassessment_never_lengthens_the_hold() -> None:
    history = promised(NOW - PROMISED - MINUTE)
    first = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    again = assess(facts(), history, RULES, NOW + 5 * MINUTE, Stage.UNSIGNED)
    assert first.held_until == again.held_until == NOW - MINUTE + HOLD


def test_a_claimant_not_yet_callable_is_held_from_their_not_before() -> None:
    history = promised(NOW - PROMISED + 2 * HOUR)  # callable in 2 hours
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    assert assessment.not_before == NOW + 2 * HOUR
    assert assessment.held_until == NOW + 2 * HOUR + HOLD
    # at that time, the re-assessment finds the same hold
    later = assess(facts(), history, RULES, NOW + 2 * HOUR + MINUTE, Stage.UNSIGNED)
    assert later.held_until == NOW + 2 * HOUR + HOLD


def test_a_cooldown_ending_at_night_holds_from_the_morning_opening() -> None:
    # promised at 22:30 BST on Sunday 12 July: the cooldown ends at 22:30 on Tuesday, after the
    # window closes, so the claimant becomes callable at 08:00 on Wednesday
    at = datetime(2026, 7, 12, 21, 30, tzinfo=UTC)
    wednesday_8 = datetime(2026, 7, 15, 7, 0, tzinfo=UTC)
    evening = assess(facts(), promised(at), RULES, NOW, Stage.UNSIGNED)
    assert evening.not_before == wednesday_8
    assert evening.held_until == wednesday_8 + HOLD
    morning = assess(facts(), promised(at), RULES, wednesday_8 + 3 * MINUTE, Stage.UNSIGNED)
    assert morning.held_until == wednesday_8 + HOLD


def test_after_the_hold_anyone_and_the_breakdown_says_so() -> None:
    history = promised(NOW - PROMISED - HOUR)  # callable since an hour ago
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    assert (assessment.owner_agent_id, assessment.held_until) == (None, None)
    assert _preference_factor(assessment).detail == (
        f"previous successful agent {AGENT}: offered to them first until 10:10, now to anyone +0"
    )


def test_never_in_the_callback_queue() -> None:
    # a shared callback: no one's hold; the previous agent is named but not held for
    due = facts(callback_at=NOW - MINUTE)
    history = promised(NOW - 3 * DAY)
    assessment = assess(due, history, RULES, NOW, Stage.CALLBACK)
    assert (assessment.owner_agent_id, assessment.held_until) == (None, None)
    assert (
        "not held: a callback says whose the claimant is" in _preference_factor(assessment).detail
    )
    # a personal callback keeps its owner's hold
    personal = replace(due, callback_owner_agent_id=OTHER)
    assessment = assess(personal, history, RULES, NOW, Stage.CALLBACK)
    assert (assessment.owner_agent_id, assessment.held_for) == (OTHER, PERSONAL_CALLBACK)


def test_never_when_the_attempt_is_the_ais() -> None:
    history = promised(NOW - PROMISED - MINUTE)
    found = agent_preference(facts(), history, RULES, Stage.UNSIGNED, NOW, NOW, to_ai=True)
    assert found is not None and found.held_until is None
    assert preference_factor(found, RULES, NOW).detail == (
        f"previous successful agent {AGENT}: not held: this attempt is the AI's +0"
    )


def test_a_hold_of_zero_turns_it_off_and_an_uncallable_claimant_is_not_held() -> None:
    off = parse_rules("[scoring]\npreferred_agent_hold = { minutes = 0 }\n")
    history = promised(NOW - PROMISED - MINUTE)
    assessment = assess(facts(), history, off, NOW, Stage.UNSIGNED)
    assert assessment.owner_agent_id is None
    assert "the preference is off" in _preference_factor(assessment).detail
    opted = assess(facts(opted_out=True), history, RULES, NOW, Stage.UNSIGNED)
    assert opted.owner_agent_id is None


def test_a_longer_hold_from_the_rules_file() -> None:
    rules = parse_rules("[scoring]\npreferred_agent_hold = { minutes = 30 }\n")
    history = promised(NOW - PROMISED - MINUTE)
    assessment = assess(facts(), history, rules, NOW, Stage.UNSIGNED)
    assert assessment.held_until == NOW - MINUTE + timedelta(minutes=30)


def test_the_workflow_refuses_another_agent_while_held_and_says_why() -> None:
    history = promised(NOW - PROMISED - MINUTE)
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    state = OutreachState(facts=facts(), task_version=4)

    def request(agent: int, *, away: bool = False) -> ClaimRequest:
        return ClaimRequest(agent, Queue.UNSIGNED, task_version=4, owner_away=away)

    refusal = claim_refusal(state, assessment, request(OTHER), NOW)
    assert refusal == (
        f"held for agent {AGENT} (their previous successful agent) until "
        f"{(NOW - MINUTE + HOLD).isoformat()}"
    )
    assert claim_refusal(state, assessment, request(AGENT), NOW) is None
    assert claim_refusal(state, assessment, request(OTHER, away=True), NOW) is None
    assert claim_refusal(state, assessment, request(OTHER), NOW + HOLD) is None


def test_a_personal_callbacks_refusal_reads_as_before() -> None:
    until = NOW + MINUTE
    expected = f"a personal callback held for agent {AGENT} until {until.isoformat()}"
    assert hold_refusal(AGENT, until, OTHER, NOW) == expected
    assert hold_refusal(AGENT, until, OTHER, NOW, held_for=PERSONAL_CALLBACK) == expected
