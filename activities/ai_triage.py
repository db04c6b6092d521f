"""Activities of the inbound-SMS triage (`workflows.sms_triage`): classify the message with the
model, book a callback, answer a documents question, leave the message for a person.

Built with their adapters (dialler and replica engines, the chat model, the SMS sender, a
Temporal client for the outreach door, the settings; no module-level clients). The message's
text and the claimant's details are read here, never carried in the workflow's history. Each
triage is recorded as an `ai_conversations` row (channel "triage") with its steps: the
claimant's message, each model call with its latency and tokens, each action; retried
activities find the row and the once-only steps they made (`adapters.ai_conversations`).

The model is asked only when the fixed rules and the claimant's state allow it: never for a
STOP-style keyword, nor for a claimant who opted out, is vulnerable, deceased, or told the
AI something sensitive before. Its failures (an outage, a refusal) are not retried here: the
message goes to a person. Logs carry ids, never what was said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.outreach import OutreachActivities
from adapters import agent_store, ai_conversations, call_log, sms_outbox
from adapters.ai_model import ChatModel, ModelRejected, ModelUnavailable
from adapters.messaging import DeliveryRejected, SmsSender, sms_sender
from adapters.replica_reader import ReplicaReader
from adapters.rules_file import rules_source
from adapters.rules_source import RulesSource, as_source
from adapters.sms_outbox import OptedOut, SmsOutbox
from config.settings import Settings
from domain import sms_triage as triage
from domain.rules import DiallerRules
from domain.stages import pending_requirements
from schemas.ai import (
    ContactEnd,
    ContextAnswer,
    HandoffReason,
    StepKind,
    TriageDecision,
    TriageIntent,
)
from schemas.enums import UserStatus
from schemas.outreach import CallbackRequest, ClaimantFacts, LoadFactsRequest, NoteRequest
from schemas.sms_triage import (
    AnswerDocumentsQuestion,
    BookTriageCallback,
    ClassifyAttempt,
    LeaveForPerson,
    TriageActionDone,
    TriageClassified,
)
from workflows.outreach_client import (
    OutreachClient,
    OutreachNotRunning,
    OutreachRefused,
    OutreachUnavailable,
)

log = get_logger(__name__)

CHANNEL = "triage"  # ai_conversations.channel of a triage
MODEL_STEP = "model"  # ai_steps.kind of a model call
CALLBACK_NOTE = "Callback asked for by SMS (AI triage)."
MODEL_FAILED_REASONS = ("the model could not answer", "the model declined to classify it")


@dataclass(frozen=True)
class Usage:
    """A model call's cost, recorded with its step."""

    latency_ms: int
    prompt_tokens: int
    completion_tokens: int


class AiTriageActivities:
    def __init__(
        self,
        settings: Settings,
        dialler: AsyncEngine,
        replica: AsyncEngine,
        model: ChatModel | None,
        sms: SmsSender,
        client: Client,
        rules: RulesSource | DiallerRules,
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica)
        self._model = model
        self._outbox = SmsOutbox(dialler, sms)
        self._outreach = OutreachClient.over(client, settings.temporal_task_queue)
        self._rules = as_source(rules)
        self._ai_email = settings.ai_agent_email
        # the claimant's facts are read exactly as the outreach workflow reads them
        self._facts = OutreachActivities(dialler, replica, self._rules)

    # --- classify ----------------------------------------------------------------------

    @activity.defn(name="ai_triage_classify")
    async def classify(self, attempt: ClassifyAttempt) -> TriageClassified:
        request = attempt.message
        async with self._dialler.connect() as conn:
            message = await sms_outbox.inbound_by_id(conn, request.message_id)
        if message is None or message.user_id != request.user_id:
            raise ApplicationError(
                "no inbound message of this claimant with that id",
                type="InvalidRequest",
                non_retryable=True,
            )
        conversation_id = attempt.conversation_id
        if conversation_id is None:
            conversation_id = await self._open(request.user_id, message.body)
        why_not = triage.needs_no_model(message.body)
        if why_not is None:
            why_not = _people_only(await self._claimant(request.user_id))
        if why_not is None and self._model is None:
            why_not = "no AI model is configured"
        if why_not is not None or self._model is None:
            return TriageClassified(conversation_id, for_person=why_not)
        rules = await self._rules.current()
        zone = rules.calling_windows.zone
        messages = triage.classification_messages(
            message.body, datetime.now(UTC), zone, attempt.correction
        )
        try:
            completion = await self._model.complete(messages, json_object=True)
        except (ModelUnavailable, ModelRejected) as error:
            log.warning(
                "triage model call failed",
                conversation_id=conversation_id,
                error=type(error).__name__,
            )
            await self._step(conversation_id, MODEL_STEP, None, {"failed": str(error)[:200]})
            return TriageClassified(conversation_id, for_person=MODEL_FAILED_REASONS[0])
        usage = Usage(completion.latency_ms, completion.prompt_tokens, completion.completion_tokens)
        if completion.refusal:
            await self._step(
                conversation_id, MODEL_STEP, completion.refusal, {"refused": True}, usage
            )
            return TriageClassified(conversation_id, for_person=MODEL_FAILED_REASONS[1])
        parsed = triage.parse_classification(completion.content, zone)
        detail = {
            "intent": parsed.intent.value if parsed.intent else None,
            "callback_at": parsed.callback_at.isoformat() if parsed.callback_at else None,
            "malformed": parsed.malformed,
            "correction": attempt.correction,
        }
        await self._step(conversation_id, MODEL_STEP, completion.content, detail, usage)
        decision = TriageDecision(
            intent=parsed.intent or TriageIntent.OTHER,
            callback_at=parsed.callback_at,
            latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        return TriageClassified(conversation_id, decision, malformed=parsed.malformed)

    # --- the actions ---------------------------------------------------------------------

    @activity.defn(name="ai_triage_book_callback")
    async def book_callback(self, request: BookTriageCallback) -> TriageActionDone:
        """Booked through the claimant's outreach workflow, as an agent's booking is (the
        shared callback pool), inside the calling windows; then confirmed by SMS."""
        rules = await self._rules.current()
        windows = rules.calling_windows
        refusal = triage.callback_refusal(request.at, datetime.now(UTC), windows)
        agent_id = await self._ai_agent_id()
        if refusal is None and agent_id is None:
            refusal = "no AI agent is on record"
        if refusal is not None or agent_id is None:
            await self._tool(request.conversation_id, "book_callback", request.at, refusal)
            return TriageActionDone(False, refusal or "")
        try:
            await self._outreach.schedule_callback(
                request.user_id, CallbackRequest(agent_id, request.at, CALLBACK_NOTE)
            )
        except OutreachUnavailable:
            raise  # Temporal away: the activity is retried
        except OutreachRefused as error:
            detail = f"the outreach workflow refused it: {error}"[:300]
            await self._tool(request.conversation_id, "book_callback", request.at, detail)
            return TriageActionDone(False, detail)
        await self._tool(request.conversation_id, "book_callback", request.at, None)
        details = await self._replica.contact_details(request.user_id)
        first_name = details.first_name if details is not None else None
        text = triage.callback_confirmation(first_name, request.at, windows.zone)
        await self._send_once(request.conversation_id, request.user_id, agent_id, text)
        summary = f"Callback booked for {request.at.isoformat()} from an SMS."
        await self._close(request.conversation_id, ContactEnd.FINISHED, summary, None)
        return TriageActionDone(True, "callback booked")

    @activity.defn(name="ai_triage_answer")
    async def answer(self, request: AnswerDocumentsQuestion) -> TriageActionDone:
        """The claimant's own claims (lenders, missing documents, signed or not), by SMS from
        the AI agent."""
        facts = await self._claimant(request.user_id)
        details = await self._replica.contact_details(request.user_id)
        first_name = details.first_name if details is not None else None
        context = ContextAnswer(
            lenders=[claim.lender for claim in facts.claims],
            missing_documents=pending_requirements(facts),
            signed=facts.signed,
        )
        text = triage.documents_answer(first_name, context)
        if text is None:
            why = "no claim to answer about"
            await self._step(request.conversation_id, StepKind.TOOL.value, why, {"done": False})
            return TriageActionDone(False, why)
        agent_id = await self._ai_agent_id()
        why_not = await self._send_once(request.conversation_id, request.user_id, agent_id, text)
        if why_not is not None:
            return TriageActionDone(False, why_not)
        summary = "Answered a question about documents by SMS."
        await self._close(request.conversation_id, ContactEnd.FINISHED, summary, None)
        return TriageActionDone(True, "answered")

    @activity.defn(name="ai_triage_leave_for_person")
    async def leave_for_person(self, request: LeaveForPerson) -> TriageActionDone:
        """The message stays unread in the SMS inbox; the claimant's notes say a person is
        needed (through the outreach workflow, as an agent's note is; written directly when
        no run is going), once however often this is retried."""
        note = triage.person_note(request.reason)
        agent_id = await self._ai_agent_id()
        async with self._dialler.begin() as conn:
            noted = await ai_conversations.step_with_key(conn, request.conversation_id, "note")
        if noted is None and agent_id is not None:
            await self._note(request.user_id, agent_id, note)
            await self._step_once(request.conversation_id, "note", note, {"intent": request.intent})
        elif agent_id is None:
            log.warning("triage note not written: no AI agent on record", user_id=request.user_id)
        reason = (
            HandoffReason.MODEL_FAILED
            if request.reason in MODEL_FAILED_REASONS or request.reason.startswith("the model")
            else HandoffReason.COULD_NOT_HELP
        )
        await self._close(request.conversation_id, ContactEnd.HANDED_OFF, note, reason)
        return TriageActionDone(True, "left for a person")

    # --- helpers -------------------------------------------------------------------------

    async def _claimant(self, user_id: int) -> ClaimantFacts:
        return await self._facts.load_facts(LoadFactsRequest(user_id))

    async def _ai_agent_id(self) -> int | None:
        """The AI agent the triage works as (`settings.ai_agent_email`, kind AI, active)."""
        async with self._dialler.connect() as conn:
            agent = await agent_store.staff_by_email(conn, self._ai_email)
        if agent is None or not agent.is_ai or not agent.is_active:
            return None
        return agent.id

    async def _open(self, user_id: int, body: str) -> int:
        agent_id = await self._ai_agent_id()
        workflow_id = activity.info().workflow_id or f"sms-triage-user-{user_id}"
        async with self._dialler.begin() as conn:
            conversation_id = await ai_conversations.open_conversation(
                conn,
                user_id=user_id,
                agent_id=agent_id,
                channel=CHANNEL,
                queue=None,
                workflow_id=workflow_id,
            )
            await ai_conversations.add_step_once(
                conn, conversation_id, "message", StepKind.CLAIMANT.value, body
            )
        return conversation_id

    async def _step(
        self,
        conversation_id: int,
        kind: str,
        text: str | None,
        detail: dict[str, Any],
        usage: Usage | None = None,
        tool_name: str | None = None,
    ) -> None:
        async with self._dialler.begin() as conn:
            await ai_conversations.add_step(
                conn,
                conversation_id,
                kind,
                text,
                tool_name=tool_name,
                detail=detail,
                latency_ms=usage.latency_ms if usage else None,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
            )

    async def _step_once(
        self, conversation_id: int, key: str, text: str | None, detail: dict[str, Any]
    ) -> None:
        async with self._dialler.begin() as conn:
            await ai_conversations.add_step_once(
                conn, conversation_id, key, StepKind.TOOL.value, text, tool_name=key, detail=detail
            )

    async def _tool(
        self, conversation_id: int, name: str, at: datetime, refusal: str | None
    ) -> None:
        detail = {"at": at.isoformat(), "refused": refusal is not None}
        await self._step(conversation_id, StepKind.TOOL.value, refusal, detail, tool_name=name)

    async def _send_once(
        self, conversation_id: int, user_id: int, agent_id: int | None, text: str
    ) -> str | None:
        """Text the claimant as the AI agent, once per triage (a retry after the step was
        recorded sends nothing); why not, or None when sent."""
        async with self._dialler.connect() as conn:
            sent = await ai_conversations.step_with_key(conn, conversation_id, "sms")
        if sent is not None:
            return None
        number = await self._replica.phone_number(user_id)
        if number is None:
            return "the claimant has no number"
        try:
            await self._outbox.send(user_id=user_id, to_number=number, body=text, agent_id=agent_id)
        except OptedOut:
            return "the claimant has opted out of texts"
        except DeliveryRejected:
            return "the SMS provider refused the message"
        async with self._dialler.begin() as conn:
            await ai_conversations.add_step_once(
                conn, conversation_id, "sms", StepKind.ASSISTANT.value, text
            )
        return None

    async def _note(self, user_id: int, agent_id: int, text: str) -> None:
        try:
            await self._outreach.add_note(user_id, NoteRequest(agent_id, text))
        except OutreachNotRunning:
            async with self._dialler.begin() as conn:
                await call_log.add_note(conn, user_id, agent_id, text)

    async def _close(
        self,
        conversation_id: int,
        end: ContactEnd,
        summary: str,
        reason: HandoffReason | None,
    ) -> None:
        async with self._dialler.begin() as conn:
            await ai_conversations.close_conversation(
                conn,
                conversation_id,
                status=end.value,
                disposition=None,
                handoff_reason=None if reason is None else reason.value,
                summary=summary,
                turns=1,
            )


def _people_only(facts: ClaimantFacts) -> str | None:
    """Why only a person may read this claimant's message (the model is not asked)."""
    if facts.opted_out:
        return "the claimant has opted out"
    if facts.deceased or facts.status == UserStatus.INACTIVE:
        return "the claimant's account is not active"
    if facts.is_vulnerable:
        return "a vulnerable claimant: people only"
    if facts.ai_excluded:
        return "people only: " + facts.ai_excluded
    return None


def triage_activities(
    settings: Settings,
    dialler: AsyncEngine,
    replica: AsyncEngine,
    model: ChatModel | None,
    client: Client,
    rules: RulesSource | DiallerRules | None = None,
) -> list[Callable[..., Any]]:
    """The triage's activities for the AI worker (which also registers `SmsTriageWorkflow`).
    `rules`: the rules in force (by default the newest saved version, else RULES_FILE)."""
    source = rules if rules is not None else rules_source(dialler, settings.rules_file)
    triage_acts = AiTriageActivities(
        settings, dialler, replica, model, sms_sender(settings), client, source
    )
    return [
        triage_acts.classify,
        triage_acts.book_callback,
        triage_acts.answer,
        triage_acts.leave_for_person,
    ]
