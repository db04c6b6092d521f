"""What an agent's action on a claimant's outreach must satisfy, and what an outcome writes.

Pure functions over the workflow's state, time passed in. The workflow's Update validators
raise the refusal these return (the caller shows it to the agent); `outcome_plan` lists the
writes an outcome needs before its effect on the facts (`domain.facts.apply_disposition`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import callback_routing
from domain.dispositions import Disposition, effect_of
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import (
    Assessment,
    CallbackReassignment,
    CallbackRequest,
    Claim,
    ClaimantFacts,
    ClaimRequest,
    CompleteCallbacks,
    NoteRequest,
    OutcomeRequest,
    OutreachState,
    PauseRequest,
    RecordOutcome,
    ResumeRequest,
    SaveCallback,
    SupervisorReleaseRequest,
    Suppress,
)

MAX_LEASE = timedelta(hours=4)
MAX_NOTE_LENGTH = 4000
STILL_ASSESSING = "the claimant is still being assessed"
# A supervisor's reason is written on the withdrawn task ("paused by a supervisor: ...", a
# 200-character column) and in the audit log.
MAX_REASON_LENGTH = 160
PAUSED_PREFIX = "paused by a supervisor: "


def claim_refusal(
    state: OutreachState | None,
    assessment: Assessment | None,
    request: ClaimRequest,
    now: datetime,
) -> str | None:
    """Why this agent may not claim the claimant's task now (None: they may). The same agent
    asking again for the claim they hold (a retry after a lost reply) is not refused."""
    if state is None or assessment is None:
        return STILL_ASSESSING
    if state.facts.paused is not None and state.claim is None:
        return "outreach to this claimant is paused by a supervisor"
    if state.claim is not None:
        if (state.claim.agent_id, state.claim.task_version) == (
            request.agent_id,
            request.task_version,
        ):
            return None
        return f"already claimed by agent {state.claim.agent_id}"
    if request.task_version != state.task_version:
        return "stale task: the claimant's task has changed since it was listed"
    if assessment.stage.queue != request.queue:
        return f"the claimant is no longer in the {request.queue.value} queue"
    if assessment.not_before is None or assessment.not_before > now:
        return "the claimant may not be called yet"
    if request.is_ai and assessment.people_only:
        return "vulnerable claimant: people only"
    automated = assessment.channel_refusals.get(ConsentChannel.AUTOMATED_CALL.value)
    if request.is_ai and automated is not None:
        return automated  # PECR 19: an AI voice needs automated-call consent
    held = callback_routing.claim_refusal(
        assessment.owner_agent_id,
        assessment.held_until,
        request.agent_id,
        now,
        owner_away=request.owner_away,
        held_for=assessment.held_for,
    )
    if held is not None:
        return held
    if not 1 <= request.lease_seconds <= MAX_LEASE.total_seconds():
        return "a lease lasts between 1 second and 4 hours"
    return None


def new_claim(request: ClaimRequest, now: datetime) -> Claim:
    """A claim is a lease: an agent who vanishes mid-call gives the task back."""
    return Claim(
        agent_id=request.agent_id,
        claimed_at=now,
        lease_expires_at=now + timedelta(seconds=request.lease_seconds),
        task_version=request.task_version,
    )


def holder_refusal(claim: Claim | None, agent_id: int) -> str | None:
    if claim is None or claim.agent_id != agent_id:
        return "this claimant is not claimed by you"
    return None


def outcome_refusal(claim: Claim | None, request: OutcomeRequest, now: datetime) -> str | None:
    not_holder = holder_refusal(claim, request.agent_id)
    if not_holder is not None:
        return not_holder
    try:
        disposition = Disposition(request.disposition)
    except ValueError:
        return f"unknown disposition {request.disposition!r}"
    if effect_of(disposition).needs_callback_time:
        if request.callback_at is None:
            return "a callback needs a time"
        if request.callback_at <= now:
            return "a callback must be in the future"
    return None


def stopped_refusal(state: OutreachState | None) -> str | None:
    """Callbacks and messages are refused once outreach has stopped for good."""
    if state is None:
        return STILL_ASSESSING
    if state.facts.opted_out or state.facts.deceased:
        return "outreach to this claimant has stopped"
    return None


def callback_refusal(
    state: OutreachState | None, request: CallbackRequest, now: datetime
) -> str | None:
    stopped = stopped_refusal(state)
    if stopped is not None:
        return stopped
    if request.at <= now:
        return "a callback must be in the future"
    return None


def note_refusal(request: NoteRequest) -> str | None:
    if not request.text.strip():
        return "a note needs some text"
    if len(request.text) > MAX_NOTE_LENGTH:
        return f"a note is at most {MAX_NOTE_LENGTH} characters"
    return None


# --- supervisor actions --------------------------------------------------------------------


def paused_reason(facts: ClaimantFacts) -> str | None:
    """Why the claimant has no task while paused (the task row's reason), or None."""
    if facts.paused is None:
        return None
    return PAUSED_PREFIX + facts.paused.reason


def reason_refusal(reason: str, what: str) -> str | None:
    if not reason.strip():
        return f"{what} needs a reason"
    if len(reason) > MAX_REASON_LENGTH:
        return f"a reason is at most {MAX_REASON_LENGTH} characters"
    return None


def pause_refusal(state: OutreachState | None, request: PauseRequest) -> str | None:
    """A pause needs a reason and a claimant not paused already. Outreach that has stopped
    for good (opted out, deceased) has nothing to pause."""
    stopped = stopped_refusal(state)
    if stopped is not None:
        return stopped
    assert state is not None
    if state.facts.paused is not None:
        return f"outreach is already paused by supervisor {state.facts.paused.supervisor_id}"
    return reason_refusal(request.reason, "a pause")


def resume_refusal(state: OutreachState | None, request: ResumeRequest) -> str | None:
    if state is None:
        return STILL_ASSESSING
    if state.facts.paused is None:
        return "outreach is not paused"
    return reason_refusal(request.reason, "resuming")


def supervisor_release_refusal(
    claim: Claim | None, request: SupervisorReleaseRequest
) -> str | None:
    """A supervisor may take back any agent's claim, with a reason; not one that changed
    hands since they looked (that agent has only just started), nor a claim nobody holds
    unless the task row they saw said someone did (then the row is what is stuck)."""
    refused = reason_refusal(request.reason, "a release")
    if refused is not None:
        return refused
    seen = request.seen_agent_id
    if claim is None:
        return "nothing to release: no agent holds this claimant" if seen is None else None
    if seen is not None and claim.agent_id != seen:
        return f"the claim has changed hands: agent {claim.agent_id} holds it now"
    return None


def callback_reassignment_refusal(
    state: OutreachState | None, request: CallbackReassignment
) -> str | None:
    """The pending callback goes to another owner, or to the shared pool, keeping its time."""
    stopped = stopped_refusal(state)
    if stopped is not None:
        return stopped
    assert state is not None
    facts = state.facts
    if facts.callback_at is None:
        return "there is no pending callback to reassign"
    if request.owner_agent_id == facts.callback_owner_agent_id:
        if request.owner_agent_id is None:
            return "the callback is already shared"
        return f"the callback is already agent {request.owner_agent_id}'s"
    if request.owner_agent_id is not None and request.owner_agent_id <= 0:
        return "no such agent"
    if len(request.notes) > MAX_NOTE_LENGTH:
        return f"callback notes are at most {MAX_NOTE_LENGTH} characters"
    return None


@dataclass(frozen=True)
class OutcomePlan:
    """The writes an outcome needs, in this order, before its effect on the facts."""

    disposition: Disposition
    callback: SaveCallback | None  # first: outside the calling windows it fails the outcome
    outcome: RecordOutcome
    complete_callbacks: CompleteCallbacks | None  # the call honoured a callback that was due
    suppress: Suppress | None  # a do-not-call is recorded as an opt-out


def outcome_plan(
    user_id: int,
    facts: ClaimantFacts,
    request: OutcomeRequest,
    queue: Queue | None,
    now: datetime,
    outcome_key: str,
) -> OutcomePlan:
    """`outcome_key` names the claim: the outcome is recorded once however often its
    activity runs."""
    disposition = Disposition(request.disposition)
    effect = effect_of(disposition)
    callback = None
    if effect.needs_callback_time and request.callback_at is not None:
        callback = SaveCallback(
            user_id, request.callback_at, request.notes, request.agent_id, request.agent_id
        )
    callback_due = facts.callback_at is not None and facts.callback_at <= now
    return OutcomePlan(
        disposition=disposition,
        callback=callback,
        outcome=RecordOutcome(
            user_id=user_id,
            agent_id=request.agent_id,
            queue=queue,
            disposition=disposition.value,
            notes=request.notes,
            at=now,
            call_id=request.call_id,
            abandoned=request.abandoned,
            outcome_key=outcome_key,
        ),
        complete_callbacks=CompleteCallbacks(user_id, now)
        if callback_due and not effect.needs_callback_time
        else None,
        suppress=Suppress(user_id, "do_not_call", f"agent:{request.agent_id}")
        if effect.opt_out
        else None,
    )
