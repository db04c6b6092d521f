"""Bodies of the agent JSON API (`web/blueprints/api.py`), documented in /openapi.json.

Requests are strict (unknown fields are refused), so a typo in a client is a 400 with the
field named rather than a silently ignored value. Times are ISO 8601 with a UTC offset.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.enums import AgentState, LinkChannel, Queue

# The outcome codes of `domain.dispositions.Disposition` (a unit test keeps them in step).
DISPOSITIONS = (
    "no_answer",
    "busy",
    "voicemail_left",
    "wrong_number",
    "callback_requested",
    "promised_to_sign",
    "promised_documents",
    "magic_link_sent",
    "not_interested",
    "do_not_call",
    "deceased",
    "completed",
)
SMS_MAX_LENGTH = 1600
MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints (web/converters.py bounds them in URLs)

Text = Annotated[str, StringConstraints(strip_whitespace=True)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(_Response):
    code: str = Field(description="stable, for programs: validation_error, not_found, ...")
    message: str = Field(description="for people")
    fields: dict[str, str] | None = Field(
        default=None, description="validation errors: field name -> what is wrong"
    )


class ErrorResponse(_Response):
    error: ErrorDetail


# --- the queue ----------------------------------------------------------------------------


class NextCallRequest(_Request):
    queue: Queue | None = Field(
        default=None,
        description="Supervisors and admins choose a queue; agents work their own (omit it).",
    )
    wait: int = Field(
        default=0,
        ge=0,
        le=25,
        strict=True,
        description="Seconds to hold the request when nothing is claimable, woken when a "
        "task in the queue becomes ready (long-poll; 0, the default, answers at once).",
    )


class ScoreFactorView(_Response):
    name: str
    contribution: float
    detail: str


class ClaimedTaskView(_Response):
    task_id: int
    user_id: int
    queue: Queue
    score: float
    score_breakdown: list[ScoreFactorView]
    reason: str = Field(description="why the claimant may be called now")
    lease_expires_at: datetime = Field(description="record an outcome or release by then")


class NextCallResponse(_Response):
    task: ClaimedTaskView | None = Field(description="null when no claimant can be called now")
    message: str


class QueueDepthView(_Response):
    queue: Queue
    ready: int = Field(description="callable now")
    waiting: int = Field(description="in the queue, not callable yet")
    claimed: int = Field(description="with an agent")


class QueuesResponse(_Response):
    queues: list[QueueDepthView]


# --- agent actions on a claimant ----------------------------------------------------------


class OutcomeRequest(_Request):
    disposition: str = Field(description="one of: " + ", ".join(DISPOSITIONS))
    notes: Annotated[Text, Field(max_length=4000)] = ""
    callback_at: AwareDatetime | None = Field(
        default=None, description="required for callback_requested; inside calling hours"
    )
    call_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="the call this outcome ends"
    )
    abandoned: bool = False


class OutcomeResponse(_Response):
    user_id: int
    stage: str = Field(description="where the claimant now stands")
    not_before: datetime | None = Field(description="when they may next be called (null: never)")
    reason: str


class ReleaseRequest(_Request):
    reason: Annotated[Text, Field(min_length=1, max_length=200)] = "released by agent"


class ReleaseResponse(_Response):
    user_id: int
    task_version: int


class SmsRequest(_Request):
    body: Annotated[Text, Field(min_length=1, max_length=SMS_MAX_LENGTH)]


class SmsResponse(_Response):
    message_id: int
    provider_sid: str
    status: str


class MagicLinkRequestBody(_Request):
    channel: LinkChannel = LinkChannel.SMS
    purpose: Literal["signature", "documents", "callback"]


class MagicLinkResponse(_Response):
    link_id: int
    expires_at: datetime
    delivered_via: LinkChannel
    provider_id: str | None


class CallbackRequestBody(_Request):
    at: AwareDatetime = Field(
        description="when to call back: inside the calling windows, within 7 days (UK days)"
    )
    personal: bool = Field(
        default=True,
        description="true: a personal callback, offered to you; false: the shared pool",
    )
    notes: Annotated[Text, Field(max_length=4000)] = ""


class CallbackResponse(_Response):
    user_id: int
    at: datetime
    owner_agent_id: int | None = Field(description="the owner; null: the shared pool")


class CallbackRefusedDetail(ErrorDetail):
    next_allowed: list[datetime] = Field(
        default_factory=list,
        description="outside_calling_window: the next times a callback may be booked",
    )


class CallbackRefusedResponse(_Response):
    """409: `outside_calling_window` (with `next_allowed`), or the workflow refused
    (`refused`: outreach to the claimant has stopped, or none is running)."""

    error: CallbackRefusedDetail


class ConsentRequest(_Request):
    channel: Literal["live_call", "automated_call", "sms", "email"] = Field(
        description="what the claimant agreed to be contacted by, on this call"
    )


class ConsentResponse(_Response):
    user_id: int
    record_id: int
    channels: list[str] = Field(description="the channels with consent in force now")
    workflow_told: bool = Field(description="false: saved; the queue catches up later")


class NoteRequestBody(_Request):
    text: Annotated[Text, Field(min_length=1, max_length=4000)]


class NoteResponse(_Response):
    user_id: int
    note_id: int


# --- agent state ----------------------------------------------------------------------------


class AgentStateRequest(_Request):
    state: AgentState
    reason: Annotated[Text, Field(max_length=200)] | None = Field(
        default=None, description="required when pausing"
    )


class AgentStateResponse(_Response):
    agent_id: int
    state: AgentState
    label: str
    reason: str | None
    since: datetime


# --- claimant context -------------------------------------------------------------------------


class RequirementView(_Response):
    requirement_id: int
    type: str
    status: str


class ClaimView(_Response):
    claim_id: int
    lender: str
    status: str
    created_at: datetime
    estimated_value: float | None
    requirements: list[RequirementView]


class ClaimantView(_Response):
    user_id: int
    first_name: str
    last_name: str
    email: str | None
    phone_number: str | None
    postcode: str | None
    date_of_birth: date | None
    is_enabled: bool
    status: str
    is_vulnerable: bool
    signed: bool
    preferred_call_start: time | None
    preferred_call_end: time | None
    claims: list[ClaimView]
    opted_out: bool
    next_callback_at: datetime | None


class WhyThisCallView(_Response):
    stage: str
    stage_label: str
    score: float | None
    factors: list[ScoreFactorView]
    not_before: datetime | None
    reason: str
    people_only: bool
    task_status: str | None
    claimed_by: int | None
    lease_expires_at: datetime | None
    source: str = Field(description="queue (call_tasks), workflow (its assessment) or none")


class OutstandingView(_Response):
    claim_id: int
    lender: str
    type: str


class CallView(_Response):
    id: int
    started_at: datetime
    agent_name: str | None
    status: str
    disposition: str | None
    outcome: str
    duration_seconds: int | None
    notes: str | None
    recorded: bool


class SmsView(_Response):
    id: int
    direction: str
    body: str
    status: str
    at: datetime
    agent_name: str | None


class CallbackView(_Response):
    scheduled_for: datetime
    status: str
    notes: str | None
    owner_name: str | None
    created_by_name: str | None


class NoteView(_Response):
    at: datetime
    agent_name: str | None
    body: str


class ClaimantContextResponse(_Response):
    claimant: ClaimantView
    age: int | None
    vulnerable: bool = Field(description="people only: never routed to AI agents")
    why: WhyThisCallView
    outstanding: list[OutstandingView]
    calls: list[CallView]
    sms: list[SmsView]
    callback: CallbackView | None
    notes: list[NoteView]
