"""Messages of the outreach engine: workflow input/output, signals, updates, activities.

Every workflow, signal, update and activity takes one of these dataclasses and returns one.
They travel through Temporal's pydantic data converter, so dates, times and enums are typed.
Nothing here holds a name or a phone number: a phone is represented by `phone_key`, a hash
that is enough to enforce per-number contact caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum

from schemas.ai import AiHandoff, Routing
from schemas.attribution import ContactKind
from schemas.enums import LinkChannel, Queue


class Stage(StrEnum):
    UNSIGNED = "unsigned"
    OUTSTANDING = "outstanding"
    CALLBACK = "callback"
    DONE = "done"

    @property
    def queue(self) -> Queue | None:
        return None if self is Stage.DONE else Queue(self.value)


# --- the claimant's facts, as the workflow holds them ------------------------------------


@dataclass
class OutreachPause:
    """Outreach held by a supervisor (who, why, since when) until one resumes it."""

    supervisor_id: int
    reason: str
    paused_at: datetime


@dataclass
class RequirementFact:
    requirement_id: int
    type: str
    status: str


@dataclass
class ClaimFact:
    claim_id: int
    lender: str
    status: str
    created_at: datetime
    estimated_value: float | None = None
    requirements: list[RequirementFact] = field(default_factory=list)


@dataclass
class ClaimantFacts:
    """Everything the rules need about one claimant, rebuilt from the databases at the start
    of every run and kept current by change events."""

    user_id: int
    is_enabled: bool
    status: str
    signed: bool
    age_years: int | None
    is_vulnerable: bool
    phone_key: str | None
    preferred_call_start: time | None
    preferred_call_end: time | None
    claims: list[ClaimFact] = field(default_factory=list)
    opted_out: bool = False
    deceased: bool = False
    callback_at: datetime | None = None
    callback_owner_agent_id: int | None = None
    # the phone key the latest wrong_number outcome was recorded against (domain.facts)
    wrong_phone_key: str | None = None
    # channels (schemas.enums.ConsentChannel values) with consent in force when loaded
    consent_channels: list[str] = field(default_factory=list)
    # the number's TPS/CTPS screening (domain.consent): listed, and when it was screened
    tps_listed: bool = False
    tps_screened_at: datetime | None = None
    # last applied change per entity ("user:1", "claim:7", "requirement:9"): older events lose
    entity_versions: dict[str, datetime] = field(default_factory=dict)
    # a supervisor's pause: the workflow's own fact, not the databases' (kept across reloads
    # and continue-as-new); while set the claimant gets no task (domain.assessment)
    paused: OutreachPause | None = None
    # the AI handed the claimant to a person (the workflow's own, kept like `paused`): the
    # next attempt is a person's, with the priority raised (domain.ai_routing)
    ai_handoff: AiHandoff | None = None
    # why the AI must never contact this claimant again (a complaint or bereavement raised
    # with it), from the dialler DB; None: no such reason
    ai_excluded: str | None = None
    # the region of the claimant's postcode (domain.learned_rates.region_of), for the
    # learned rates and the regional team preference; None: no postcode we can place
    region: str | None = None


# --- change events (CDC, reconcile) ------------------------------------------------------


class ChangeKind(StrEnum):
    SIGNATURE_ADDED = "signature_added"
    SIGNATURE_REMOVED = "signature_removed"
    CLAIM_ADDED = "claim_added"
    CLAIM_STATUS_CHANGED = "claim_status_changed"
    REQUIREMENT_ADDED = "requirement_added"
    REQUIREMENT_CHANGED = "requirement_changed"
    PHONE_CHANGED = "phone_changed"
    ENABLED_CHANGED = "enabled_changed"
    USER_STATUS_CHANGED = "user_status_changed"
    VULNERABILITY_CHANGED = "vulnerability_changed"
    OPTED_OUT = "opted_out"
    CONSENT_CHANGED = "consent_changed"  # given or withdrawn: reload the consents
    REFRESH = "refresh"  # reconcile or an operator: reload the facts from the databases
    RULES_CHANGED = "rules_changed"  # a rules version was saved: reload and re-assess with it


@dataclass
class ChangeEvent:
    """One row change of the main app (or a dialler-side opt-out), typed.

    `event_id` makes delivery idempotent; `occurred_at` (the source's commit time) orders
    events per entity, so a late, older event never overwrites a newer fact."""

    event_id: str
    kind: ChangeKind
    user_id: int
    occurred_at: datetime
    claim_id: int | None = None
    requirement_id: int | None = None
    is_enabled: bool | None = None
    user_status: str | None = None
    is_vulnerable: bool | None = None
    phone_key: str | None = None
    lender: str | None = None
    claim_status: str | None = None
    claim_created_at: datetime | None = None
    claim_estimated_value: float | None = None
    requirement_type: str | None = None
    requirement_status: str | None = None
    reason: str | None = None


# --- scoring and contact policy ----------------------------------------------------------


@dataclass
class SegmentRate:
    """One learned rate of a segment, shrunk towards the overall rate (small segments say
    little), with the conversion rate's interval: what the scorer reads of the nightly
    learned rates (adapters.learned_rates), nothing more."""

    dimension: str  # region, lender, queue, hour, weekday, channel
    segment: str
    contact_rate: float
    conversion_rate: float
    conversion_low: float
    conversion_high: float


@dataclass
class RateView:
    """The learned rates one claimant's score uses: a small pure view of the newest version
    (domain.scoring reads it; the activity builds it from the cached table)."""

    version: int
    # the claimant's own segments: their region, each open claim's lender, their queue
    segments: list[SegmentRate] = field(default_factory=list)
    # UK hour of day (0-23) -> the contact rate of calls started in it
    hours: dict[int, float] = field(default_factory=dict)
    # "call" / "sms" -> the channel's response (contact) rate
    channels: dict[str, float] = field(default_factory=dict)


@dataclass
class ContactHistory:
    """Counts and times from the dialler DB that the contact policy and scoring need."""

    attempts_today: int = 0
    attempts_7d: int = 0
    number_attempts_today: int = 0
    number_attempts_7d: int = 0
    last_contact_at: datetime | None = None
    last_disposition: str | None = None
    last_disposition_at: datetime | None = None
    last_abandoned_at: datetime | None = None
    consecutive_failed_attempts: int = 0
    # the share of reached calls that moved a claim forward in the claimant's queue (90
    # days): the conversion factor's fallback until the first learned rates exist
    segment_conversion_rate: float | None = None
    # the newest learned rates of the claimant's segments (None: none computed yet)
    learned: RateView | None = None
    # the person whose outcome was the claimant's latest positive one (never an AI agent):
    # offered the claimant first for a while (domain.agent_preference)
    previous_agent_id: int | None = None


@dataclass
class ScoreFactor:
    name: str
    contribution: float
    detail: str


@dataclass
class Assessment:
    """Where the claimant stands: stage, score with its breakdown, and when they may be called."""

    user_id: int
    stage: Stage
    score: float
    factors: list[ScoreFactor]
    not_before: datetime | None  # None: never (opted out, deceased, done)
    not_before_reason: str
    people_only: bool  # vulnerable claimants are never routed to AI agents
    # a personal callback: offered only to its owner until `held_until` (domain.callback_routing);
    # or the claimant's previous successful agent, offered them first (domain.agent_preference)
    owner_agent_id: int | None = None
    held_until: datetime | None = None
    # what the hold is, in words ("a personal callback", "their previous successful agent");
    # None: no hold
    held_for: str | None = None
    # channel -> why it may not be used (domain.consent); a channel absent here is allowed
    channel_refusals: dict[str, str] = field(default_factory=dict)
    # when the TPS/CTPS screening this call relies on goes out of date (None: it relies on
    # none); the workflow reloads the facts, which re-screens the number, at that time
    rescreen_at: datetime | None = None
    # a person or the AI, and why (domain.ai_routing); None: not routed (no queue)
    routing: Routing | None = None
    # a live split's arm whose rules scored the claimant (domain.scoring_split): "control"
    # or "candidate"; None while no split runs
    score_arm: str | None = None


# --- workflow ------------------------------------------------------------------------------


@dataclass
class Claim:
    agent_id: int
    claimed_at: datetime
    lease_expires_at: datetime
    task_version: int


@dataclass
class OutreachState:
    """What a run carries into the next one on continue-as-new."""

    facts: ClaimantFacts
    seen_event_ids: list[str] = field(default_factory=list)
    task_version: int = 0
    claim: Claim | None = None
    pending_events: list[ChangeEvent] = field(default_factory=list)


@dataclass
class OutreachInput:
    user_id: int
    carried: OutreachState | None = None


@dataclass
class OutreachResult:
    user_id: int
    final_stage: Stage
    reason: str


# --- agent actions (workflow updates) ------------------------------------------------------


@dataclass
class ClaimRequest:
    agent_id: int
    queue: Queue
    task_version: int
    is_ai: bool = False
    lease_seconds: int = 1200  # CLAIM_LEASE_MINUTES: the task returns if no outcome by then
    # the task is a personal callback whose owner is disabled or signed out: anyone may take it
    owner_away: bool = False


@dataclass
class ClaimGranted:
    user_id: int
    queue: Queue
    task_version: int
    lease_expires_at: datetime


@dataclass
class OutcomeRequest:
    agent_id: int
    disposition: str
    notes: str = ""
    callback_at: datetime | None = None
    call_id: int | None = None
    abandoned: bool = False


@dataclass
class OutcomeRecorded:
    user_id: int
    stage: Stage
    not_before: datetime | None
    reason: str


@dataclass
class ReleaseRequest:
    agent_id: int
    reason: str = "released by agent"


@dataclass
class Released:
    user_id: int
    task_version: int


@dataclass
class CallbackRequest:
    agent_id: int | None  # who booked it; None: the dialler (a claimant rang back, issue 14)
    at: datetime
    notes: str = ""
    owner_agent_id: int | None = None  # None: the shared callback pool


@dataclass
class CallbackScheduled:
    user_id: int
    at: datetime


@dataclass
class MagicLinkRequest:
    agent_id: int
    channel: LinkChannel
    purpose: str  # signature, documents, callback, ...
    # the contact the link is sent from (attribution): a call, an SMS, an AI activity
    source_kind: ContactKind | None = None
    source_ref: str | None = None


# --- supervisor actions (workflow updates) -------------------------------------------------


@dataclass
class PauseRequest:
    """Hold the claimant's outreach: no task until a supervisor resumes it."""

    supervisor_id: int
    reason: str


@dataclass
class ResumeRequest:
    supervisor_id: int
    reason: str


@dataclass
class SupervisorReleaseRequest:
    """Take a stuck claim back from whoever holds it. `seen_agent_id` is the holder the
    supervisor saw (None: none was shown): a claim that has since changed hands is refused,
    and a task row still marked claimed by that agent when the workflow holds no claim is
    rewritten (the row was stuck, not the claim)."""

    supervisor_id: int
    reason: str
    seen_agent_id: int | None = None


@dataclass
class ClaimTakenBack:
    user_id: int
    agent_id: int | None  # whose claim ended (None: only the task row was stuck)
    task_version: int


@dataclass
class CallbackReassignment:
    """Give the pending callback to another agent, or to the shared pool (`owner_agent_id`
    None). The callback keeps its time; `notes` are its notes, kept on the rebooked row."""

    supervisor_id: int
    owner_agent_id: int | None
    notes: str = ""


@dataclass
class CallbackReassigned:
    user_id: int
    at: datetime
    owner_agent_id: int | None


@dataclass
class NoteRequest:
    agent_id: int
    text: str


@dataclass
class NoteAdded:
    note_id: int


# --- activity messages -------------------------------------------------------------------


@dataclass
class LoadFactsRequest:
    user_id: int


@dataclass
class AssessRequest:
    facts: ClaimantFacts
    now: datetime


@dataclass
class PublishTask:
    """Upsert the claimant's call task. `version` only grows, so an older write is ignored."""

    user_id: int
    workflow_id: str
    version: int
    assessment: Assessment
    claim: Claim | None = None


@dataclass
class WithdrawTask:
    user_id: int
    version: int
    reason: str
    # With a queue, a claimant who never had a task gets a withdrawn row saying why (no
    # consent, TPS...): the queue views count it, and reconcile sees a workflow behind it.
    workflow_id: str | None = None
    queue: str | None = None
    score: float = 0.0


@dataclass
class TaskWritten:
    applied: bool  # False when a newer version was already there


@dataclass(frozen=True)
class TaskShape:
    """What a task write says: the workflow remembers the last one so that a change which
    moves none of it writes nothing. `queue` None: no task (withdrawn)."""

    queue: str | None
    score: float
    not_before: datetime | None
    claimed_by: int | None
    people_only: bool
    owner_agent_id: int | None = None
    held_until: datetime | None = None
    # the AI's to make: people are not offered it (unless the AI leaves it waiting)
    ai_routed: bool = False
    # the live split's arm that scored it (None: no split): a new arm is a write
    score_arm: str | None = None


@dataclass
class RefreshTask:
    """Assess the claimant and bring their task in line, in one local activity per change.
    `version` is the version a write would carry; `written` what the last write said."""

    user_id: int
    workflow_id: str
    facts: ClaimantFacts
    now: datetime
    version: int
    claim: Claim | None = None
    written: TaskShape | None = None


@dataclass
class TaskRefreshed:
    assessment: Assessment
    written: TaskShape | None  # what the task now says (unchanged when nothing was written)
    wrote: bool  # a write carried `RefreshTask.version`: the task's version from now on


@dataclass
class RecordOutcome:
    user_id: int
    agent_id: int
    queue: Queue | None
    disposition: str
    notes: str
    at: datetime
    # One outcome per claim: a local activity re-run after a workflow task timed out must
    # not record the call twice.
    outcome_key: str
    call_id: int | None = None
    abandoned: bool = False


@dataclass
class OutcomeStored:
    call_id: int


@dataclass
class SaveCallback:
    user_id: int
    at: datetime
    notes: str
    created_by: int | None  # None: booked by the dialler itself (an inbound call)
    owner_agent_id: int | None


@dataclass
class CallbackSaved:
    callback_id: int


@dataclass
class CompleteCallbacks:
    user_id: int
    at: datetime


@dataclass
class CallbacksCompleted:
    completed: int


@dataclass
class SaveNote:
    user_id: int
    agent_id: int
    text: str


@dataclass
class Suppress:
    user_id: int
    reason: str
    source: str


@dataclass
class Suppressed:
    suppression_id: int


@dataclass
class AuditEntry:
    actor_type: str
    actor_id: str | None
    action: str
    subject_type: str
    subject_id: str | None
    detail: dict[str, str] = field(default_factory=dict)


@dataclass
class AuditWritten:
    audit_id: int
