"""The checks on agents' actions and an outcome's writes (`domain.agent_actions`), and the
wrong-number rule in the assessment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import agent_actions as rules
from domain.assessment import assess
from domain.dispositions import Disposition
from domain.facts import WRONG_NUMBER_REASON, apply_disposition
from domain.rules import parse_rules
from schemas.enums import Queue
from schemas.outreach import (
    Assessment,
    CallbackRequest,
    ClaimantFacts,
    ClaimFact,
    ClaimRequest,
    CompleteCallbacks,
    ContactHistory,
    NoteRequest,
    OutcomeRequest,
    OutreachState,
    RecordOutcome,
    SaveCallback,
    Stage,
    Suppress,
)

NOW = datetime(2026, 6, 3, 11, 0, tzinfo=UTC)  # a Wednesday, inside the calling windows


def _facts() -> ClaimantFacts:
    return ClaimantFacts(
        consent_channels=["live_call"],
        user_id=1, is_enabled=True, status="active", signed=False, age_years=50,
        is_vulnerable=False, phone_key="k", preferred_call_start=None, preferred_call_end=None,
        claims=[ClaimFact(1, "Lloyds", "in_progress", NOW - timedelta(days=30))],
    )  # fmt: skip


def _assessment(**changes: object) -> Assessment:
    values: dict[str, object] = {
        "user_id": 1, "stage": Stage.UNSIGNED, "score": 50.0, "factors": [],
        "not_before": NOW - timedelta(minutes=1), "not_before_reason": "can call now",
        "people_only": False,
    }  # fmt: skip
    values.update(changes)
    return Assessment(**values)  # type: ignore[arg-type]


def _request(**changes: object) -> ClaimRequest:
    values: dict[str, object] = {"agent_id": 7, "queue": Queue.UNSIGNED, "task_version": 3}
    values.update(changes)
    return ClaimRequest(**values)  # type: ignore[arg-type]


def _state() -> OutreachState:
    return OutreachState(facts=_facts(), task_version=3)


def test_a_current_callable_task_may_be_claimed() -> None:
    assert rules.claim_refusal(_state(), _assessment(), _request(), NOW) is None
    # a person may call a claimant who refused automated calls (PECR 19 is about AI voices)
    refused_ai = _assessment(channel_refusals={"automated_call": "no automated-call consent"})
    assert rules.claim_refusal(_state(), refused_ai, _request(), NOW) is None


@pytest.mark.parametrize(
    ("assessment", "request_", "refusal"),
    [
        (_assessment(), _request(task_version=2), "stale task"),
        (_assessment(stage=Stage.OUTSTANDING), _request(), "no longer in the unsigned queue"),
        (_assessment(not_before=None), _request(), "may not be called yet"),
        (_assessment(not_before=NOW + timedelta(hours=1)), _request(), "may not be called yet"),
        (_assessment(people_only=True), _request(is_ai=True), "people only"),
        (
            _assessment(channel_refusals={"automated_call": "no automated-call consent"}),
            _request(is_ai=True),
            "no automated-call consent",
        ),
        (_assessment(), _request(lease_seconds=0), "between 1 second and 4 hours"),
        (_assessment(), _request(lease_seconds=4 * 3600 + 1), "between 1 second and 4 hours"),
    ],
)
def test_claims_are_refused_with_the_reason(
    assessment: Assessment, request_: ClaimRequest, refusal: str
) -> None:
    found = rules.claim_refusal(_state(), assessment, request_, NOW)
    assert found is not None and refusal in found


def test_a_held_claim_is_refused_to_others_and_granted_again_to_its_holder() -> None:
    state = _state()
    state.claim = rules.new_claim(_request(lease_seconds=60), NOW)
    assert state.claim.lease_expires_at == NOW + timedelta(seconds=60)
    assert rules.claim_refusal(state, _assessment(), _request(), NOW) is None  # a retry
    other = rules.claim_refusal(state, _assessment(), _request(agent_id=8), NOW)
    assert other == "already claimed by agent 7"
    assert rules.claim_refusal(None, None, _request(), NOW) == rules.STILL_ASSESSING


def test_outcomes_need_the_claim_a_known_disposition_and_a_future_callback() -> None:
    claim = rules.new_claim(_request(), NOW)
    busy = OutcomeRequest(agent_id=7, disposition="busy")
    assert rules.outcome_refusal(claim, busy, NOW) is None
    assert rules.outcome_refusal(None, busy, NOW) == "this claimant is not claimed by you"
    other = OutcomeRequest(agent_id=8, disposition="busy")
    assert rules.outcome_refusal(claim, other, NOW) == "this claimant is not claimed by you"
    rude = OutcomeRequest(agent_id=7, disposition="hung_up_rudely")
    assert rules.outcome_refusal(claim, rude, NOW) == "unknown disposition 'hung_up_rudely'"
    callback = OutcomeRequest(agent_id=7, disposition="callback_requested")
    assert rules.outcome_refusal(claim, callback, NOW) == "a callback needs a time"
    callback.callback_at = NOW
    assert rules.outcome_refusal(claim, callback, NOW) == "a callback must be in the future"


def test_callbacks_notes_and_messages_are_checked() -> None:
    state = _state()
    later = CallbackRequest(agent_id=7, at=NOW + timedelta(hours=1))
    assert rules.callback_refusal(state, later, NOW) is None
    past = CallbackRequest(agent_id=7, at=NOW)
    assert rules.callback_refusal(state, past, NOW) == "a callback must be in the future"
    state.facts.opted_out = True
    assert rules.callback_refusal(state, later, NOW) == "outreach to this claimant has stopped"
    assert rules.stopped_refusal(state) == "outreach to this claimant has stopped"
    assert rules.note_refusal(NoteRequest(7, "prefers evenings")) is None
    assert rules.note_refusal(NoteRequest(7, " \n")) == "a note needs some text"
    too_long = NoteRequest(7, "x" * (rules.MAX_NOTE_LENGTH + 1))
    assert rules.note_refusal(too_long) == "a note is at most 4000 characters"


def test_an_outcome_plans_its_writes() -> None:
    facts = _facts()
    later = NOW + timedelta(days=1)

    def plan(disposition: str, callback_at: datetime | None = None) -> rules.OutcomePlan:
        request = OutcomeRequest(7, disposition, "notes", callback_at, call_id=3)
        return rules.outcome_plan(1, facts, request, Queue.UNSIGNED, NOW, "outreach-1@claim")

    booked = plan("callback_requested", later)
    assert booked.callback == SaveCallback(1, later, "notes", 7, 7)
    assert (booked.complete_callbacks, booked.suppress) == (None, None)
    assert booked.outcome == RecordOutcome(
        user_id=1, agent_id=7, queue=Queue.UNSIGNED, disposition="callback_requested",
        notes="notes", at=NOW, outcome_key="outreach-1@claim", call_id=3,
    )  # fmt: skip
    facts.callback_at = NOW - timedelta(minutes=5)  # a callback was due: this call honours it
    honoured = plan("no_answer")
    assert (honoured.callback, honoured.suppress) == (None, None)
    assert honoured.complete_callbacks == CompleteCallbacks(1, NOW)
    stop = plan("do_not_call")
    assert stop.suppress == Suppress(1, "do_not_call", "agent:7")
    assert stop.disposition is Disposition.DO_NOT_CALL


def test_a_wrong_number_makes_the_claimant_uncallable_and_says_why() -> None:
    policy = parse_rules("")
    facts = _facts()
    before = assess(facts, ContactHistory(), policy, NOW, Stage.UNSIGNED)
    assert before.not_before == NOW
    apply_disposition(facts, Disposition.WRONG_NUMBER, NOW)
    after = assess(facts, ContactHistory(), policy, NOW, Stage.UNSIGNED)
    assert (after.stage, after.not_before, after.not_before_reason) == (
        Stage.UNSIGNED,
        None,
        WRONG_NUMBER_REASON,
    )
    facts.phone_key = "a new number"
    again = assess(facts, ContactHistory(), policy, NOW, Stage.UNSIGNED)
    assert again.not_before == NOW
