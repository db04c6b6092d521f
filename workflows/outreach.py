"""OutreachWorkflow: one durable workflow per claimant (`outreach-<user_id>`).

It holds the claimant's facts, keeps exactly one call task published for the right queue
with the right score and `not_before` (or none), reacts to change events, confirms agent
actions through validated Updates, and ends when there is nothing left to chase. All I/O
happens in `OutreachActivities`; all rules live in `domain` (the Updates' checks and an
outcome's writes in `domain.agent_actions`).

Handlers interleave at every await. `_lock` serialises everything that awaits and changes
the state (the run loop's reload, lease expiry and task write; an outcome; a release; a
callback), so a reload never overwrites what a handler is recording and a lease cannot expire
under an outcome. The `claim` Update takes no lock: it answers at once (an agent waits on it),
and every claim change checks it still ends the claim it meant to (`_end_claim`).
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
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.messaging import MessagingActivities
    from activities.outreach import OutreachActivities
    from domain import agent_actions as rules
    from domain.facts import apply_disposition, apply_event, needs_reload
    from domain.stages import has_future_callback
    from schemas import search_attributes as sa
    from schemas.ai import (
        AiChannel,
        AiContactInput,
        AiContactResult,
        AiHandoff,
        ContactEnd,
        HandoffReason,
        Routing,
    )
    from schemas.messaging import CreateMagicLink, MagicLinkCreated
    from schemas.outreach import (
        Assessment,
        AuditEntry,
        CallbackReassigned,
        CallbackReassignment,
        CallbackRequest,
        CallbackScheduled,
        ChangeEvent,
        ChangeKind,
        Claim,
        ClaimGranted,
        ClaimRequest,
        ClaimTakenBack,
        LoadFactsRequest,
        MagicLinkRequest,
        NoteAdded,
        NoteRequest,
        OutcomeRecorded,
        OutcomeRequest,
        OutreachInput,
        OutreachPause,
        OutreachResult,
        OutreachState,
        PauseRequest,
        RefreshTask,
        Released,
        ReleaseRequest,
        ResumeRequest,
        SaveCallback,
        SaveNote,
        Stage,
        SupervisorReleaseRequest,
        Suppress,
        TaskShape,
    )
    from workflows.ai_contact import AiContactWorkflow, ai_contact_id

AI_CALL_LEASE = timedelta(minutes=30)  # the AI's call: ring, talk (8 min by default), close
AI_SMS_LEASE = timedelta(days=1)  # the AI's SMS conversation ends itself after quiet hours
AI_EXCLUDED = "a complaint, bereavement or vulnerability raised with the AI"
RESCORE_EVERY = timedelta(hours=6)  # scores drift with time (days since contact, ...)
SEEN_EVENTS_KEPT = 500
ACTIVITY_TIMEOUT = timedelta(seconds=30)
ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
Arg = TypeVar("Arg")
Result = TypeVar("Result")


def workflow_id_for(user_id: int) -> str:
    return f"outreach-{user_id}"


def _search_attributes(
    assessment: Assessment, agent: int | None, callback_at: datetime | None
) -> list[SearchAttributeUpdate[Any]]:
    queue = assessment.stage.queue
    return [
        sa.OUTREACH_STAGE.value_set(assessment.stage.value),
        sa.OUTREACH_QUEUE.value_set(queue.value) if queue else sa.OUTREACH_QUEUE.value_unset(),
        sa.OUTREACH_SCORE.value_set(assessment.score),
        sa.ASSIGNED_AGENT.value_set(str(agent))
        if agent is not None
        else sa.ASSIGNED_AGENT.value_unset(),
        sa.NEXT_CALLBACK_AT.value_set(callback_at)
        if callback_at
        else sa.NEXT_CALLBACK_AT.value_unset(),
    ]


def _refuse(reason: str | None) -> None:
    if reason is not None:
        raise ValueError(reason)


def _refuse_now(reason: str | None) -> None:
    """A refusal found by a handler, after the validator passed: another handler ran in
    between. It fails the Update, not the workflow task."""
    if reason is not None:
        raise ApplicationError(reason, type="Refused", non_retryable=True)


@workflow.defn(name="Outreach")
class OutreachWorkflow:
    @workflow.init
    def __init__(self, input: OutreachInput) -> None:
        self._user_id = input.user_id
        self._state: OutreachState | None = input.carried
        self._pending: list[ChangeEvent] = (
            list(input.carried.pending_events) if input.carried else []
        )
        self._fresh = False  # the facts were loaded by this run's start
        self._lock = asyncio.Lock()
        self._assessment: Assessment | None = None
        self._published: TaskShape | None = None  # what the last task write said
        # Every change bumps `_changes`; the loop records which change its latest assessment
        # covered, so an update can wait for an assessment that saw its own change.
        self._changes = 0
        self._assessed_through = -1
        # A claim moves the lease timer without needing a re-assessment: `_timers` wakes the
        # wait to re-arm its timer only.
        self._timers = 0
        self._rescore_at: datetime | None = None
        self._timer: asyncio.Future[None] | None = None
        self._timer_due: datetime | None = None
        self._described: tuple[Any, ...] | None = None
        # the AI's contact in progress (a child workflow on the AI task queue), the stage it
        # was started for and the claim it holds
        self._ai_contact: workflow.ChildWorkflowHandle[Any, AiContactResult] | None = None
        self._ai_stage: Stage | None = None

    @workflow.signal
    def change(self, event: ChangeEvent) -> None:
        """A row change of the main app (or an opt-out): queued, applied by the run loop."""
        seen = self._state.seen_event_ids if self._state else []
        if event.event_id in seen or any(e.event_id == event.event_id for e in self._pending):
            return
        self._pending.append(event)
        self._changes += 1

    @workflow.query
    def assessment(self) -> Assessment | None:
        return self._assessment

    @workflow.query
    def state(self) -> OutreachState | None:
        return self._state

    # --- run loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: OutreachInput) -> OutreachResult:
        workflow.set_current_details("loading the claimant's facts")
        if self._state is None:
            facts = await self._run(OutreachActivities.load_facts, LoadFactsRequest(self._user_id))
            self._state = OutreachState(facts=facts)
            self._fresh = True  # a REFRESH that started this run needs no second load
        while True:
            async with self._lock:
                iteration = self._changes
                await self._apply_pending()
                now = workflow.now()
                await self._expire_lease(now)
                assessment = self._assessment = await self._refresh_task(now)
                if assessment.rescreen_at is not None and assessment.rescreen_at <= now:
                    # The TPS screening this call relies on is out of date: reloading the
                    # facts screens the number again (once per pass: a failed re-screen
                    # leaves the task withdrawn until the next change or timer).
                    await self._reload_facts()
                    assessment = self._assessment = await self._refresh_task(now)
                assessment = await self._steer_ai(assessment, now)
            self._assessed_through = iteration
            self._describe(assessment)

            if self._finished(assessment, now):
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._changes == iteration:
                    return OutreachResult(self._user_id, Stage.DONE, assessment.not_before_reason)
                continue
            if workflow.info().is_continue_as_new_suggested() and self._ai_contact is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._state.pending_events = list(self._pending)
                workflow.continue_as_new(OutreachInput(self._user_id, carried=self._state))
            await self._wait_for_change(iteration)

    async def _wait_for_change(self, seen: int) -> None:
        """Until a signal or update changes something, or a timer (lease, callback, re-score)
        is due. One timer is kept across changes until its deadline moves: most changes move
        none, and each timer restarted is two more history events and work on the server."""
        while True:
            now = workflow.now()
            due = now + self._next_timer(now)
            if self._timer is None or self._timer_due != due:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = asyncio.ensure_future(asyncio.sleep((due - now).total_seconds()))
                self._timer_due = due
            timer, armed = self._timer, self._timers
            await workflow.wait_condition(partial(self._woken, seen, armed, timer))
            if timer.done():
                self._timer = None
                return
            if self._changes != seen:
                return

    def _woken(self, seen: int, armed: int, timer: asyncio.Future[None]) -> bool:
        return self._changes != seen or self._timers != armed or timer.done()

    def _finished(self, assessment: Assessment, now: datetime) -> bool:
        """Nothing left to chase. A paused claimant's run goes on even then: the pause is
        the run's own state, and a later change must find it in force until a supervisor
        resumes (a fresh run would start unpaused)."""
        assert self._state is not None
        return (
            assessment.stage is Stage.DONE
            and self._state.claim is None
            and not has_future_callback(self._state.facts, now)
            and self._state.facts.paused is None
        )

    def _next_timer(self, now: datetime) -> timedelta:
        """The earliest of the lease's end, a future callback, the TPS re-screen and the
        re-score (due every RESCORE_EVERY from the run's start, not from the last change)."""
        assert self._state is not None
        if self._rescore_at is None or self._rescore_at <= now:
            self._rescore_at = now + RESCORE_EVERY
        deadlines = [self._rescore_at]
        if self._state.claim is not None:
            deadlines.append(self._state.claim.lease_expires_at)
        callback_at = self._state.facts.callback_at
        if callback_at is not None and callback_at > now:
            deadlines.append(callback_at)
        ai_due = self._ai_due(now)
        if ai_due is not None:
            deadlines.append(ai_due)
        rescreen_at = self._assessment.rescreen_at if self._assessment else None
        if rescreen_at is not None and rescreen_at > now:
            deadlines.append(rescreen_at)
        return max(min(deadlines) - now, timedelta(seconds=1))

    async def _apply_pending(self) -> None:
        """Apply the queued events. A REFRESH, or an opt-out (recorded first), reloads the
        facts: the dialler DB holds the opt-out state (the latest event per channel) and the
        wrong number, so a reload reflects an SMS START that followed a STOP."""
        assert self._state is not None
        events, self._pending = self._pending, []
        for event in events:
            if event.kind is ChangeKind.OPTED_OUT:
                reason = event.reason or "opted_out"
                await self._run(
                    OutreachActivities.suppress, Suppress(self._user_id, reason, "change_event")
                )
        if any(e.kind is ChangeKind.REFRESH for e in events):
            self._published = None  # rewrite the task: the projection may have drifted
        opted_out = any(e.kind is ChangeKind.OPTED_OUT for e in events)
        if needs_reload(events) and (opted_out or not self._fresh):
            await self._reload_facts()
        for event in sorted(events, key=lambda e: e.occurred_at):
            apply_event(self._state.facts, event)
        seen = self._state.seen_event_ids + [e.event_id for e in events]
        self._state.seen_event_ids = seen[-SEEN_EVENTS_KEPT:]
        self._fresh = False

    async def _reload_facts(self) -> None:
        assert self._state is not None
        fresh = await self._run(OutreachActivities.load_facts, LoadFactsRequest(self._user_id))
        fresh.entity_versions = self._state.facts.entity_versions
        fresh.paused = self._state.facts.paused  # the workflow's own, not the databases'
        fresh.ai_handoff = self._state.facts.ai_handoff  # the workflow's own too
        fresh.ai_excluded = fresh.ai_excluded or self._state.facts.ai_excluded
        self._state.facts = fresh

    async def _expire_lease(self, now: datetime) -> None:
        assert self._state is not None
        claim = self._state.claim
        if claim is None or claim.lease_expires_at > now:
            return
        if self._ai_contact is not None:
            # the AI's contact ran past its lease: stop it; its result ends the claim
            self._ai_contact.cancel()
            return
        self._end_claim(claim)
        await self._audit(
            "lease_expired", str(claim.agent_id), {"claimed_at": claim.claimed_at.isoformat()}
        )

    def _held_by(self, agent_id: int) -> Claim:
        """The agent's claim. The validator checked it, but another handler may have run
        since: then the Update fails, not the workflow task."""
        claim = self._state.claim if self._state else None
        if claim is None or claim.agent_id != agent_id:
            refusal = rules.holder_refusal(claim, agent_id) or ""
            raise ApplicationError(refusal, type="NotClaimed", non_retryable=True)
        return claim

    def _end_claim(self, claim: Claim) -> None:
        """End this claim, and only this one: a newer claim (granted while the caller
        awaited) is another agent's call."""
        assert self._state is not None
        if self._state.claim is claim:
            self._state.claim = None

    async def _refresh_task(self, now: datetime) -> Assessment:
        """Assess, and keep exactly one task published for the current queue, or none."""
        assert self._state is not None
        claim = self._state.claim
        # Task versions grow across runs too: microseconds of workflow time, at least +1.
        version = max(self._state.task_version + 1, int(now.timestamp() * 1_000_000))
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
        if self._state.claim is not claim:
            # A claim was granted while the task was being written, and the write (which
            # did not know it) may have listed the task as ready: go round again to write it.
            self._changes += 1
        return refreshed.assessment

    def _describe(self, assessment: Assessment) -> None:
        """Search attributes when what they say moved; the details line every time. No
        personal data: ids, stage, score and reasons only."""
        assert self._state is not None
        claim, callback_at = self._state.claim, self._state.facts.callback_at
        queue = assessment.stage.queue
        agent = claim.agent_id if claim else None
        described = (assessment.stage, queue, assessment.score, agent, callback_at)
        if described != self._described:
            workflow.upsert_search_attributes(_search_attributes(assessment, agent, callback_at))
        self._described = described
        when = assessment.not_before.isoformat() if assessment.not_before else "never"
        workflow.set_current_details(
            f"**{assessment.stage.value}** · score {assessment.score:.1f} · "
            f"callable from {when} ({assessment.not_before_reason})"
            + (f" · claimed by agent {agent}" if claim else "")
        )

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

    # --- the AI's contacts (domain.ai_routing) -------------------------------------------------

    def _ai_due(self, now: datetime) -> datetime | None:
        """When an attempt routed to the AI becomes due (a timer wakes the loop then)."""
        assessment = self._assessment
        if self._ai_contact is not None or assessment is None or assessment.routing is None:
            return None
        if not assessment.routing.to_ai or assessment.not_before is None:
            return None
        return assessment.not_before if assessment.not_before > now else None

    async def _steer_ai(self, assessment: Assessment, now: datetime) -> Assessment:
        """Start the AI's contact when the attempt is the AI's and due; stop it when the
        claimant no longer needs it (signed, opted out, paused, now vulnerable...); apply
        its result when it ends. Returns the assessment in force afterwards."""
        assert self._state is not None
        contact = self._ai_contact
        if contact is not None:
            if contact.done():
                await self._settle_ai(contact, now)
                return await self._refresh_task(now)
            if self._ai_should_stop(assessment):
                contact.cancel()
            return assessment
        routing = assessment.routing
        if (
            routing is None
            or not routing.to_ai
            or routing.ai_agent_id is None
            or routing.channel is None
            or self._state.claim is not None
            or assessment.not_before is None
            or assessment.not_before > now
        ):
            return assessment
        return await self._start_ai(assessment, routing, now)

    async def _start_ai(
        self, assessment: Assessment, routing: Routing, now: datetime
    ) -> Assessment:
        assert self._state is not None and routing.ai_agent_id is not None
        assert routing.channel is not None and assessment.stage.queue is not None
        lease = AI_CALL_LEASE if routing.channel is AiChannel.VOICE else AI_SMS_LEASE
        claim = Claim(routing.ai_agent_id, now, now + lease, self._state.task_version)
        self._state.claim = claim
        attempt = max(self._state.task_version, 1)
        self._ai_contact = await workflow.start_child_workflow(
            AiContactWorkflow.run,
            AiContactInput(
                user_id=self._user_id,
                channel=routing.channel,
                queue=assessment.stage.queue.value,
                ai_agent_id=routing.ai_agent_id,
                claim_key=f"{workflow.info().workflow_id}@{now.isoformat()}",
                outreach_task_queue=workflow.info().task_queue,
            ),
            id=ai_contact_id(self._user_id, attempt),
            task_queue=routing.task_queue,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            static_summary=f"AI {routing.channel.value} contact ({assessment.stage.value})",
        )
        self._ai_contact.add_done_callback(self._wake)
        self._ai_stage = assessment.stage
        await self._audit(
            "ai_contact_started",
            str(routing.ai_agent_id),
            {"channel": routing.channel.value, "workflow_id": self._ai_contact.id},
        )
        self._timers += 1  # the lease's timer
        return await self._refresh_task(now)  # the task now says: claimed by the AI agent

    def _wake(self, _: Any) -> None:
        self._changes += 1

    def _ai_should_stop(self, assessment: Assessment) -> bool:
        """Signed, opted out, withdrawn, paused, or no longer the AI's to contact at all."""
        assert self._state is not None
        facts = self._state.facts
        return (
            assessment.stage is not self._ai_stage
            or assessment.not_before is None
            or facts.is_vulnerable
            or facts.ai_excluded is not None
        )

    async def _settle_ai(
        self, contact: workflow.ChildWorkflowHandle[Any, AiContactResult], now: datetime
    ) -> None:
        """The AI's contact ended: its outcome is recorded as a person's would be, a
        hand-off leaves the summary in the claimant's notes and routes the next attempt to
        a person, with the priority raised."""
        assert self._state is not None
        self._ai_contact = None
        claim = self._state.claim
        try:
            result: AiContactResult | None = contact.result()
        except (ChildWorkflowError, asyncio.CancelledError):
            result = None  # failed or cancelled before it could say: nothing to record
        if claim is not None and result is not None and result.disposition is not None:
            request = OutcomeRequest(
                agent_id=claim.agent_id,
                disposition=result.disposition,
                notes=result.summary[:2000],
                callback_at=result.callback_at,
                call_id=result.call_id,
                abandoned=result.abandoned,
            )
            try:
                await self._apply_outcome(claim, request, shared_callback=True)
            except ActivityError:
                # e.g. a callback the calling windows refuse: a person takes it from here
                result = replace(result, end=ContactEnd.HANDED_OFF, summary=result.summary)
        if claim is not None and result is not None and result.end is ContactEnd.HANDED_OFF:
            await self._hand_to_person(claim, result, now)
        if claim is not None:
            detail = {"end": result.end.value if result else "failed"}
            await self._audit("ai_contact_ended", str(claim.agent_id), detail)
            self._end_claim(claim)
        self._published = None  # write the task afresh: it is no longer the AI's

    async def _hand_to_person(self, claim: Claim, result: AiContactResult, now: datetime) -> None:
        assert self._state is not None
        reason = result.handoff_reason or HandoffReason.COULD_NOT_HELP
        summary = result.summary.strip() or "handed over by the AI"
        self._state.facts.ai_handoff = AiHandoff(summary[:500], reason, now, claim.agent_id)
        if reason is HandoffReason.SENSITIVE:
            self._state.facts.ai_excluded = AI_EXCLUDED
        await self._run(
            OutreachActivities.save_note,
            SaveNote(self._user_id, claim.agent_id, f"AI hand-off: {summary}"[:2000]),
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
            claim = self._state.claim = rules.new_claim(request, workflow.now())
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
        _refuse(rules.claim_refusal(self._state, self._assessment, request, workflow.now()))

    @workflow.update
    async def record_outcome(self, request: OutcomeRequest) -> OutcomeRecorded:
        assert self._state is not None
        claim = self._held_by(request.agent_id)  # this outcome ends this claim, no other
        async with self._lock:
            await self._apply_outcome(claim, request)
            self._state.facts.ai_handoff = None  # a person has taken the hand-off
            self._end_claim(claim)
        return await self._after_change()

    async def _apply_outcome(
        self, claim: Claim, request: OutcomeRequest, *, shared_callback: bool = False
    ) -> None:
        """Record an outcome of `claim` (a person's or the AI's) and apply its effects.
        `shared_callback`: a callback it books goes to the shared pool, not its agent."""
        assert self._state is not None
        now, facts = workflow.now(), self._state.facts
        queue = self._assessment.stage.queue if self._assessment else None
        key = f"{workflow.info().workflow_id}@{claim.claimed_at.isoformat()}"
        plan = rules.outcome_plan(self._user_id, facts, request, queue, now, key)
        callback = plan.callback
        if callback is not None and shared_callback:
            callback = replace(callback, owner_agent_id=None)
        if callback is not None:  # first: outside the calling windows it fails all
            await self._run(OutreachActivities.save_callback, callback)
        await self._run(OutreachActivities.record_outcome, plan.outcome)
        if plan.complete_callbacks is not None:
            await self._run(OutreachActivities.complete_callbacks, plan.complete_callbacks)
        if plan.suppress is not None:
            await self._run(OutreachActivities.suppress, plan.suppress)
        owner = None if shared_callback else request.agent_id
        apply_disposition(facts, plan.disposition, now, request.callback_at, owner)

    @record_outcome.validator
    def _validate_outcome(self, request: OutcomeRequest) -> None:
        claim = self._state.claim if self._state else None
        _refuse(rules.outcome_refusal(claim, request, workflow.now()))

    @workflow.update
    async def release(self, request: ReleaseRequest) -> Released:
        assert self._state is not None
        self._end_claim(self._held_by(request.agent_id))
        await self._audit("claim_released", str(request.agent_id), {"reason": request.reason})
        await self._after_change()
        return Released(self._user_id, self._state.task_version)

    @release.validator
    def _validate_release(self, request: ReleaseRequest) -> None:
        claim = self._state.claim if self._state else None
        _refuse(rules.holder_refusal(claim, request.agent_id))

    @workflow.update
    async def schedule_callback(self, request: CallbackRequest) -> CallbackScheduled:
        assert self._state is not None
        callback = SaveCallback(
            self._user_id, request.at, request.notes, request.agent_id, request.owner_agent_id
        )
        async with self._lock:
            await self._run(OutreachActivities.save_callback, callback)
            self._state.facts.callback_at = request.at
            self._state.facts.callback_owner_agent_id = request.owner_agent_id
        await self._after_change()
        return CallbackScheduled(self._user_id, request.at)

    @schedule_callback.validator
    def _validate_callback(self, request: CallbackRequest) -> None:
        _refuse(rules.callback_refusal(self._state, request, workflow.now()))

    @workflow.update
    async def send_magic_link(self, request: MagicLinkRequest) -> MagicLinkCreated:
        """One click by the agent: a single-use link by SMS or email. Only ids pass through
        here; the activity reads the number or address from the replica."""
        return await workflow.execute_activity_method(
            MessagingActivities.create_magic_link,
            CreateMagicLink(
                self._user_id,
                request.channel,
                request.purpose,
                request.agent_id,
                source_kind=request.source_kind,
                source_ref=request.source_ref,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            # a retry after the provider accepted the message would send it twice
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

    @send_magic_link.validator
    def _validate_magic_link(self, request: MagicLinkRequest) -> None:
        _refuse(rules.stopped_refusal(self._state))

    @workflow.update
    async def add_note(self, request: NoteRequest) -> NoteAdded:
        return await self._run(
            OutreachActivities.save_note, SaveNote(self._user_id, request.agent_id, request.text)
        )

    @add_note.validator
    def _validate_note(self, request: NoteRequest) -> None:
        _refuse(rules.note_refusal(request))

    # --- supervisor actions --------------------------------------------------------------------

    @workflow.update
    async def pause(self, request: PauseRequest) -> OutcomeRecorded:
        """Hold outreach: the task is withdrawn ("paused by a supervisor: <reason>") and no
        claim is granted until a supervisor resumes. A claim held now runs to its outcome."""
        assert self._state is not None
        async with self._lock:
            _refuse_now(rules.pause_refusal(self._state, request))
            reason = request.reason.strip()
            self._state.facts.paused = OutreachPause(request.supervisor_id, reason, workflow.now())
            await self._audit("outreach_paused", str(request.supervisor_id), {"reason": reason})
        return await self._after_change()

    @pause.validator
    def _validate_pause(self, request: PauseRequest) -> None:
        _refuse(rules.pause_refusal(self._state, request))

    @workflow.update
    async def resume(self, request: ResumeRequest) -> OutcomeRecorded:
        """Lift the pause; the claimant is assessed again at once."""
        assert self._state is not None
        async with self._lock:
            _refuse_now(rules.resume_refusal(self._state, request))
            self._state.facts.paused = None
            self._published = None  # write the task afresh, whatever the last write said
            reason = request.reason.strip()
            await self._audit("outreach_resumed", str(request.supervisor_id), {"reason": reason})
        return await self._after_change()

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        _refuse(rules.resume_refusal(self._state, request))

    @workflow.update
    async def supervisor_release(self, request: SupervisorReleaseRequest) -> ClaimTakenBack:
        """A supervisor takes a stuck claim back from whoever holds it; with no claim held
        (the task row was left claimed), the task is written afresh."""
        assert self._state is not None
        async with self._lock:
            claim = self._state.claim
            _refuse_now(rules.supervisor_release_refusal(claim, request))
            detail = {"reason": request.reason.strip()}
            if claim is not None:
                self._end_claim(claim)
                if self._ai_contact is not None:  # the AI's: its contact stops too
                    self._ai_contact.cancel()
                detail["agent_id"] = str(claim.agent_id)
                detail["claimed_at"] = claim.claimed_at.isoformat()
            else:
                self._published = None
                detail["stuck_row_of_agent"] = str(request.seen_agent_id)
            await self._audit("claim_released_by_supervisor", str(request.supervisor_id), detail)
        await self._after_change()
        return ClaimTakenBack(
            self._user_id, claim.agent_id if claim else None, self._state.task_version
        )

    @supervisor_release.validator
    def _validate_supervisor_release(self, request: SupervisorReleaseRequest) -> None:
        claim = self._state.claim if self._state else None
        _refuse(rules.supervisor_release_refusal(claim, request))

    @workflow.update
    async def reassign_callback(self, request: CallbackReassignment) -> CallbackReassigned:
        """The pending callback to another agent or to the shared pool, at the same time:
        the callback is booked again (the old row is cancelled) with its notes."""
        assert self._state is not None
        async with self._lock:
            _refuse_now(rules.callback_reassignment_refusal(self._state, request))
            facts = self._state.facts
            at = facts.callback_at
            assert at is not None
            callback = SaveCallback(
                self._user_id, at, request.notes, request.supervisor_id, request.owner_agent_id
            )
            await self._run(OutreachActivities.save_callback, callback)
            previous = facts.callback_owner_agent_id
            facts.callback_owner_agent_id = request.owner_agent_id
            await self._audit(
                "callback_reassigned",
                str(request.supervisor_id),
                {
                    "from_agent_id": str(previous) if previous is not None else "shared",
                    "to_agent_id": str(request.owner_agent_id)
                    if request.owner_agent_id is not None
                    else "shared",
                },
            )
        await self._after_change()
        return CallbackReassigned(self._user_id, at, request.owner_agent_id)

    @reassign_callback.validator
    def _validate_reassign_callback(self, request: CallbackReassignment) -> None:
        _refuse(rules.callback_reassignment_refusal(self._state, request))
