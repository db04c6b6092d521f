"""OutreachWorkflow: one durable workflow per claimant (`outreach-<user_id>`).

It holds the claimant's facts, keeps exactly one call task published for the right queue
with the right score and `not_before` (or none), reacts to change events, confirms agent
actions through validated Updates, and ends when there is nothing left to chase. All I/O
happens in `OutreachActivities`; all rules live in `domain`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from activities.outreach import OutreachActivities
    from domain.assessment import task_shape
    from domain.dispositions import Disposition, effect_of
    from domain.facts import apply_disposition, apply_event
    from domain.stages import has_future_callback
    from schemas import search_attributes as sa
    from schemas.messaging import CreateMagicLink, MagicLinkCreated
    from schemas.outreach import (
        Assessment,
        AssessRequest,
        AuditEntry,
        CallbackRequest,
        CallbackScheduled,
        ChangeEvent,
        ChangeKind,
        Claim,
        ClaimGranted,
        ClaimRequest,
        CompleteCallbacks,
        LoadFactsRequest,
        MagicLinkRequest,
        NoteAdded,
        NoteRequest,
        OutcomeRecorded,
        OutcomeRequest,
        OutreachInput,
        OutreachResult,
        OutreachState,
        PublishTask,
        RecordOutcome,
        RefreshTask,
        Released,
        ReleaseRequest,
        SaveCallback,
        SaveNote,
        Stage,
        Suppress,
        TaskShape,
        WithdrawTask,
    )

MAX_LEASE = timedelta(hours=4)
RESCORE_EVERY = timedelta(hours=6)  # scores drift with time (days since contact, ...)
SEEN_EVENTS_KEPT = 500
ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
# Patches (`workflow.patched`): histories recorded before a change replay the old way.
CLAIM_ANSWERS_AT_ONCE = "claim-answers-at-once"
# A change that moves no deadline and no search attribute writes no timer and no upsert:
# the re-score is due every RESCORE_EVERY from the run's start, not from the last change.
QUIET_ITERATIONS = "quiet-iterations"
# A change costs one local activity, `refresh_task` (assess and write the task on one
# connection), instead of `assess` then `publish_task`/`withdraw_task`.
ONE_ACTIVITY_PER_CHANGE = "one-activity-per-change"
Arg = TypeVar("Arg")
Result = TypeVar("Result")


def workflow_id_for(user_id: int) -> str:
    return f"outreach-{user_id}"


@workflow.defn(name="Outreach")
class OutreachWorkflow:
    @workflow.init
    def __init__(self, input: OutreachInput) -> None:
        self._user_id = input.user_id
        self._state: OutreachState | None = input.carried
        self._pending: list[ChangeEvent] = (
            list(input.carried.pending_events) if input.carried else []
        )
        self._reload = False
        self._fresh = False
        self._assessment: Assessment | None = None
        self._published: TaskShape | None = None  # what the last task write said
        # Every change bumps `_changes`; the loop records which change its latest assessment
        # covered, so an update can wait for an assessment that saw its own change.
        self._changes = 0
        self._assessed_through = -1
        # A claim moves the lease timer without needing a re-assessment: `_timers` wakes the
        # wait to re-arm its timer only.
        self._timers = 0
        self._quiet = False  # QUIET_ITERATIONS, decided when the run starts
        self._one_activity = False  # ONE_ACTIVITY_PER_CHANGE, likewise
        self._rescore_at: datetime | None = None
        self._timer: asyncio.Future[None] | None = None
        self._timer_due: datetime | None = None
        self._described: tuple[Any, ...] | None = None

    # --- signals -------------------------------------------------------------------------

    @workflow.signal
    def change(self, event: ChangeEvent) -> None:
        """A row change of the main app (or an opt-out): queued, applied by the run loop."""
        seen = self._state.seen_event_ids if self._state else []
        if event.event_id in seen or any(e.event_id == event.event_id for e in self._pending):
            return
        self._pending.append(event)
        self._changes += 1

    # --- queries -------------------------------------------------------------------------

    @workflow.query
    def assessment(self) -> Assessment | None:
        return self._assessment

    @workflow.query
    def state(self) -> OutreachState | None:
        return self._state

    # --- run loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OutreachInput) -> OutreachResult:
        self._quiet = workflow.patched(QUIET_ITERATIONS)
        self._one_activity = workflow.patched(ONE_ACTIVITY_PER_CHANGE)
        workflow.set_current_details("loading the claimant's facts")
        if self._state is None:
            facts = await self._run(OutreachActivities.load_facts, LoadFactsRequest(self._user_id))
            self._state = OutreachState(facts=facts)
            self._fresh = True  # a REFRESH that started this run needs no second load
        while True:
            iteration = self._changes
            await self._apply_pending()
            now = workflow.now()
            await self._expire_lease(now)
            if self._one_activity:
                assessment = await self._refresh_task(now)
                self._assessment = assessment
            else:
                assessment = await self._run(
                    OutreachActivities.assess, AssessRequest(self._state.facts, now)
                )
                self._assessment = assessment
                await self._project(assessment)
            self._assessed_through = iteration
            self._describe(assessment)

            if self._finished(assessment, now):
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._changes == iteration:
                    return OutreachResult(self._user_id, Stage.DONE, assessment.not_before_reason)
                continue
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._state.pending_events = list(self._pending)
                workflow.continue_as_new(OutreachInput(self._user_id, carried=self._state))

            await self._wait_for_change(iteration)

    async def _wait_for_change(self, seen: int) -> None:
        """Until a signal or update changes something, or a timer (lease, callback, re-score)
        is due. A new lease only re-arms the timer."""
        if self._quiet:
            return await self._wait_keeping_the_timer(seen)
        while True:
            armed = self._timers
            try:
                await workflow.wait_condition(
                    partial(self._woken, seen, armed), timeout=self._next_timer(workflow.now())
                )
            except TimeoutError:
                return
            if self._changes != seen:
                return

    def _woken(self, seen_changes: int, armed_timers: int) -> bool:
        return self._changes != seen_changes or self._timers != armed_timers

    def _woken_or_due(self, seen: int, armed: int, timer: asyncio.Future[None]) -> bool:
        return self._woken(seen, armed) or timer.done()

    async def _wait_keeping_the_timer(self, seen: int) -> None:
        """As `_wait_for_change`, with one timer kept across changes until its deadline
        moves: most changes move none, and each timer restarted is two more history events
        and timer work on the server."""
        while True:
            now = workflow.now()
            due = now + self._next_timer(now)
            if self._timer is None or self._timer_due != due:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = asyncio.ensure_future(asyncio.sleep((due - now).total_seconds()))
                self._timer_due = due
            timer, armed = self._timer, self._timers
            await workflow.wait_condition(partial(self._woken_or_due, seen, armed, timer))
            if timer.done():
                self._timer = None
                return
            if self._changes != seen:
                return

    def _finished(self, assessment: Assessment, now: datetime) -> bool:
        assert self._state is not None
        return (
            assessment.stage is Stage.DONE
            and self._state.claim is None
            and not has_future_callback(self._state.facts, now)
        )

    def _next_timer(self, now: datetime) -> timedelta:
        assert self._state is not None
        deadlines = [self._rescore_due(now)]
        if self._state.claim is not None:
            deadlines.append(self._state.claim.lease_expires_at)
        callback_at = self._state.facts.callback_at
        if callback_at is not None and callback_at > now:
            deadlines.append(callback_at)
        return max(min(deadlines) - now, timedelta(seconds=1))

    def _rescore_due(self, now: datetime) -> datetime:
        if not self._quiet:
            return now + RESCORE_EVERY
        if self._rescore_at is None or self._rescore_at <= now:
            self._rescore_at = now + RESCORE_EVERY
        return self._rescore_at

    async def _apply_pending(self) -> None:
        assert self._state is not None
        events, self._pending = self._pending, []
        refresh = any(e.kind is ChangeKind.REFRESH for e in events)
        if refresh:
            self._published = None  # rewrite the task: the projection may have drifted
        if self._reload or (refresh and not self._fresh):
            self._reload = False
            fresh = await self._run(OutreachActivities.load_facts, LoadFactsRequest(self._user_id))
            # An opt-out recorded by this workflow is final even if a reload raced its write.
            fresh.opted_out = fresh.opted_out or self._state.facts.opted_out
            fresh.entity_versions = self._state.facts.entity_versions
            self._state.facts = fresh
        for event in sorted(events, key=lambda e: e.occurred_at):
            apply_event(self._state.facts, event)
            if event.kind is ChangeKind.OPTED_OUT:
                await self._run(
                    OutreachActivities.suppress,
                    Suppress(self._user_id, event.reason or "opted_out", "change_event"),
                )
        seen = self._state.seen_event_ids + [e.event_id for e in events]
        self._state.seen_event_ids = seen[-SEEN_EVENTS_KEPT:]
        self._fresh = False

    async def _expire_lease(self, now: datetime) -> None:
        assert self._state is not None
        claim = self._state.claim
        if claim is None or claim.lease_expires_at > now:
            return
        self._state.claim = None
        await self._audit(
            "lease_expired", str(claim.agent_id), {"claimed_at": claim.claimed_at.isoformat()}
        )

    def _following_version(self) -> int:
        """Task versions grow across runs too: microseconds of workflow time, at least +1."""
        assert self._state is not None
        now_us = int(workflow.now().timestamp() * 1_000_000)
        return max(self._state.task_version + 1, now_us)

    def _next_version(self) -> int:
        assert self._state is not None
        self._state.task_version = self._following_version()
        return self._state.task_version

    async def _refresh_task(self, now: datetime) -> Assessment:
        """Assess, and keep exactly one task published for the current queue, or none."""
        assert self._state is not None
        claim, version = self._state.claim, self._following_version()
        refreshed = await self._run(
            OutreachActivities.refresh_task,
            RefreshTask(
                user_id=self._user_id,
                workflow_id=workflow.info().workflow_id,
                facts=self._state.facts,
                now=now,
                version=version,
                claim=claim,
                written=self._published,
            ),
        )
        if refreshed.wrote:
            self._state.task_version = version
        self._published = refreshed.written
        if self._state.claim != claim:
            # A claim was granted while the task was being written, and the write (which
            # did not know it) may have listed the task as ready: go round again to write it.
            self._changes += 1
        return refreshed.assessment

    async def _project(self, assessment: Assessment) -> None:
        """Before ONE_ACTIVITY_PER_CHANGE: keep exactly one task published, or none."""
        assert self._state is not None
        claim = self._state.claim
        wanted = task_shape(assessment, claim)
        if wanted == self._published:
            return
        if wanted.queue is not None:
            await self._run(
                OutreachActivities.publish_task,
                PublishTask(
                    user_id=self._user_id,
                    workflow_id=workflow.info().workflow_id,
                    version=self._next_version(),
                    assessment=assessment,
                    claim=claim,
                ),
            )
        elif claim is None:
            await self._run(
                OutreachActivities.withdraw_task,
                WithdrawTask(self._user_id, self._next_version(), assessment.not_before_reason),
            )
        else:
            return  # the claimant left the queue mid-call: keep the claim until its outcome
        self._published = wanted

    def _describe(self, assessment: Assessment) -> None:
        assert self._state is not None
        claim = self._state.claim
        queue = assessment.stage.queue
        described = (
            assessment.stage,
            queue,
            assessment.score,
            claim.agent_id if claim else None,
            self._state.facts.callback_at,
        )
        if not self._quiet or described != self._described:
            self._upsert_attributes(assessment)
        self._described = described
        # No personal data: ids, stage, score and reasons only.
        when = assessment.not_before.isoformat() if assessment.not_before else "never"
        workflow.set_current_details(
            f"**{assessment.stage.value}** · score {assessment.score:.1f} · "
            f"callable from {when} ({assessment.not_before_reason})"
            + (f" · claimed by agent {claim.agent_id}" if claim else "")
        )

    def _upsert_attributes(self, assessment: Assessment) -> None:
        assert self._state is not None
        claim = self._state.claim
        queue = assessment.stage.queue
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.OUTREACH_STAGE.value_set(assessment.stage.value),
            sa.OUTREACH_QUEUE.value_set(queue.value) if queue else sa.OUTREACH_QUEUE.value_unset(),
            sa.OUTREACH_SCORE.value_set(assessment.score),
            sa.ASSIGNED_AGENT.value_set(str(claim.agent_id))
            if claim
            else sa.ASSIGNED_AGENT.value_unset(),
            sa.NEXT_CALLBACK_AT.value_set(self._state.facts.callback_at)
            if self._state.facts.callback_at
            else sa.NEXT_CALLBACK_AT.value_unset(),
        ]
        workflow.upsert_search_attributes(updates)

    async def _run(
        self,
        activity: Callable[[OutreachActivities, Arg], Awaitable[Result]],
        arg: Arg,
    ) -> Result:
        """The outreach activities are short database reads and writes: run as local
        activities they cost no extra round trips through the server (one workflow task
        per decision instead of one per activity), while keeping their retries and their
        results in the history."""
        return await workflow.execute_local_activity_method(
            activity, arg, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY
        )

    async def _audit(self, action: str, actor: str | None, detail: dict[str, str]) -> None:
        await self._run(
            OutreachActivities.audit,
            AuditEntry("workflow", actor, action, "user", str(self._user_id), detail),
        )

    # --- agent actions -----------------------------------------------------------------------

    @workflow.update
    def claim(self, request: ClaimRequest) -> ClaimGranted:
        """Confirms a reservation made by `services.claims.ClaimService`, which has already
        marked the task row claimed: nothing to assess or write, so the reply leaves with
        this workflow task at once (an agent waits on it). The same agent asking again for
        the same task (a retry after a lost reply) gets the same grant."""
        assert self._state is not None and self._assessment is not None
        claim = self._state.claim
        if claim is None:
            # A claim is a lease: an agent who vanishes mid-call gives the task back.
            claim = Claim(
                agent_id=request.agent_id,
                claimed_at=workflow.now(),
                lease_expires_at=workflow.now() + timedelta(seconds=request.lease_seconds),
                task_version=request.task_version,
            )
            self._state.claim = claim
            if not workflow.patched(CLAIM_ANSWERS_AT_ONCE):
                self._changes += 1  # histories from before: the run loop re-assessed here
            else:
                if self._published is not None:
                    self._published = replace(self._published, claimed_by=claim.agent_id)
                self._describe(self._assessment)
                self._timers += 1
        return ClaimGranted(
            user_id=self._user_id,
            queue=request.queue,
            task_version=request.task_version,
            lease_expires_at=claim.lease_expires_at,
        )

    @claim.validator
    def _validate_claim(self, request: ClaimRequest) -> None:
        state, assessment = self._state, self._assessment
        if state is None or assessment is None:
            raise ValueError("the claimant is still being assessed")
        if state.claim is not None:
            if (state.claim.agent_id, state.claim.task_version) == (
                request.agent_id,
                request.task_version,
            ):
                return  # a retry of the claim this agent holds
            raise ValueError(f"already claimed by agent {state.claim.agent_id}")
        if request.task_version != state.task_version:
            raise ValueError("stale task: the claimant's task has changed since it was listed")
        if assessment.stage.queue != request.queue:
            raise ValueError(f"the claimant is no longer in the {request.queue.value} queue")
        if assessment.not_before is None or assessment.not_before > workflow.now():
            raise ValueError("the claimant may not be called yet")
        if request.is_ai and assessment.people_only:
            raise ValueError("vulnerable claimant: people only")
        if not 1 <= request.lease_seconds <= MAX_LEASE.total_seconds():
            raise ValueError("a lease lasts between 1 second and 4 hours")

    @workflow.update
    async def record_outcome(self, request: OutcomeRequest) -> OutcomeRecorded:
        assert self._state is not None and self._state.claim is not None
        claim = self._state.claim
        disposition = Disposition(request.disposition)
        effect = effect_of(disposition)
        now = workflow.now()
        queue = self._assessment.stage.queue if self._assessment else None
        if effect.needs_callback_time and request.callback_at is not None:
            # saved first: it checks the calling windows and fails the update if outside them
            callback = SaveCallback(
                self._user_id,
                request.callback_at,
                request.notes,
                request.agent_id,
                request.agent_id,
            )
            await self._run(OutreachActivities.save_callback, callback)
        outcome = RecordOutcome(
            user_id=self._user_id,
            agent_id=request.agent_id,
            queue=queue,
            disposition=disposition.value,
            notes=request.notes,
            at=now,
            call_id=request.call_id,
            abandoned=request.abandoned,
            outcome_key=f"{workflow.info().workflow_id}@{claim.claimed_at.isoformat()}",
        )
        await self._run(OutreachActivities.record_outcome, outcome)
        callback_due = self._state.facts.callback_at is not None and (
            self._state.facts.callback_at <= now
        )
        apply_disposition(
            self._state.facts, disposition, now, request.callback_at, request.agent_id
        )
        if callback_due and not effect.needs_callback_time:
            await self._run(
                OutreachActivities.complete_callbacks, CompleteCallbacks(self._user_id, now)
            )
        if effect.opt_out:
            await self._run(
                OutreachActivities.suppress,
                Suppress(self._user_id, "do_not_call", f"agent:{request.agent_id}"),
            )
        self._state.claim = None
        return await self._after_change()

    @record_outcome.validator
    def _validate_outcome(self, request: OutcomeRequest) -> None:
        self._require_claim_by(request.agent_id)
        try:
            disposition = Disposition(request.disposition)
        except ValueError:
            raise ValueError(f"unknown disposition {request.disposition!r}") from None
        if effect_of(disposition).needs_callback_time:
            if request.callback_at is None:
                raise ValueError("a callback needs a time")
            if request.callback_at <= workflow.now():
                raise ValueError("a callback must be in the future")

    @workflow.update
    async def release(self, request: ReleaseRequest) -> Released:
        assert self._state is not None
        self._state.claim = None
        await self._audit("claim_released", str(request.agent_id), {"reason": request.reason})
        await self._after_change()
        return Released(self._user_id, self._state.task_version)

    @release.validator
    def _validate_release(self, request: ReleaseRequest) -> None:
        self._require_claim_by(request.agent_id)

    @workflow.update
    async def schedule_callback(self, request: CallbackRequest) -> CallbackScheduled:
        assert self._state is not None
        callback = SaveCallback(
            self._user_id, request.at, request.notes, request.agent_id, request.owner_agent_id
        )
        await self._run(OutreachActivities.save_callback, callback)
        self._state.facts.callback_at = request.at
        self._state.facts.callback_owner_agent_id = request.owner_agent_id
        await self._after_change()
        return CallbackScheduled(self._user_id, request.at)

    @schedule_callback.validator
    def _validate_callback(self, request: CallbackRequest) -> None:
        if self._state is None:
            raise ValueError("the claimant is still being assessed")
        if self._state.facts.opted_out or self._state.facts.deceased:
            raise ValueError("outreach to this claimant has stopped")
        if request.at <= workflow.now():
            raise ValueError("a callback must be in the future")

    @workflow.update
    async def send_magic_link(self, request: MagicLinkRequest) -> MagicLinkCreated:
        """One click by the agent: a single-use link by SMS or email. Only ids pass through
        here; the activity reads the number or address from the replica."""
        return await workflow.execute_activity_method(
            MessagingActivities.create_magic_link,
            CreateMagicLink(self._user_id, request.channel, request.purpose, request.agent_id),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            # a retry after the provider accepted the message would send it twice
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

    @send_magic_link.validator
    def _validate_magic_link(self, request: MagicLinkRequest) -> None:
        if self._state is None:
            raise ValueError("the claimant is still being assessed")
        if self._state.facts.opted_out or self._state.facts.deceased:
            raise ValueError("outreach to this claimant has stopped")

    @workflow.update
    async def add_note(self, request: NoteRequest) -> NoteAdded:
        return await self._run(
            OutreachActivities.save_note, SaveNote(self._user_id, request.agent_id, request.text)
        )

    @add_note.validator
    def _validate_note(self, request: NoteRequest) -> None:
        if not request.text.strip():
            raise ValueError("a note needs some text")
        if len(request.text) > 4000:
            raise ValueError("a note is at most 4000 characters")

    def _require_claim_by(self, agent_id: int) -> None:
        claim = self._state.claim if self._state else None
        if claim is None or claim.agent_id != agent_id:
            raise ValueError("this claimant is not claimed by you")

    async def _after_change(self) -> OutcomeRecorded:
        """Wake the run loop and wait until it has re-assessed, so the caller learns where
        the claimant now stands."""
        self._changes += 1
        target = self._changes
        await workflow.wait_condition(lambda: self._assessed_through >= target)
        assessment = self._assessment
        assert assessment is not None
        return OutcomeRecorded(
            self._user_id, assessment.stage, assessment.not_before, assessment.not_before_reason
        )
