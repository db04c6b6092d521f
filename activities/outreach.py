"""Activities of the outreach workflow: the only code that does its I/O.

Built once per worker with the engines and the source of the rules in force (no
module-level clients): each assessment uses the rules in force as it runs, so a version saved
on the rules page is picked up without a restart (`adapters.rules_source`).
Every method takes one dataclass from `schemas.outreach` and returns one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters import ai_conversations, call_log, consents, learned_rates, task_store, tps
from adapters.ai_presence import AiPresence
from adapters.audit_log import write_audit
from adapters.replica_reader import ReplicaReader
from adapters.rules_source import RulesSource, as_source
from adapters.scoring_splits import RunningSplit, SplitSource
from adapters.suppressions import append_suppression, latest_reason_among, suppression_status
from domain.assessment import assess, task_shape
from domain.calling_windows import callback_time_allowed, explain
from domain.dispositions import EFFECTS
from domain.learned_rates import region_of
from domain.phones import phone_key, to_e164
from domain.rules import DiallerRules
from domain.scoring import rate_view
from domain.scoring_split import Arm, arm_of, scored_by
from domain.stages import derive_stage
from domain.suppressions import SMS_REASONS
from schemas.learned_rates import EMPTY, UNKNOWN_SEGMENT, RateTable
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


def _region(postcode: str | None) -> str | None:
    """The region of the postcode's area (None: no postcode we can place)."""
    region = region_of(postcode)
    return None if region == UNKNOWN_SEGMENT else region


def _age(born: date | None, today: date) -> int | None:
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class OutreachActivities:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica_db: AsyncEngine,
        rules: RulesSource | DiallerRules,
        ai: AiPresence | None = None,
        splits: SplitSource | None = None,
    ) -> None:
        """`ai`: the AI agents' presence, for the routing policy (None: every contact is a
        person's). `splits`: the running live split, whose candidate arm is scored by its
        candidate rules (None: no split applies, as in a preview or a one-off command)."""
        self._dialler = dialler
        self._ai = ai
        # A change's refresh reads, then writes one row in one statement: no transaction
        # needed, so none of BEGIN and COMMIT's round trips.
        self._autocommit = dialler.execution_options(isolation_level="AUTOCOMMIT")
        # the replica's statements (the hot path's built once at import) are the reader's
        self._replica = ReplicaReader(replica_db)
        self._rules = as_source(rules)
        self._splits = splits
        # (rules in force, split id) -> the candidate arm's rules, built once per pair
        self._split_rules: tuple[DiallerRules, int, DiallerRules] | None = None
        self._conversion: tuple[float, dict[str, float]] = (0.0, {})
        self._learned: tuple[float, RateTable] = (-CONVERSION_CACHE_SECONDS, EMPTY)

    # --- facts -----------------------------------------------------------------------

    @activity.defn
    async def load_facts(self, request: LoadFactsRequest) -> ClaimantFacts:
        """Rebuild the claimant's facts: the replica's rows plus the dialler's own record
        (opt-outs, bereavement, a pending callback). A reload re-reads the rules version in
        force too: the assessment that follows a RULES_CHANGED reload must use the version
        just saved, however recently this worker last checked."""
        user_id = request.user_id
        await self._rules.newest()
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
            region=_region(user.postcode),
        )
        async with self._autocommit.connect() as conn:  # reads only
            await self._add_dialler_facts(conn, facts, user.phone_number, user.email)
            await self._add_consent_facts(conn, facts, replica_rows.consents, user.phone_number)
        return facts

    @staticmethod
    async def _add_consent_facts(
        conn: AsyncConnection,
        facts: ClaimantFacts,
        replica_consents: Sequence[Any],
        number: str | None,
    ) -> None:
        """Consent from both sources (domain.consent), and the number's TPS/CTPS screening,
        done now: every reload re-screens."""
        now = datetime.now(UTC)
        records = await consents.records_of(conn, facts.user_id, replica_consents)
        facts.consent_channels = sorted(consents.in_force(records, now))
        screening = await tps.screening(conn, to_e164(number), now)
        facts.tps_listed = screening.listed
        facts.tps_screened_at = screening.screened_at

    async def _add_dialler_facts(
        self, conn: AsyncConnection, facts: ClaimantFacts, number: str | None, email: str | None
    ) -> None:
        # any final opt-out, or an SMS STOP the claimant has not lifted with START
        status = await suppression_status(conn, facts.user_id, number, email)
        facts.opted_out = status.suppressed
        record = await call_log.claimant_record(conn, facts.user_id)
        facts.deceased = record.deceased
        # the number the latest wrong_number outcome was against (domain.facts)
        facts.wrong_phone_key = record.wrong_phone_key
        if record.callback_at is not None:
            facts.callback_at = record.callback_at
            facts.callback_owner_agent_id = record.callback_owner_agent_id
        facts.ai_excluded = await ai_conversations.excluded_reason(conn, facts.user_id)

    # --- assessment and the queue projection ------------------------------------------------

    @activity.defn
    async def refresh_task(self, request: RefreshTask) -> TaskRefreshed:
        """Assess the claimant and bring their task in line, on one connection: the one local
        activity a change costs. Writes nothing when the task would say what it says."""
        claim = request.claim
        async with self._autocommit.connect() as conn:
            assessment = await self._assess(conn, request.facts, request.now)
            wanted = task_shape(assessment, claim)
            if wanted.queue is not None:  # a task row says which arm scored it
                wanted = replace(wanted, score_arm=assessment.score_arm)
            if wanted == request.written:
                return TaskRefreshed(assessment, request.written, wrote=False)
            if wanted.queue is not None:
                task = PublishTask(
                    request.user_id, request.workflow_id, request.version, assessment, claim
                )
                await task_store.publish(conn, task)
            elif claim is None:
                queue = assessment.stage.queue
                withdrawal = WithdrawTask(
                    request.user_id,
                    request.version,
                    assessment.not_before_reason,
                    workflow_id=request.workflow_id,
                    queue=queue.value if queue is not None else None,
                    score=assessment.score,
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
        rules = await self._rules.current()  # one version for the whole assessment
        arm: Arm | None = None
        split = await self._splits.current() if self._splits is not None else None
        if split is not None:
            arm = arm_of(facts.user_id, split.id, split.share)
            if arm is Arm.CANDIDATE:
                rules = self._candidate_rules(rules, split)
        stage = derive_stage(facts, now, rules.stage_priority)
        history = await self.contact_history(conn, facts, now, stage, rules)
        available = await self._ai.current(conn, now) if self._ai is not None else None
        assessment = assess(facts, history, rules, now, stage, available)
        assessment.score_arm = None if arm is None else arm.value
        return assessment

    def _candidate_rules(self, in_force: DiallerRules, split: RunningSplit) -> DiallerRules:
        """The candidate's score with the other rules in force (`scored_by`), built once per
        (rules in force, split) rather than per claimant."""
        built = self._split_rules
        if built is None or built[0] is not in_force or built[1] != split.id:
            built = self._split_rules = (in_force, split.id, scored_by(in_force, split.rules))
        return built[2]

    async def contact_history(
        self,
        conn: AsyncConnection,
        facts: ClaimantFacts,
        now: datetime,
        stage: Stage,
        rules: DiallerRules | None = None,
    ) -> ContactHistory:
        """The claimant's and their number's attempts, and their latest outcomes, in one
        read (`adapters.call_log.CONTACT_HISTORY`)."""
        zone = (rules or await self._rules.current()).calling_windows.zone
        # daily caps count calls since local (UK) midnight
        day_start = datetime.combine(now.astimezone(zone).date(), dtime.min, zone)
        summary = await call_log.contact_summary(
            conn,
            user_id=facts.user_id,
            phone_key=facts.phone_key,
            day_start=day_start,
            week_ago=now - timedelta(days=7),
        )
        table = await self._learned_rates(conn)
        # the queue's 90-day rate is the conversion factor's fallback: read only without
        # a learned version
        rates = await self._conversion_rates(conn) if table.version_id is None else {}
        failed = 0
        for outcome in summary.outcomes:
            if outcome.disposition not in _FAILED:
                break
            failed += 1
        latest = summary.outcomes[0] if summary.outcomes else None
        return ContactHistory(
            attempts_today=summary.attempts_today,
            attempts_7d=summary.attempts_7d,
            number_attempts_today=summary.number_attempts_today,
            number_attempts_7d=summary.number_attempts_7d,
            last_contact_at=summary.last_contact_at,
            last_disposition=latest.disposition if latest else None,
            last_disposition_at=latest.at if latest else None,
            last_abandoned_at=summary.last_abandoned_at,
            consecutive_failed_attempts=failed,
            segment_conversion_rate=rates.get(stage.value, rates.get("all")),
            learned=rate_view(table, facts, stage),
            previous_agent_id=summary.previous_agent_id,
        )

    async def _learned_rates(self, conn: AsyncConnection) -> RateTable:
        """The newest learned rates version (EMPTY before the first nightly run), cached per
        worker for ten minutes: a version is saved once a night."""
        fetched_at, table = self._learned
        if time.monotonic() - fetched_at < CONVERSION_CACHE_SECONDS:
            return table
        table = await learned_rates.newest_rates(conn)
        self._learned = (time.monotonic(), table)
        return table

    async def _conversion_rates(self, conn: AsyncConnection) -> dict[str, float]:
        """Share of reached calls that moved a claim forward, per queue, over 90 days;
        cached per worker for ten minutes since it changes slowly."""
        fetched_at, rates = self._conversion
        if time.monotonic() - fetched_at < CONVERSION_CACHE_SECONDS:
            return rates
        rows = await call_log.outcomes_by_queue(conn, _POSITIVE, CONVERSION_WINDOW)
        rates = {
            str(row.queue): row.positive / row.total
            for row in rows
            if row.queue is not None and row.total >= 20
        }
        total_positive = sum(row.positive for row in rows)
        total = sum(row.total for row in rows)
        if total >= 20:
            rates["all"] = total_positive / total
        self._conversion = (time.monotonic(), rates)
        return rates

    # --- outcomes, callbacks, notes, opt-outs, audit ---------------------------------------

    @activity.defn
    async def record_outcome(self, request: RecordOutcome) -> OutcomeStored:
        """Writes the outcome (and its audit entry) once per `outcome_key`: a run after a
        timed-out workflow task finds its earlier write and returns the same call."""
        async with self._dialler.begin() as conn:
            recorded = await call_log.recorded_outcome(conn, request.outcome_key)
            if recorded is not None:
                return OutcomeStored(call_id=recorded)
            if request.call_id is not None:
                await call_log.add_outcome_to_call(conn, request)
                call_id = request.call_id
            else:
                number = await self._replica.phone_number(request.user_id)
                # Two runs racing past the check above: the unique key lets one insert win.
                inserted = await call_log.insert_outcome_call(conn, request, number)
                if inserted is None:
                    winner = await call_log.recorded_outcome(conn, request.outcome_key)
                    assert winner is not None  # the conflicting row exists
                    return OutcomeStored(call_id=winner)
                call_id = inserted
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
        windows = (await self._rules.current()).calling_windows
        if not callback_time_allowed(request.at, windows):
            raise ApplicationError(
                f"callback time outside the calling windows: {explain(request.at, windows)}",
                type="CallbackOutsideWindow",
                non_retryable=True,
            )
        async with self._dialler.begin() as conn:
            # one pending callback per claimant: a new one replaces the old
            callback_id = await call_log.replace_pending_callback(conn, request)
        return CallbackSaved(callback_id=callback_id)

    @activity.defn
    async def complete_callbacks(self, request: CompleteCallbacks) -> CallbacksCompleted:
        async with self._dialler.begin() as conn:
            completed = await call_log.complete_due_callbacks(conn, request.user_id, request.at)
        return CallbacksCompleted(completed=completed)

    @activity.defn
    async def save_note(self, request: SaveNote) -> NoteAdded:
        async with self._dialler.begin() as conn:
            note_id = await call_log.add_note(conn, request.user_id, request.agent_id, request.text)
        return NoteAdded(note_id=note_id)

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
