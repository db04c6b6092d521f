"""SmsTriageWorkflow: what the AI does with one inbound SMS from a known claimant that is not
part of an AI SMS conversation (started by the SMS webhook through
`workflows.ai_contact_client`, once per message: `sms-triage-<message_id>`).

The model classifies the message (one activity per model call, so each is an event in the
history); output that fails its schema is asked for once more, then a person reads it. A
callback request with a time is booked through the claimant's outreach workflow (inside the
calling windows); a question about documents is answered by SMS from the claimant's own claim
context; anything else, and anything that could not be done, is left for a person: the
message stays unread in the inbox and the claimant's notes say so. STOP-style keywords never
get here (the fixed rules handle them), and the classify activity refuses them again.

Deterministic: the time, the model and the databases are the activities'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ai_triage import AiTriageActivities
    from domain import sms_triage as triage
    from schemas.ai import ClassifyMessage, TriageInput, TriageIntent, TriageResult
    from schemas.sms_triage import (
        AnswerDocumentsQuestion,
        BookTriageCallback,
        ClassifyAttempt,
        LeaveForPerson,
        TriageActionDone,
        TriageClassified,
    )

Request = TypeVar("Request")

# A model call (its own timeout is OPENAI_TIMEOUT_SECONDS, at most 120 s) plus the database.
CLASSIFY_TIMEOUT = timedelta(minutes=3)
ACTION_TIMEOUT = timedelta(minutes=1)
# Database and Temporal blips are retried; the model's own failures are not (the activity
# reports them and a person reads the message).
CLASSIFY_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))
# These send an SMS: a retry after the provider took it would send it twice.
SENDING_RETRY = RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=2))
NOTE_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2))


@workflow.defn(name="SmsTriage")
class SmsTriageWorkflow:
    @workflow.run
    async def run(self, input: TriageInput) -> TriageResult:
        message = ClassifyMessage(input.message_id, input.user_id)
        classified = await self._classify(ClassifyAttempt(message))
        attempt = 1
        while triage.retry_after(attempt, classified.malformed):
            attempt += 1
            classified = await self._classify(
                ClassifyAttempt(message, classified.conversation_id, classified.malformed)
            )
        intent = classified.decision.intent
        workflow.set_current_details(f"Intent: {intent.value}")
        if classified.for_person is not None:
            return await self._leave(input, classified, intent, classified.for_person)
        if classified.malformed is not None:
            reason = "the model's answer could not be read, twice"
            return await self._leave(input, classified, intent, reason)
        plan = triage.plan_for(classified.decision)
        done: TriageActionDone | None = None
        if plan.action is triage.TriageAction.BOOK_CALLBACK and plan.callback_at is not None:
            book = BookTriageCallback(
                classified.conversation_id, input.message_id, input.user_id, plan.callback_at
            )
            done = await self._act(AiTriageActivities.book_callback, book)
        elif plan.action is triage.TriageAction.ANSWER:
            answer = AnswerDocumentsQuestion(
                classified.conversation_id, input.message_id, input.user_id
            )
            done = await self._act(AiTriageActivities.answer, answer)
        if done is not None and done.done:
            action = triage.DONE_LABELS[plan.action]
            workflow.set_current_details(f"Intent: {intent.value}; {action}")
            return TriageResult(input.message_id, intent, action)
        reason = done.detail if done is not None else plan.reason
        return await self._leave(input, classified, intent, reason)

    async def _classify(self, attempt: ClassifyAttempt) -> TriageClassified:
        return await workflow.execute_activity_method(
            AiTriageActivities.classify,
            attempt,
            start_to_close_timeout=CLASSIFY_TIMEOUT,
            retry_policy=CLASSIFY_RETRY,
        )

    async def _act(
        self,
        activity: Callable[[AiTriageActivities, Request], Awaitable[TriageActionDone]],
        request: Request,
    ) -> TriageActionDone:
        """Book or answer; an action that failed outright (its retries spent) is a person's."""
        try:
            return await workflow.execute_activity_method(
                activity,
                request,
                start_to_close_timeout=ACTION_TIMEOUT,
                retry_policy=SENDING_RETRY,
            )
        except ActivityError:
            return TriageActionDone(False, "the AI could not finish it")

    async def _leave(
        self,
        input: TriageInput,
        classified: TriageClassified,
        intent: TriageIntent,
        reason: str,
    ) -> TriageResult:
        await workflow.execute_activity_method(
            AiTriageActivities.leave_for_person,
            LeaveForPerson(
                classified.conversation_id, input.message_id, input.user_id, intent, reason
            ),
            start_to_close_timeout=ACTION_TIMEOUT,
            retry_policy=NOTE_RETRY,
        )
        action = triage.DONE_LABELS[triage.TriageAction.PERSON]
        workflow.set_current_details(f"Intent: {intent.value}; {action}")
        return TriageResult(input.message_id, intent, action)
