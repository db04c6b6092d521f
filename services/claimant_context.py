"""Everything an agent sees about one claimant before dialling, assembled in one place.

- who: name, phone, email, age, postcode, vulnerability, claims with lenders and statuses
  and their requirements, opted out, next callback. Through `services.claimant_loader`, the
  one loader of a claimant: the replica part from the Redis context cache (15-minute TTL,
  dropped by CDC when the claimant changes), so a second view within the TTL does not touch
  the replica; the opt-out and callback read fresh from the dialler DB.
- why this call, why now: stage, score with its breakdown and the `not_before` reason, from
  the claimant's `call_tasks` row, or (when no live task) the workflow's `assessment` query.
- what happened before: calls and their outcomes, the SMS thread, the callback and its
  notes, claimant notes; always read fresh from the dialler DB (the console writes them).

Every view writes an `audit_log` row (actor: the agent, action `viewed_claimant`, subject:
the claimant), DESIGN.md section 4: personal data is never shown unrecorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import call_log, sms_outbox, task_store
from adapters.agent_store import display_name_of
from adapters.audit_log import append_audit
from domain.dispositions import EFFECTS, Disposition
from schemas.context import ClaimantContext
from schemas.enums import RequirementStatus, TaskStatus
from schemas.outreach import Stage
from services.claimant_loader import ClaimantLoader
from workflows.outreach_client import OutreachClient, OutreachRefused, OutreachUnavailable

log = get_logger(__name__)

LONDON = ZoneInfo("Europe/London")
CALLS_SHOWN = 10
SMS_SHOWN = 20
NOTES_SHOWN = 10
QUERY_TIMEOUT = timedelta(seconds=2)
VIEWED = "viewed_claimant"

STAGE_LABELS = {
    Stage.UNSIGNED.value: "Signature missing",
    Stage.OUTSTANDING.value: "Documents outstanding",
    Stage.CALLBACK.value: "Callback due",
    Stage.DONE.value: "Nothing to chase",
}


def disposition_label(value: str | None) -> str:
    if value is None:
        return "No outcome recorded"
    try:
        return EFFECTS[Disposition(value)].label
    except ValueError:
        return value.replace("_", " ").capitalize()


def age_on(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class Factor:
    name: str
    contribution: float
    detail: str


@dataclass(frozen=True)
class WhyThisCall:
    stage: str  # unsigned, outstanding, callback, done; "unknown" when nothing is known
    stage_label: str
    score: float | None
    factors: list[Factor]
    not_before: datetime | None
    reason: str
    people_only: bool
    task_status: str | None  # ready, claimed, withdrawn, completed; None: no task row
    claimed_by: int | None
    lease_expires_at: datetime | None
    source: str  # "queue" (call_tasks), "workflow" (assessment query) or "none"


@dataclass(frozen=True)
class Outstanding:
    claim_id: int
    lender: str
    type: str


@dataclass(frozen=True)
class CallRecord:
    id: int
    started_at: datetime
    agent_name: str | None
    status: str
    disposition: str | None
    outcome: str
    duration_seconds: int | None
    notes: str | None
    recorded: bool  # a recording is kept (and may be played by the caller or a supervisor)
    agent_id: int | None = None  # who made the call
    recording_deleted: bool = False  # deleted at the end of retention


@dataclass(frozen=True)
class SmsRecord:
    id: int
    direction: str
    body: str
    status: str
    at: datetime
    agent_name: str | None


@dataclass(frozen=True)
class CallbackRecord:
    scheduled_for: datetime
    status: str
    notes: str | None
    owner_name: str | None
    created_by_name: str | None


@dataclass(frozen=True)
class NoteRecord:
    at: datetime
    agent_name: str | None
    body: str


@dataclass(frozen=True)
class ConsoleContext:
    claimant: ClaimantContext
    age: int | None
    why: WhyThisCall
    outstanding: list[Outstanding]
    calls: list[CallRecord]
    sms: list[SmsRecord]
    callback: CallbackRecord | None
    notes: list[NoteRecord]
    from_cache: bool

    @property
    def user_id(self) -> int:
        return self.claimant.user_id

    @property
    def full_name(self) -> str:
        return f"{self.claimant.first_name} {self.claimant.last_name}".strip()

    @property
    def vulnerable(self) -> bool:
        return self.claimant.is_vulnerable or self.why.people_only


@dataclass(frozen=True)
class Viewer:
    """Who is looking, for the audit log."""

    agent_id: int
    ip_address: str | None = None
    purpose: str = "console"


class ClaimantContextService:
    def __init__(
        self, dialler: AsyncEngine, loader: ClaimantLoader, outreach: OutreachClient | None = None
    ) -> None:
        self._dialler = dialler
        self._loader = loader
        self._outreach = outreach

    async def view(self, user_id: int, viewer: Viewer) -> ConsoleContext | None:
        """The claimant's context for `viewer` (None if the claimant does not exist); the
        view is written to the audit log."""
        replica = await self._loader.replica([user_id])
        if user_id not in replica.claimants:
            return None
        from_cache = user_id in replica.from_cache
        async with self._dialler.connect() as conn:
            # the dialler's state in the same connection as the rest of its record
            fresh = await self._loader.with_dialler_state(conn, replica.claimants)
            claimant = fresh[user_id]
            task = await task_store.task_of(conn, user_id)
            calls = await self._calls(conn, user_id)
            sms = await self._sms(conn, user_id)
            callback = await self._callback(conn, user_id)
            notes = await self._notes(conn, user_id)
        why = _why_from_task(task) if task is not None else None
        if why is None or why.task_status not in (TaskStatus.READY, TaskStatus.CLAIMED):
            why = await self._why_from_workflow(user_id, task) or why or _unknown()
        await self._audit(user_id, viewer, from_cache)
        return ConsoleContext(
            claimant=claimant,
            age=age_on(claimant.date_of_birth, datetime.now(LONDON).date()),
            why=why,
            outstanding=[
                Outstanding(claim.claim_id, claim.lender, requirement.type)
                for claim in claimant.claims
                for requirement in claim.requirements
                if requirement.status == RequirementStatus.PENDING.value
            ],
            calls=calls,
            sms=sms,
            callback=callback,
            notes=notes,
            from_cache=from_cache,
        )

    # --- the dialler's own record -------------------------------------------------------------

    @staticmethod
    async def _calls(conn: AsyncConnection, user_id: int) -> list[CallRecord]:
        entries = await call_log.recent_calls(conn, user_id, CALLS_SHOWN, display_name_of)
        return [
            CallRecord(
                id=e.id,
                started_at=e.started_at,
                agent_name=e.agent_name,
                status=e.status,
                disposition=e.disposition,
                outcome=disposition_label(e.disposition),
                duration_seconds=e.duration_seconds,
                notes=e.notes,
                recorded=e.recorded,
                agent_id=e.agent_id,
                recording_deleted=e.recording_deleted,
            )
            for e in entries
        ]

    @staticmethod
    async def _sms(conn: AsyncConnection, user_id: int) -> list[SmsRecord]:
        rows = await sms_outbox.latest_messages(conn, user_id, SMS_SHOWN)
        return [
            SmsRecord(r.id, r.direction, r.body, r.status, r.created_at, r.agent_name)
            for r in reversed(rows)  # oldest first, as a conversation reads
        ]

    @staticmethod
    async def _callback(conn: AsyncConnection, user_id: int) -> CallbackRecord | None:
        """The pending callback, or else the most recent one (its notes still matter)."""
        entry = await call_log.latest_callback(conn, user_id, display_name_of)
        if entry is None:
            return None
        return CallbackRecord(
            entry.scheduled_for, entry.status, entry.notes, entry.owner_name, entry.creator_name
        )

    @staticmethod
    async def _notes(conn: AsyncConnection, user_id: int) -> list[NoteRecord]:
        entries = await call_log.recent_notes(conn, user_id, NOTES_SHOWN, display_name_of)
        return [NoteRecord(e.created_at, e.agent_name, e.body) for e in entries]

    # --- why this call -------------------------------------------------------------------------

    async def _why_from_workflow(
        self, user_id: int, task: task_store.CallTask | None
    ) -> WhyThisCall | None:
        """The running workflow's latest assessment (None when it cannot be asked)."""
        if self._outreach is None:
            return None
        try:
            # shorter than the client's own timeout: the page is shown without it
            async with asyncio.timeout(QUERY_TIMEOUT.total_seconds()):
                found = await self._outreach.assessment(user_id)
        except (OutreachRefused, OutreachUnavailable, TimeoutError) as error:
            # Temporal away or slow: explain what we can
            log.info("assessment query failed", user_id=user_id, error=type(error).__name__)
            return None
        if found is None:
            return None
        return WhyThisCall(
            stage=found.stage.value,
            stage_label=STAGE_LABELS.get(found.stage.value, found.stage.value),
            score=found.score,
            factors=[Factor(f.name, f.contribution, f.detail) for f in found.factors],
            not_before=found.not_before,
            reason=found.not_before_reason,
            people_only=found.people_only,
            task_status=task.status if task is not None else None,
            claimed_by=task.claimed_by if task is not None else None,
            lease_expires_at=task.lease_expires_at if task is not None else None,
            source="workflow",
        )

    async def _audit(self, user_id: int, viewer: Viewer, from_cache: bool) -> None:
        async with self._dialler.begin() as conn:
            await append_audit(
                conn,
                actor_type="agent",
                actor_id=str(viewer.agent_id),
                action=VIEWED,
                subject_type="user",
                subject_id=str(user_id),
                detail={"purpose": viewer.purpose, "from_cache": from_cache},
                ip_address=viewer.ip_address,
            )


def _why_from_task(task: task_store.CallTask) -> WhyThisCall:
    factors = [
        Factor(str(f.get("name", "")), float(f.get("contribution", 0.0)), str(f.get("detail", "")))
        for f in (task.score_breakdown or [])
        if isinstance(f, dict)
    ]
    stage = str(task.queue)
    return WhyThisCall(
        stage=stage,
        stage_label=STAGE_LABELS.get(stage, stage),
        score=float(task.score),
        factors=factors,
        not_before=task.not_before,
        reason=task.not_before_reason,
        people_only=bool(task.route_to_people_only),
        task_status=task.status,
        claimed_by=task.claimed_by,
        lease_expires_at=task.lease_expires_at,
        source="queue",
    )


def _unknown() -> WhyThisCall:
    return WhyThisCall(
        stage="unknown",
        stage_label="Not in a queue",
        score=None,
        factors=[],
        not_before=None,
        reason="no outreach task or running workflow for this claimant",
        people_only=False,
        task_status=None,
        claimed_by=None,
        lease_expires_at=None,
        source="none",
    )
