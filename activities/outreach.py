"""Activities of the outreach workflow: the only code that does its I/O.

Built once per worker with the engines and rules it needs (no module-level clients).
Every method takes one dataclass from `schemas.outreach` and returns one.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters import task_store
from adapters.audit_log import write_audit
from adapters.replica_reader import ReplicaReader
from adapters.suppressions import append_suppression, latest_reason_among, suppression_status
from domain.assessment import assess, task_shape
from domain.calling_windows import callback_time_allowed, explain
from domain.dispositions import EFFECTS, Disposition
from domain.phones import phone_key
from domain.rules import DiallerRules
from domain.stages import derive_stage
from domain.suppressions import SMS_REASONS
from schemas import dialler_db as db
from schemas.enums import CallbackStatus
from schemas.outreach import (
    Assessment,
    AssessRequest,
    AuditEntry,
    AuditWritten,
    CallbackSaved,
    CallbacksCompleted,
    ClaimantFacts,
    ClaimFact,
    CompleteCallbacks,
    ContactHistory,
    LoadFactsRequest,
    NoteAdded,
    OutcomeStored,
    PublishTask,
    RecordOutcome,
    RefreshTask,
    RequirementFact,
    SaveCallback,
    SaveNote,
    Stage,
    Suppress,
    Suppressed,
    TaskRefreshed,
    WithdrawTask,
)

_POSITIVE = [d.value for d, e in EFFECTS.items() if e.positive]
_FAILED = [d.value for d, e in EFFECTS.items() if e.failed_attempt]
CONVERSION_WINDOW = timedelta(days=90)
CONVERSION_CACHE_SECONDS = 600.0


def _contact_history_statement() -> Select[Any]:
    """One statement: the claimant's attempt counts and times, the number's counts (a
    number can be shared), and the last ten dispositions, newest first. Built once: building
    the subqueries' column collections cost more than running the statement."""
    calls = db.calls.c
    day_start = bindparam("day_start", type_=db.calls.c.started_at.type)
    week_ago = bindparam("week_ago", type_=db.calls.c.started_at.type)
    mine = (
        select(
            func.count().filter(calls.started_at >= day_start).label("today"),
            func.count().filter(calls.started_at >= week_ago).label("week"),
            func.max(calls.started_at).label("last_contact_at"),
            func.max(calls.started_at).filter(calls.abandoned).label("last_abandoned_at"),
        )
        .where(calls.user_id == bindparam("user_id"))
        .subquery("mine")
    )
    number = (
        select(
            func.count().filter(calls.started_at >= day_start).label("today"),
            func.count().filter(calls.started_at >= week_ago).label("week"),
            # an abandoned call locks the number, whoever it was for
            func.max(calls.started_at).filter(calls.abandoned).label("last_abandoned_at"),
        )
        # `= NULL` matches nothing: a claimant with no number shares no attempts
        .where(calls.phone_key == bindparam("phone_key", type_=db.calls.c.phone_key.type))
        .subquery("number")
    )
    last = (
        select(calls.disposition, calls.ended_at, calls.started_at)
        .where(calls.user_id == bindparam("user_id"), calls.disposition.is_not(None))
        .order_by(calls.started_at.desc())
        .limit(10)
        .subquery("last")
    )
    return (
        select(
            mine.c.today,
            mine.c.week,
            mine.c.last_contact_at,
            func.greatest(mine.c.last_abandoned_at, number.c.last_abandoned_at).label(
                "last_abandoned_at"
            ),
            number.c.today.label("number_today"),
            number.c.week.label("number_week"),
            last.c.disposition,
            last.c.ended_at,
            last.c.started_at,
        )
        .select_from(mine.join(number, true()).outerjoin(last, true()))
        .order_by(last.c.started_at.desc().nulls_last())
    )


# The statements a change or a run start executes, built once at import: building them per
# call was a large share of the worker's CPU (py-spy, 50 changes/s).
CONTACT_HISTORY = _contact_history_statement()


def _age(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class OutreachActivities:
    def __init__(self, dialler: AsyncEngine, replica_db: AsyncEngine, rules: DiallerRules) -> None:
        self._dialler = dialler
        # A change's refresh reads, then writes one row in one statement: no transaction
        # needed, so none of BEGIN and COMMIT's round trips.
        self._autocommit = dialler.execution_options(isolation_level="AUTOCOMMIT")
        # the replica's statements (the hot path's built once at import) are the reader's
        self._replica = ReplicaReader(replica_db)
        self._rules = rules
        self._conversion: tuple[float, dict[str, float]] = (0.0, {})

    # --- facts -----------------------------------------------------------------------

    @activity.defn
    async def load_facts(self, request: LoadFactsRequest) -> ClaimantFacts:
        """Rebuild the claimant's facts: the replica's rows plus the dialler's own record
        (opt-outs, bereavement, a pending callback)."""
        user_id = request.user_id
        replica_rows = await self._replica.claimant_with_claims(user_id)
        user, claim_rows = replica_rows.user, replica_rows.claims
        now = datetime.now(UTC)
        if user is None:
            # Deleted from the main app: nothing to chase.
            return ClaimantFacts(
                user_id=user_id, is_enabled=False, status="deleted", signed=False,
                age_years=None, is_vulnerable=False, phone_key=None,
                preferred_call_start=None, preferred_call_end=None,
            )  # fmt: skip
        claims: dict[int, ClaimFact] = {}  # in claim id order; requirements in id order
        for row in claim_rows:
            claim = claims.get(row.id)
            if claim is None:
                claim = claims[row.id] = ClaimFact(
                    claim_id=row.id,
                    lender=row.lender,
                    status=row.status,
                    created_at=row.created_at.replace(tzinfo=UTC),
                    estimated_value=None
                    if row.estimated_value is None
                    else float(row.estimated_value),
                )
            if row.requirement_id is not None:
                claim.requirements.append(
                    RequirementFact(
                        requirement_id=row.requirement_id,
                        type=row.requirement_type,
                        status=row.requirement_status,
                    )
                )
        facts = ClaimantFacts(
            user_id=user_id,
            is_enabled=bool(user.is_enabled),
            status=user.status,
            signed=user.current_signature_file_id is not None,
            age_years=_age(user.date_of_birth, now.date()),
            is_vulnerable=bool(user.is_vulnerable),
            phone_key=phone_key(user.phone_number),
            preferred_call_start=user.preferred_call_start,
            preferred_call_end=user.preferred_call_end,
            claims=list(claims.values()),
        )
        async with self._autocommit.connect() as conn:  # reads only
            await self._add_dialler_facts(conn, facts, user.phone_number)
        return facts

    async def _add_dialler_facts(
        self, conn: AsyncConnection, facts: ClaimantFacts, number: str | None
    ) -> None:
        # any final opt-out, or an SMS STOP the claimant has not lifted with START
        facts.opted_out = (await suppression_status(conn, facts.user_id, number)).suppressed
        deceased = await conn.scalar(
            select(func.count()).where(
                db.calls.c.user_id == facts.user_id,
                db.calls.c.disposition == Disposition.DECEASED.value,
            )
        )
        facts.deceased = bool(deceased)
        # the number the latest wrong_number outcome was against (domain.facts)
        facts.wrong_phone_key = await conn.scalar(
            select(db.calls.c.phone_key)
            .where(
                db.calls.c.user_id == facts.user_id,
                db.calls.c.disposition == Disposition.WRONG_NUMBER.value,
            )
            .order_by(db.calls.c.started_at.desc(), db.calls.c.id.desc())
            .limit(1)
        )
        callback = (
            await conn.execute(
                select(db.callbacks.c.scheduled_for, db.callbacks.c.owner_agent_id)
                .where(
                    db.callbacks.c.user_id == facts.user_id,
                    db.callbacks.c.status == CallbackStatus.PENDING.value,
                )
                .order_by(db.callbacks.c.scheduled_for)
                .limit(1)
            )
        ).one_or_none()
        if callback is not None:
            facts.callback_at = callback.scheduled_for
            facts.callback_owner_agent_id = callback.owner_agent_id

    # --- assessment and the queue projection ------------------------------------------------

    @activity.defn
    async def refresh_task(self, request: RefreshTask) -> TaskRefreshed:
        """Assess the claimant and bring their task in line, on one connection: the one local
        activity a change costs. Writes nothing when the task would say what it says."""
        claim = request.claim
        async with self._autocommit.connect() as conn:
            assessment = await self._assess(conn, request.facts, request.now)
            wanted = task_shape(assessment, claim)
            if wanted == request.written:
                return TaskRefreshed(assessment, request.written, wrote=False)
            if wanted.queue is not None:
                task = PublishTask(
                    request.user_id, request.workflow_id, request.version, assessment, claim
                )
                await task_store.publish(conn, task)
            elif claim is None:
                withdrawal = WithdrawTask(
                    request.user_id, request.version, assessment.not_before_reason
                )
                await task_store.withdraw(conn, withdrawal)
            else:
                # the claimant left the queue mid-call: the claim stays until its outcome
                return TaskRefreshed(assessment, request.written, wrote=False)
        return TaskRefreshed(assessment, wanted, wrote=True)

    async def assess(self, request: AssessRequest) -> Assessment:
        """Stage, score with its breakdown, and the earliest time the claimant may be called
        (`dialler scoring explain`; the workflow's `refresh_task` assesses on its own)."""
        async with self._dialler.connect() as conn:
            return await self._assess(conn, request.facts, request.now)

    async def _assess(
        self, conn: AsyncConnection, facts: ClaimantFacts, now: datetime
    ) -> Assessment:
        stage = derive_stage(facts, now, self._rules.stage_priority)
        history = await self.contact_history(conn, facts, now, stage)
        return assess(facts, history, self._rules, now, stage)

    async def contact_history(
        self, conn: AsyncConnection, facts: ClaimantFacts, now: datetime, stage: Stage
    ) -> ContactHistory:
        """See `CONTACT_HISTORY`."""
        zone = self._rules.calling_windows.zone
        # daily caps count calls since local (UK) midnight
        day_start = datetime.combine(now.astimezone(zone).date(), dtime.min, zone)
        parameters = {
            "user_id": facts.user_id,
            "phone_key": facts.phone_key,
            "day_start": day_start,
            "week_ago": now - timedelta(days=7),
        }
        rows = (await conn.execute(CONTACT_HISTORY, parameters)).all()
        rates = await self._conversion_rates(conn)
        first = rows[0]
        dispositions = [row for row in rows if row.disposition is not None]
        failed = 0
        for row in dispositions:
            if row.disposition not in _FAILED:
                break
            failed += 1
        latest = dispositions[0] if dispositions else None
        return ContactHistory(
            attempts_today=int(first.today),
            attempts_7d=int(first.week),
            number_attempts_today=int(first.number_today),
            number_attempts_7d=int(first.number_week),
            last_contact_at=first.last_contact_at,
            last_disposition=latest.disposition if latest else None,
            last_disposition_at=(latest.ended_at or latest.started_at) if latest else None,
            last_abandoned_at=first.last_abandoned_at,
            consecutive_failed_attempts=failed,
            segment_conversion_rate=rates.get(stage.value, rates.get("all")),
        )

    async def _conversion_rates(self, conn: AsyncConnection) -> dict[str, float]:
        """Share of reached calls that moved a claim forward, per queue, over 90 days;
        cached per worker for ten minutes since it changes slowly."""
        fetched_at, rates = self._conversion
        if time.monotonic() - fetched_at < CONVERSION_CACHE_SECONDS:
            return rates
        calls = db.calls.c
        rows = (
            await conn.execute(
                select(
                    calls.queue,
                    func.count().filter(calls.disposition.in_(_POSITIVE)),
                    func.count().filter(calls.disposition.is_not(None)),
                )
                .where(calls.started_at >= func.now() - CONVERSION_WINDOW)
                .group_by(calls.queue)
            )
        ).all()
        rates = {
            str(queue): positive / total
            for queue, positive, total in rows
            if queue is not None and total >= 20
        }
        total_positive = sum(int(r[1]) for r in rows)
        total = sum(int(r[2]) for r in rows)
        if total >= 20:
            rates["all"] = total_positive / total
        self._conversion = (time.monotonic(), rates)
        return rates

    # --- outcomes, callbacks, notes, opt-outs, audit ---------------------------------------

    @activity.defn
    async def record_outcome(self, request: RecordOutcome) -> OutcomeStored:
        """Writes the outcome (and its audit entry) once per `outcome_key`: a run after a
        timed-out workflow task finds its earlier write and returns the same call."""
        calls = db.calls
        async with self._dialler.begin() as conn:
            recorded = await conn.scalar(
                select(calls.c.id).where(calls.c.outcome_key == request.outcome_key)
            )
            if recorded is not None:
                return OutcomeStored(call_id=int(recorded))
            values = {
                "disposition": request.disposition,
                "notes": request.notes or None,
                "abandoned": request.abandoned,
                "outcome_key": request.outcome_key,
            }
            if request.call_id is not None:
                await conn.execute(
                    update(calls)
                    .where(calls.c.id == request.call_id, calls.c.user_id == request.user_id)
                    # the call-status webhook may have found the call abandoned: keep that
                    .values(**values | {"abandoned": calls.c.abandoned | request.abandoned})
                )
                call_id = request.call_id
            else:
                number = await self._replica.phone_number(request.user_id)
                # Two runs racing past the check above: the unique key lets one insert win.
                inserted = await conn.scalar(
                    pg_insert(calls)
                    .values(
                        user_id=request.user_id,
                        agent_id=request.agent_id,
                        queue=request.queue.value if request.queue else None,
                        provider="manual",
                        to_number=number or "unknown",
                        phone_key=phone_key(number),
                        status="completed",
                        started_at=request.at,
                        ended_at=request.at,
                        **values,
                    )
                    .on_conflict_do_nothing(index_elements=[calls.c.outcome_key])
                    .returning(calls.c.id)
                )
                if inserted is None:
                    winner = await conn.scalar(
                        select(calls.c.id).where(calls.c.outcome_key == request.outcome_key)
                    )
                    assert winner is not None  # the conflicting row exists
                    return OutcomeStored(call_id=int(winner))
                call_id = int(inserted)
            await self._audit(
                conn,
                AuditEntry(
                    actor_type="agent",
                    actor_id=str(request.agent_id),
                    action="outcome_recorded",
                    subject_type="user",
                    subject_id=str(request.user_id),
                    detail={"disposition": request.disposition, "call_id": str(call_id)},
                ),
            )
        return OutcomeStored(call_id=call_id)

    @activity.defn
    async def save_callback(self, request: SaveCallback) -> CallbackSaved:
        windows = self._rules.calling_windows
        if not callback_time_allowed(request.at, windows):
            raise ApplicationError(
                f"callback time outside the calling windows: {explain(request.at, windows)}",
                type="CallbackOutsideWindow",
                non_retryable=True,
            )
        table = db.callbacks
        async with self._dialler.begin() as conn:
            # one pending callback per claimant: a new one replaces the old
            await conn.execute(
                update(table)
                .where(
                    table.c.user_id == request.user_id,
                    table.c.status == CallbackStatus.PENDING.value,
                )
                .values(status=CallbackStatus.CANCELLED.value, completed_at=func.now())
            )
            callback_id = await conn.scalar(
                insert(table)
                .values(
                    user_id=request.user_id,
                    owner_agent_id=request.owner_agent_id,
                    scheduled_for=request.at,
                    notes=request.notes or None,
                    created_by=request.created_by,
                )
                .returning(table.c.id)
            )
        return CallbackSaved(callback_id=int(callback_id or 0))

    @activity.defn
    async def complete_callbacks(self, request: CompleteCallbacks) -> CallbacksCompleted:
        table = db.callbacks
        async with self._dialler.begin() as conn:
            result = await conn.execute(
                update(table)
                .where(
                    and_(
                        table.c.user_id == request.user_id,
                        table.c.status == CallbackStatus.PENDING.value,
                        table.c.scheduled_for <= request.at,
                    )
                )
                .values(status=CallbackStatus.COMPLETED.value, completed_at=request.at)
            )
        return CallbacksCompleted(completed=result.rowcount)

    @activity.defn
    async def save_note(self, request: SaveNote) -> NoteAdded:
        async with self._dialler.begin() as conn:
            note_id = await conn.scalar(
                insert(db.claimant_notes)
                .values(user_id=request.user_id, agent_id=request.agent_id, body=request.text)
                .returning(db.claimant_notes.c.id)
            )
        return NoteAdded(note_id=int(note_id or 0))

    @activity.defn
    async def suppress(self, request: Suppress) -> Suppressed:
        """Record the opt-out unless it is already the latest event on its channel: whoever
        saw it first may have written it (the SMS webhook writes its `sms_stop` row at once,
        before it signals), and a second copy written later could outlive a START in
        between. A STOP after a START is a new event, so it is written."""
        channel = SMS_REASONS if request.reason in SMS_REASONS else {request.reason}
        async with self._dialler.begin() as conn:
            latest = await latest_reason_among(conn, request.user_id, channel)
            suppression_id = latest.id if latest and latest.reason == request.reason else None
            if suppression_id is None:
                suppression_id = await append_suppression(
                    conn, reason=request.reason, source=request.source, user_id=request.user_id
                )
            await self._audit(
                conn,
                AuditEntry(
                    actor_type="workflow",
                    actor_id=request.source,
                    action="opted_out",
                    subject_type="user",
                    subject_id=str(request.user_id),
                    detail={"reason": request.reason},
                ),
            )
        return Suppressed(suppression_id=int(suppression_id or 0))

    @activity.defn
    async def audit(self, entry: AuditEntry) -> AuditWritten:
        async with self._dialler.begin() as conn:
            return AuditWritten(audit_id=await self._audit(conn, entry))

    @staticmethod
    async def _audit(conn: AsyncConnection, entry: AuditEntry) -> int:
        return await write_audit(conn, entry)
