"""Activities of the AI contact (`workflows.ai_contact`): the only I/O an AI call or SMS
conversation does, each its own event in the workflow's history (named `ai_<method>`, so the
steps read clearly in the Temporal UI).

Built once per AI worker with its adapters (`from_settings`): the dialler and replica
engines, the model (`adapters.ai_model`), the SMS sender every outbound text goes through
(`adapters.sms_outbox`, so the AI's texts are in the threads agents read), and the telephone
(`adapters.ai_telephony`). Every method takes one dataclass from `schemas.ai` and returns one.

What the workflow's history holds is the conversation itself (a supervisor reads it there);
the claimant's name, number and claims are read here, from the databases, and only the
model sees the brief of this one claimant. Every model call is recorded in `ai_steps` with
its latency and token counts, and logged with those figures only: never a word of what was
said.

Retried activities do not repeat themselves: a conversation is opened once per workflow, a
call is dialled once per conversation, an SMS is sent once per idempotency key, and each
line of the conversation is recorded once (keyed by its place in the conversation).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters import ai_conversations, call_log, consents
from adapters.ai_model import ChatModel, ModelCompletion, ModelRejected, ModelUnavailable
from adapters.ai_telephony import CallFailed, CallPlacer, CallRejected, call_placer, call_urls
from adapters.messaging import DeliveryRejected, SmsSender, sms_sender
from adapters.replica_reader import ClaimantRows, ReplicaReader
from adapters.rules_source import RulesSource, as_source
from adapters.sms_outbox import OptedOut, SmsOutbox
from adapters.suppressions import suppression_status
from config.settings import Settings
from domain import ai_conversation as talk
from domain.calling_windows import is_open
from domain.phones import to_e164
from domain.rules import DiallerRules
from schemas.ai import (
    AiCallEnded,
    AiCallPlaced,
    AiChannel,
    AiSmsSent,
    CloseConversation,
    ContactEnd,
    ContextAnswer,
    ContextQuestion,
    ConversationClosed,
    ConversationOpened,
    ConversationStep,
    EndAiCall,
    HandoffReason,
    ModelReply,
    ModelTurn,
    OpenConversation,
    PlaceAiCall,
    SendAiSms,
    StepKind,
    ToolCall,
    ToolStep,
    ToolStepRecorded,
)
from schemas.enums import ConsentChannel, RequirementStatus

log = get_logger(__name__)

T = TypeVar("T")

HEARTBEAT_SECONDS = 2.0
BRIEFS_KEPT = 1_000  # conversations whose brief this worker keeps in memory
MAX_REPLY_CHARS = 1_000  # longer is not a reply a claimant should hear or read
MAX_TOOL_CALLS = 4  # in one reply
MAX_SMS_CHARS = 1_600  # Twilio's limit for one message body
STEP_KEY = "step:{}"  # a line of the conversation, by its place in it
SEND_SMS_TOOL = "send_sms"  # the step a sent text leaves (its idempotency key)
NO_NUMBER = "no usable phone number"
OPTED_OUT = "the claimant has opted out"
NO_AUTOMATED_CONSENT = "no automated-call consent (PECR 19)"
NO_SMS_CONSENT = "no SMS consent (PECR 22)"
WINDOW_CLOSED = "the calling window is closed"


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _heartbeating(awaitable: Awaitable[T]) -> T:
    """Await while heartbeating, so a cancellation (the claimant signed mid-call) reaches
    the activity while it waits on the model."""
    if not activity.in_activity():
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidRequest", non_retryable=True)


def brief_of(rows: ClaimantRows, queue: str) -> talk.ClaimantBrief:
    """What the model may know: this claimant's first name and claims, nothing else."""
    if rows.user is None:
        return talk.ClaimantBrief("", [], [], False, queue)
    answer = context_of(rows)
    return talk.ClaimantBrief(
        first_name=str(rows.user.first_name or ""),
        lenders=answer.lenders,
        missing_documents=answer.missing_documents,
        signed=answer.signed,
        queue=queue,
    )


def context_of(rows: ClaimantRows) -> ContextAnswer:
    lenders: list[str] = []
    missing: list[str] = []
    for row in rows.claims:
        if row.lender and row.lender not in lenders:
            lenders.append(str(row.lender))
        if row.requirement_type and row.requirement_status == RequirementStatus.PENDING:
            label = talk.document_label(str(row.requirement_type))
            if label and label not in missing:
                missing.append(label)
    signed = rows.user is not None and rows.user.current_signature_file_id is not None
    return ContextAnswer(lenders=lenders, missing_documents=missing, signed=signed)


def reply_of(completion: ModelCompletion) -> ModelReply:
    """The model's answer as the workflow uses it: each tool call checked against its
    schema (the first that fails makes the whole reply malformed), a refusal flagged."""
    figures: dict[str, Any] = {
        "latency_ms": completion.latency_ms,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
    }
    if completion.refusal:
        return ModelReply(say="", refused=True, **figures)
    say = (completion.content or "").replace("\x00", "").strip()
    problem: str | None = None
    calls: list[ToolCall] = []
    if len(completion.tool_calls) > MAX_TOOL_CALLS:
        problem = f"{len(completion.tool_calls)} tool calls at once (at most {MAX_TOOL_CALLS})"
    for raw in completion.tool_calls if problem is None else []:
        parsed = talk.parse_tool_call(raw.name, raw.arguments)
        if isinstance(parsed, talk.ToolProblem):
            problem = parsed.reason
            break
        calls.append(
            ToolCall(call_id=raw.call_id[:64], name=parsed.name, arguments=parsed.arguments)
        )
    if problem is None and len(say) > MAX_REPLY_CHARS:
        problem = f"the reply is longer than {MAX_REPLY_CHARS} characters"
    if problem is None and not say and not calls:
        problem = "the reply was empty"
    if problem is not None:
        return ModelReply(say="", malformed=problem, **figures)
    return ModelReply(say=say, tool_calls=calls, **figures)


def _tool_calls_detail(calls: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    return [
        {"id": c.get("id", ""), "name": c.get("name", ""), "arguments": c.get("arguments", "")}
        for c in calls
    ]


class AiAgentActivities:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica: AsyncEngine,
        model: ChatModel,
        sms: SmsSender,
        calls: CallPlacer,
        settings: Settings,
        rules: RulesSource | DiallerRules,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica)
        self._model = model
        self._sms = sms
        self._outbox = SmsOutbox(dialler, sms)
        self._calls = calls
        self._settings = settings
        self._rules = as_source(rules)
        self._clock = clock
        # the brief is read once per conversation (by this worker): a second turn of a call
        # must not wait on the replica
        self._briefs: OrderedDict[int, talk.ClaimantBrief] = OrderedDict()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        dialler: AsyncEngine,
        replica: AsyncEngine,
        model: ChatModel,
        rules: RulesSource | DiallerRules,
    ) -> AiAgentActivities:
        """With the providers the settings name: Twilio, or the simulated ones."""
        return cls(
            dialler, replica, model, sms_sender(settings), call_placer(settings), settings, rules
        )

    # --- the conversation ------------------------------------------------------------------

    @activity.defn(name="ai_open_conversation")
    async def open_conversation(self, request: OpenConversation) -> ConversationOpened:
        async with self._dialler.begin() as conn:
            conversation_id = await ai_conversations.open_conversation(
                conn,
                user_id=request.user_id,
                agent_id=request.ai_agent_id,
                channel=AiChannel(request.channel).value,
                queue=request.queue,
                workflow_id=request.workflow_id,
            )
        log.info(
            "AI conversation opened",
            conversation_id=conversation_id,
            channel=str(request.channel),
            queue=request.queue,
        )
        return ConversationOpened(conversation_id)

    @activity.defn(name="ai_close_conversation")
    async def close_conversation(self, request: CloseConversation) -> ConversationClosed:
        """Close the row with its ending; what was said and not yet recorded is recorded
        (the last words of a conversation that ended without another model call). A call
        keeps its transcript and the conversation's outcome too."""
        async with self._dialler.begin() as conn:
            await self._record_said(conn, request.conversation_id, request.transcript)
            await ai_conversations.close_conversation(
                conn,
                request.conversation_id,
                status=ContactEnd(request.end).value,
                disposition=request.disposition,
                handoff_reason=None
                if request.handoff_reason is None
                else HandoffReason(request.handoff_reason).value,
                summary=request.summary,
                turns=request.turns,
            )
            if request.call_id is not None:
                await call_log.finish_ai_call(
                    conn,
                    request.call_id,
                    transcript=talk.transcript_text(request.transcript) or None,
                    disposition=request.disposition,
                    abandoned=request.abandoned,
                )
        self._briefs.pop(request.conversation_id, None)
        log.info(
            "AI conversation closed",
            conversation_id=request.conversation_id,
            end=str(request.end),
            disposition=request.disposition,
            handoff_reason=None if request.handoff_reason is None else str(request.handoff_reason),
            turns=request.turns,
        )
        return ConversationClosed(request.conversation_id)

    async def _record_said(
        self, conn: AsyncConnection, conversation_id: int, steps: Sequence[ConversationStep]
    ) -> None:
        """Record each line the claimant or the AI said that is not recorded yet, keyed by
        its place in the conversation (tool steps are recorded when checked)."""
        recorded = await ai_conversations.recorded_keys(conn, conversation_id)
        for index, step in enumerate(steps):
            key = STEP_KEY.format(index)
            if step.kind is StepKind.TOOL or key in recorded:
                continue
            detail: dict[str, Any] = {ai_conversations.STEP_KEY: key}
            if step.tool_calls:
                detail["tool_calls"] = _tool_calls_detail(step.tool_calls)
            await ai_conversations.add_step(
                conn, conversation_id, step.kind.value, step.text, detail=detail
            )
            recorded.add(key)

    # --- the model -------------------------------------------------------------------------------

    async def _brief(self, conversation_id: int, user_id: int, queue: str) -> talk.ClaimantBrief:
        brief = self._briefs.get(conversation_id)
        if brief is None:
            brief = brief_of(await self._replica.claimant_with_claims(user_id), queue)
            self._briefs[conversation_id] = brief
            while len(self._briefs) > BRIEFS_KEPT:
                self._briefs.popitem(last=False)
        return brief

    @activity.defn(name="ai_model_turn")
    async def model_turn(self, request: ModelTurn) -> ModelReply:
        """One model call: the system prompt (this claimant's brief), the conversation so
        far and any correction, with the tools. Recorded with its latency and tokens; the
        claimant's words and the AI's reply are recorded as steps. A model outage raises,
        for Temporal to retry (the workflow's retry policy decides how often)."""
        channel = AiChannel(request.channel)
        brief = await self._brief(request.conversation_id, request.user_id, request.queue)
        system = talk.system_prompt(brief, channel, self._clock())
        messages = talk.model_messages(system, request.steps, request.correction)
        try:
            completion = await _heartbeating(self._model.complete(messages, tools=talk.TOOLS))
        except (ModelUnavailable, ModelRejected) as error:
            async with self._dialler.begin() as conn:
                await self._record_said(conn, request.conversation_id, request.steps)
                await ai_conversations.add_step(
                    conn,
                    request.conversation_id,
                    "model",
                    f"failed: {error}",
                    detail={"failed": type(error).__name__, "model": self._model.model},
                )
            log.warning(
                "AI model call failed",
                conversation_id=request.conversation_id,
                error=str(error),
                model=self._model.model,
            )
            retryable = isinstance(error, ModelUnavailable)
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=not retryable
            ) from None
        reply = reply_of(completion)
        async with self._dialler.begin() as conn:
            await self._record_said(conn, request.conversation_id, request.steps)
            await self._record_model_call(conn, request, completion, reply)
        log.info(
            "AI model turn",
            conversation_id=request.conversation_id,
            model=self._model.model,
            latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            tool_calls=len(reply.tool_calls),
            malformed=reply.malformed is not None,
            refused=reply.refused,
            correction=request.correction is not None,
        )
        return reply

    async def _record_model_call(
        self,
        conn: AsyncConnection,
        request: ModelTurn,
        completion: ModelCompletion,
        reply: ModelReply,
    ) -> None:
        detail: dict[str, Any] = {
            "model": self._model.model,
            "tool_calls": [
                {"id": c.call_id, "name": c.name[:64], "arguments": c.arguments[:500]}
                for c in completion.tool_calls
            ],
        }
        text: str | None = None
        if reply.refused:
            detail["refused"] = True
            text = "refused"
        elif reply.malformed is not None:
            detail["malformed"] = reply.malformed
            detail["content"] = (completion.content or "")[:MAX_REPLY_CHARS]
            text = f"malformed: {reply.malformed}"
        if request.correction is not None:
            detail["correction"] = True
        await ai_conversations.add_step(
            conn,
            request.conversation_id,
            "model",
            text,
            detail=detail,
            latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        if reply.refused or reply.malformed is not None:
            return
        # The workflow puts a usable reply next in the conversation: record it under that
        # place, so the next turn does not record it again. A retried turn whose first
        # reply was recorded keeps both (both were produced; the claimant gets this one).
        key = STEP_KEY.format(len(request.steps))
        recorded = await ai_conversations.recorded_keys(conn, request.conversation_id)
        step_detail: dict[str, Any] = {
            "tool_calls": [
                {"id": c.call_id, "name": c.name, "arguments": c.arguments}
                for c in reply.tool_calls
            ]
        }
        if key not in recorded:
            step_detail[ai_conversations.STEP_KEY] = key
        await ai_conversations.add_step(
            conn, request.conversation_id, StepKind.ASSISTANT.value, reply.say, detail=step_detail
        )

    # --- tools -----------------------------------------------------------------------------------

    @activity.defn(name="ai_claim_context")
    async def claim_context(self, request: ContextQuestion) -> ContextAnswer:
        """This claimant's claims, read now: their lenders, what is missing, whether they
        signed. Nobody else's."""
        return context_of(await self._replica.claimant_with_claims(request.user_id))

    @activity.defn(name="ai_record_tool_step")
    async def record_tool_step(self, request: ToolStep) -> ToolStepRecorded:
        async with self._dialler.begin() as conn:
            step_id = await ai_conversations.add_step(
                conn,
                request.conversation_id,
                StepKind.TOOL.value,
                request.result,
                tool_name=request.tool_name,
                detail={
                    "arguments": dict(request.arguments),
                    "result": request.result,
                    "refused": request.refused,
                },
            )
        log.info(
            "AI tool step",
            conversation_id=request.conversation_id,
            tool=request.tool_name,
            refused=request.refused,
        )
        return ToolStepRecorded(step_id)

    # --- SMS ----------------------------------------------------------------------------------

    @activity.defn(name="ai_send_sms")
    async def send_sms(self, request: SendAiSms) -> AiSmsSent:
        """Text the claimant as the AI agent, through the one SMS path (kept in
        `sms_messages`, shown in the threads agents read). Once per idempotency key; nothing
        is sent without a number and SMS consent, or to a claimant who opted out."""
        body = request.body.replace("\x00", "").strip()[:MAX_SMS_CHARS]
        if not body:
            raise _invalid("an SMS needs a body")
        async with self._dialler.connect() as conn:
            sent = await ai_conversations.step_with_key(
                conn, request.conversation_id, request.idempotency_key
            )
        if sent is not None:
            kept_id = (sent.detail or {}).get("message_id")
            return AiSmsSent(int(kept_id) if kept_id is not None else None)
        rows = await self._replica.claimant_with_claims(request.user_id)
        number = to_e164(rows.user.phone_number) if rows.user is not None else None
        refusal = NO_NUMBER if number is None else None
        if refusal is None and not await self._consents_to(rows, ConsentChannel.SMS):
            refusal = NO_SMS_CONSENT
        message_id: int | None = None
        if refusal is None:
            assert number is not None
            try:
                kept = await self._outbox.send(
                    user_id=request.user_id,
                    to_number=number,
                    body=body,
                    agent_id=request.ai_agent_id,
                )
                message_id = kept.message_id
            except OptedOut:
                refusal = OPTED_OUT
            except DeliveryRejected as error:
                refusal = f"the provider refused it ({error.status})"
        async with self._dialler.begin() as conn:
            await ai_conversations.add_step_once(
                conn,
                request.conversation_id,
                request.idempotency_key,
                StepKind.TOOL.value,
                refusal or f"SMS sent (message {message_id})",
                tool_name=SEND_SMS_TOOL,
                detail={"message_id": message_id, "refused": refusal is not None},
            )
        log.info(
            "AI SMS",
            conversation_id=request.conversation_id,
            message_id=message_id,
            refused=refusal,
        )
        return AiSmsSent(message_id)

    async def _consents_to(self, rows: ClaimantRows, channel: ConsentChannel) -> bool:
        """Consent in force now, from both sources (the main app's and agents' records)."""
        if rows.user is None:
            return False
        async with self._dialler.connect() as conn:
            records = await consents.records_of(conn, int(rows.user.id), rows.consents)
        return channel.value in consents.in_force(records, self._clock())

    # --- calls ---------------------------------------------------------------------------------

    @activity.defn(name="ai_place_call")
    async def place_call(self, request: PlaceAiCall) -> AiCallPlaced:
        """Dial the claimant for the conversation, once: a retried activity finds the call
        it placed. The call is written first (`calls`, as the AI agent's), then Twilio is
        asked to dial with the AI voice webhooks, recording and answering-machine detection.
        Checked again at dial time: a usable number, no opt-out, automated-call consent
        (PECR 19) and the calling window."""
        async with self._dialler.connect() as conn:
            conversation = await ai_conversations.conversation_by_id(conn, request.conversation_id)
        if conversation is None:
            raise _invalid(f"no AI conversation {request.conversation_id}")
        if conversation.call_id is not None:
            placed = await self._placed_before(conversation.call_id)
            if placed is not None:
                return placed
            call_id: int | None = conversation.call_id  # failed to place: try it again
        else:
            call_id = None

        rows = await self._replica.claimant_with_claims(request.user_id)
        number = to_e164(rows.user.phone_number) if rows.user is not None else None
        refusal = await self._call_refusal(rows, number)
        if refusal is not None:
            log.info("AI call not placed", conversation_id=request.conversation_id, why=refusal)
            return AiCallPlaced(None, None, refused=refusal)
        assert number is not None
        if call_id is None:
            async with self._dialler.begin() as conn:
                call_id = await call_log.insert_ai_call(
                    conn,
                    user_id=request.user_id,
                    agent_id=request.ai_agent_id,
                    queue=request.queue,
                    provider=self._calls.provider,
                    to_number=number,
                    from_number=self._calls.from_number,
                )
                await ai_conversations.attach_call(conn, request.conversation_id, call_id)
        else:
            await call_log.advance_status(
                self._dialler, call_id, "initiated", earlier=["failed"], at=self._clock()
            )
        urls = call_urls(self._settings, request.conversation_id, call_id)
        try:
            sid = await self._calls.dial(number, urls)
        except CallRejected as error:
            await call_log.advance_status(
                self._dialler,
                call_id,
                "failed",
                earlier=["initiated"],
                at=self._clock(),
                ended=True,
            )
            log.info(
                "AI call refused by Twilio",
                conversation_id=request.conversation_id,
                code=error.code,
            )
            return AiCallPlaced(call_id, None, refused=str(error))
        except CallFailed as error:
            # not placed: marked so that the retry dials again on the same row (a network
            # error leaves the call `initiated`: it may have been placed, so the retry won't)
            await call_log.advance_status(
                self._dialler, call_id, "failed", earlier=["initiated"], at=self._clock()
            )
            raise ApplicationError(str(error), type="CallFailed") from None
        await call_log.attach_claimant_leg(self._dialler, call_id, sid)
        log.info(
            "AI call placed",
            conversation_id=request.conversation_id,
            call_id=call_id,
            provider=self._calls.provider,
        )
        return AiCallPlaced(call_id, sid)

    async def _placed_before(self, call_id: int) -> AiCallPlaced | None:
        """The conversation's call from an earlier attempt; None when that attempt was
        refused by Twilio with an error it may not repeat (try again on the same row)."""
        call = await call_log.call(self._dialler, call_id)
        if call is None:
            return None
        if call.provider_call_sid is not None:
            return AiCallPlaced(call.id, call.provider_call_sid)
        if call.status == "failed" and call.ended_at is None:
            return None
        # Never dialled for sure, or maybe dialled without its SID kept: never dial twice.
        await call_log.advance_status(
            self._dialler, call.id, "failed", earlier=["initiated"], at=self._clock(), ended=True
        )
        return AiCallPlaced(call.id, None, refused="the earlier attempt's outcome is unknown")

    async def _call_refusal(self, rows: ClaimantRows, number: str | None) -> str | None:
        if rows.user is None or number is None:
            return NO_NUMBER
        now = self._clock()
        async with self._dialler.connect() as conn:
            status = await suppression_status(conn, int(rows.user.id), number, rows.user.email)
        if status.suppressed:
            return OPTED_OUT
        if not await self._consents_to(rows, ConsentChannel.AUTOMATED_CALL):
            return NO_AUTOMATED_CONSENT
        windows = (await self._rules.current()).calling_windows
        preferred = (rows.user.preferred_call_start, rows.user.preferred_call_end)
        if not is_open(now, windows, *preferred):
            return WINDOW_CLOSED
        return None

    @activity.defn(name="ai_end_call")
    async def end_call(self, request: EndAiCall) -> AiCallEnded:
        """Say goodbye on a live call and hang up (the claimant signed mid-call, a limit was
        reached); a call that already ended is left alone."""
        ended = await self._calls.say_goodbye(request.call_sid, request.goodbye)
        log.info("AI call ended", ended=ended)
        return AiCallEnded(ended)
