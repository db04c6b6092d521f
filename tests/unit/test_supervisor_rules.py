"""The pure rules behind the supervisor actions (`domain.agent_actions`) and the queue lists'
parameters (`domain.queue_listing`), and what a pause does to an assessment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.agent_actions import (
    callback_reassignment_refusal,
    claim_refusal,
    pause_refusal,
    resume_refusal,
    supervisor_release_refusal,
)
from domain.assessment import assess, task_shape
from domain.queue_listing import (
    MAX_PAGE,
    PAGE_SIZE,
    ListingRefused,
    TaskFilter,
    TaskOrder,
    parse_listing,
    parse_queue,
)
from domain.rules import parse_rules
from schemas.enums import Queue
from schemas.outreach import (
    CallbackReassignment,
    Claim,
    ClaimantFacts,
    ClaimFact,
    ClaimRequest,
    ContactHistory,
    OutreachPause,
    OutreachState,
    PauseRequest,
    ResumeRequest,
    Stage,
    SupervisorReleaseRequest,
)

NOW = datetime(2026, 3, 3, 11, 0, tzinfo=UTC)


def facts(**values: object) -> ClaimantFacts:
    base = ClaimantFacts(
        user_id=7, is_enabled=True, status="active", signed=False, age_years=40,
        is_vulnerable=False, phone_key="k", preferred_call_start=None, preferred_call_end=None,
        claims=[ClaimFact(1, "Santander", "in_progress", NOW - timedelta(days=30))],
        consent_channels=["live_call"], tps_screened_at=NOW,
    )  # fmt: skip
    for name, value in values.items():
        setattr(base, name, value)
    return base


def paused(reason: str = "complaint") -> OutreachPause:
    return OutreachPause(supervisor_id=9, reason=reason, paused_at=NOW)


def test_a_pause_needs_a_reason_and_an_unpaused_claimant() -> None:
    state = OutreachState(facts())
    assert pause_refusal(state, PauseRequest(9, "complaint")) is None
    assert (
        pause_refusal(None, PauseRequest(9, "complaint")) == "the claimant is still being assessed"
    )
    assert pause_refusal(state, PauseRequest(9, " ")) == "a pause needs a reason"
    assert pause_refusal(state, PauseRequest(9, "x" * 161)) == "a reason is at most 160 characters"
    assert pause_refusal(OutreachState(facts(paused=paused())), PauseRequest(9, "again")) == (
        "outreach is already paused by supervisor 9"
    )
    assert pause_refusal(OutreachState(facts(opted_out=True)), PauseRequest(9, "r")) == (
        "outreach to this claimant has stopped"
    )
    assert resume_refusal(state, ResumeRequest(9, "done")) == "outreach is not paused"
    assert resume_refusal(OutreachState(facts(paused=paused())), ResumeRequest(9, "done")) is None
    assert resume_refusal(OutreachState(facts(paused=paused())), ResumeRequest(9, "")) == (
        "resuming needs a reason"
    )


def test_a_paused_claimant_is_assessed_with_no_task_and_cannot_be_claimed() -> None:
    rules = parse_rules("")
    free = assess(facts(), ContactHistory(), rules, NOW, Stage.UNSIGNED)
    assert free.not_before is not None
    held = assess(facts(paused=paused()), ContactHistory(), rules, NOW, Stage.UNSIGNED)
    assert (held.not_before, held.not_before_reason) == (None, "paused by a supervisor: complaint")
    assert held.score == free.score  # the list still shows where they would stand
    assert task_shape(held, None).queue is None  # withdrawn

    state = OutreachState(facts(paused=paused()), task_version=3)
    request = ClaimRequest(agent_id=1, queue=Queue.UNSIGNED, task_version=3)
    assert claim_refusal(state, free, request, NOW) == (
        "outreach to this claimant is paused by a supervisor"
    )


def test_a_supervisor_release_takes_back_the_claim_seen_or_repairs_a_stuck_row() -> None:
    claim = Claim(agent_id=4, claimed_at=NOW, lease_expires_at=NOW + timedelta(hours=1),
                  task_version=1)  # fmt: skip
    assert supervisor_release_refusal(claim, SupervisorReleaseRequest(9, "stuck", 4)) is None
    assert supervisor_release_refusal(claim, SupervisorReleaseRequest(9, "stuck")) is None
    assert supervisor_release_refusal(claim, SupervisorReleaseRequest(9, "stuck", 5)) == (
        "the claim has changed hands: agent 4 holds it now"
    )
    assert supervisor_release_refusal(None, SupervisorReleaseRequest(9, "stuck")) == (
        "nothing to release: no agent holds this claimant"
    )
    assert supervisor_release_refusal(None, SupervisorReleaseRequest(9, "stuck", 5)) is None
    assert supervisor_release_refusal(claim, SupervisorReleaseRequest(9, "", 4)) == (
        "a release needs a reason"
    )


def test_a_callback_moves_only_when_there_is_one_and_to_someone_else() -> None:
    none = OutreachState(facts())
    assert callback_reassignment_refusal(none, CallbackReassignment(9, 4)) == (
        "there is no pending callback to reassign"
    )
    owned = OutreachState(facts(callback_at=NOW, callback_owner_agent_id=4))
    assert callback_reassignment_refusal(owned, CallbackReassignment(9, 5)) is None
    assert callback_reassignment_refusal(owned, CallbackReassignment(9, None)) is None
    assert callback_reassignment_refusal(owned, CallbackReassignment(9, 4)) == (
        "the callback is already agent 4's"
    )
    assert callback_reassignment_refusal(owned, CallbackReassignment(9, 0)) == "no such agent"
    shared = OutreachState(facts(callback_at=NOW))
    assert callback_reassignment_refusal(shared, CallbackReassignment(9, None)) == (
        "the callback is already shared"
    )


def test_queue_list_parameters() -> None:
    assert parse_queue("callback") is Queue.CALLBACK and parse_queue("all") is None
    default = parse_listing(Queue.UNSIGNED, None, None, None)
    assert (default.status, default.order, default.page, default.offset) == (
        TaskFilter.LIVE, TaskOrder.SCORE, 1, 0
    )  # fmt: skip
    third = parse_listing(Queue.UNSIGNED, "waiting", "not_before", "3")
    assert (third.status, third.order, third.offset) == (
        TaskFilter.WAITING, TaskOrder.NOT_BEFORE, 2 * PAGE_SIZE
    )  # fmt: skip
    for deep in (str(MAX_PAGE + 1), "9" * 5000):
        assert parse_listing(Queue.UNSIGNED, "", "", deep).page == MAX_PAGE
    refused = [("all", None, None), (None, "name", None), (None, None, "0"),
               (None, None, "-2"), (None, None, "1.5"), (None, None, "٣")]  # fmt: skip
    for status, order, page in refused:
        with pytest.raises(ListingRefused):
            parse_listing(Queue.UNSIGNED, status, order, page)
