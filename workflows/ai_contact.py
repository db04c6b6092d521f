"""AiContactWorkflow: one automated contact by the AI agent, a call or an SMS conversation.

Started by the claimant's OutreachWorkflow as a child on the `ai-agents` task queue when the
routing policy gives the attempt to the AI (`domain.ai_routing`); it returns the same typed
outcome a person records, or a hand-off with a summary, and the parent applies it. Every model
call and every tool call is its own activity, so the conversation's steps read in order in the
Temporal UI, and a worker killed mid-conversation resumes without repeating a tool call (a
completed activity is replayed from the history, never run again).

Voice: the AI's call is answered by `/webhooks/ai/voice/answer`, which plays the opening (no
model call: the claimant hears the AI at once) and signals `call_progress`; each thing the
claimant says arrives as the `claimant_said` Update from the speech-gather webhook, which
speaks the reply. SMS: the opening goes out by text and each reply arrives as the
`claimant_texted` signal. Cancelled by the parent (the claimant signed, opted out, was
paused...), the contact ends politely: a live call hears a goodbye and is hung up.

Guardrails: output that fails its schema is retried once with the problem named, then the
claimant is handed to a person; a refusal or a model outage hands off too; the turn and time
limits of the `[ai]` rules hand off as well.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.ai_agent import AiAgentActivities
    from activities.ai_tools import AiToolActivities
    from activities.messaging import MessagingActivities
    from domain import ai_conversation as talk
    from domain.dispositions import Disposition
    from schemas.ai import (
        AiCallPlaced,
        AiChannel,
        AiContactInput,
        AiContactProgress,
        AiContactResult,
        AiLimits,
        AiReply,
        CallProgress,
        CallProgressKind,
        ClaimantTurn,
        CloseConversation,
        ContactEnd,
        ContextQuestion,
        ConversationStep,
        EndAiCall,
        HandoffReason,
        LimitsRequest,
        ModelReply,
        ModelTurn,
        OpenConversation,
        PlaceAiCall,
        SendAiSms,
        StepKind,
        ToolCall,
        ToolCheck,
    )
    from schemas.attribution import ContactKind
    from schemas.enums import LinkChannel
    from schemas.messaging import CreateMagicLink

SHORT = timedelta(seconds=30)
# A model call: the client's own timeout is OPENAI_TIMEOUT_SECONDS (10 s by default); one
# retry fits a voice turn inside the 15 s Twilio waits for TwiML only just, so voice gets none.
MODEL_TIMEOUT = timedelta(seconds=20)
MODEL_HEARTBEAT = timedelta(seconds=8)
VOICE_MODEL_RETRY = RetryPolicy(maximum_attempts=1)
SMS_MODEL_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))
DB_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=10)
# Dialling twice is worse than not dialling: the activity is idempotent per conversation,
# and a second attempt finds the first call.
DIAL_RETRY = RetryPolicy(maximum_attempts=3)
SEND_RETRY = RetryPolicy(maximum_attempts=3)
RING_LIMIT = timedelta(minutes=2)  # Twilio gives up ringing after 60 s
MAX_TOOL_ROUNDS = 4  # model → tools → model ... within one claimant turn
ABANDON_AFTER_MS = 2_000  # a connected claimant must hear the AI within 2 seconds
SEEN_TURNS_KEPT = 50


def ai_contact_id(user_id: int, attempt: int) -> str:
    return f"ai-contact-{user_id}-{attempt}"


@workflow.defn(name="AiContact")
class AiContactWorkflow:
    @workflow.init
    def __init__(self, input: AiContactInput) -> None:
        self._input = input
        self._conversation_id: int | None = None
        self._limits: AiLimits | None = None
        self._steps: list[ConversationStep] = []
        self._turns = 0
        self._replies: dict[str, AiReply] = {}  # by turn id: a retried webhook is answered once
        self._texts: list[ClaimantTurn] = []
        self._turn_lock = asyncio.Lock()
        self._progress: list[CallProgress] = []
        self._call_sid: str | None = None
        self._call_id: int | None = None
        self._answered = False
        self._call_over = False
        self._abandoned = False
        # how it ends
        self._end: ContactEnd | None = None
        self._disposition: str | None = None
        self._callback_at: datetime | None = None
        self._summary = ""
        self._handoff_reason: HandoffReason | None = None
        self._magic_links = 0

    # --- messages -------------------------------------------------------------------------

    @workflow.update
    async def claimant_said(self, turn: ClaimantTurn) -> AiReply:
        """A voice turn: what the claimant said, answered with what the AI says back."""
        return await self._turn(turn)

    @claimant_said.validator
    def _validate_said(self, turn: ClaimantTurn) -> None:
        if self._input.channel is not AiChannel.VOICE:
            raise ValueError("not a call")
        if turn.turn_id not in self._replies and (self._end is not None or self._call_over):
            raise ValueError("the conversation has ended")

    @workflow.signal
    def claimant_texted(self, turn: ClaimantTurn) -> None:
        if turn.turn_id in self._replies or any(t.turn_id == turn.turn_id for t in self._texts):
            return
        self._texts.append(turn)

    @workflow.signal
    def call_progress(self, progress: CallProgress) -> None:
        self._progress.append(progress)
        if progress.kind is CallProgressKind.ANSWERED_HUMAN:
            self._connected()
        if progress.kind in (CallProgressKind.ANSWERED_HUMAN, CallProgressKind.ANSWERED_MACHINE):
            self._answered = True
            if (progress.answered_after_ms or 0) > ABANDON_AFTER_MS:
                self._abandoned = True
        else:
            self._call_over = True

    def _connected(self) -> None:
        """A person answered: the opening the answer webhook spoke is the conversation's
        first line. Recorded here, in the handler, so it stays first even when the claimant's
        first words (an Update) reach the workflow before the run loop wakes, or before the
        answer's signal itself."""
        if self._input.channel is AiChannel.VOICE and not self._steps:
            opening = talk.opening_line(AiChannel.VOICE, self._input.queue, None)
            self._steps.append(ConversationStep(StepKind.ASSISTANT, opening))

    @workflow.query
    def progress(self) -> AiContactProgress:
        return AiContactProgress(
            self._conversation_id, self._turns, self._end is not None, self._disposition
        )

    # --- the contact ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: AiContactInput) -> AiContactResult:
        try:
            self._limits = await workflow.execute_activity_method(
                AiToolActivities.limits,
                LimitsRequest(input.queue),
                start_to_close_timeout=SHORT,
                retry_policy=DB_RETRY,
            )
            opened = await workflow.execute_activity_method(
                AiAgentActivities.open_conversation,
                OpenConversation(
                    input.user_id,
                    input.channel,
                    input.queue,
                    input.ai_agent_id,
                    workflow.info().workflow_id,
                ),
                start_to_close_timeout=SHORT,
                retry_policy=DB_RETRY,
            )
            self._conversation_id = opened.conversation_id
            if input.channel is AiChannel.VOICE:
                await self._call()
            else:
                await self._text()
        except asyncio.CancelledError:
            await self._stop_politely()
        return await self._close()

    async def _call(self) -> None:
        assert self._limits is not None and self._conversation_id is not None
        placed: AiCallPlaced = await workflow.execute_activity_method(
            AiAgentActivities.place_call,
            PlaceAiCall(
                self._conversation_id,
                self._input.user_id,
                self._input.ai_agent_id,
                self._input.queue,
                workflow.info().workflow_id,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DIAL_RETRY,
        )
        self._call_sid, self._call_id = placed.call_sid, placed.call_id
        if placed.call_sid is None:
            self._finish(ContactEnd.NO_CONTACT, None, "no number the AI could call")
            return
        try:
            await workflow.wait_condition(
                lambda: self._answered or self._call_over, timeout=RING_LIMIT
            )
        except TimeoutError:
            self._call_over = True
        if not self._answered:
            self._finish(ContactEnd.NO_CONTACT, self._unanswered(), "the call was not answered")
            return
        if any(p.kind is CallProgressKind.ANSWERED_MACHINE for p in self._progress):
            left_message = self._limits.answering_machine == "message"
            disposition = Disposition.VOICEMAIL_LEFT if left_message else Disposition.NO_ANSWER
            self._finish(ContactEnd.NO_CONTACT, disposition.value, "an answering machine")
            return
        limit = timedelta(seconds=self._limits.call_time_limit_seconds)
        try:
            await workflow.wait_condition(
                lambda: self._end is not None or self._call_over, timeout=limit
            )
        except TimeoutError:
            self._hand_off(HandoffReason.LIMIT_REACHED, "the call reached its time limit")
            await self._end_call(talk.HANDOFF_LINE)
        # A turn that ended the conversation says its last words and hangs up itself (its
        # TwiML); one still being answered finishes first.
        await workflow.wait_condition(lambda: not self._turn_lock.locked())
        if self._end is None:  # the claimant hung up mid-conversation
            self._hand_off(HandoffReason.COULD_NOT_HELP, "the claimant hung up")

    def _unanswered(self) -> str:
        kinds = {p.kind for p in self._progress}
        if CallProgressKind.BUSY in kinds:
            return Disposition.BUSY.value
        return Disposition.NO_ANSWER.value

    async def _text(self) -> None:
        assert self._limits is not None
        opening = talk.opening_line(AiChannel.SMS, self._input.queue, None)
        if not await self._send_text(opening, "opening"):
            self._finish(ContactEnd.NO_CONTACT, None, "the opening text could not be sent")
            return
        window = timedelta(seconds=self._limits.sms_reply_window_seconds)
        while self._end is None:
            try:
                await workflow.wait_condition(lambda: bool(self._texts), timeout=window)
            except TimeoutError:
                if self._turns == 0:
                    self._finish(ContactEnd.NO_CONTACT, Disposition.NO_ANSWER.value, "no reply")
                else:
                    self._hand_off(HandoffReason.COULD_NOT_HELP, "the claimant stopped replying")
                return
            turn = self._texts.pop(0)
            reply = await self._turn(turn)
            if reply.say:
                await self._send_text(reply.say, turn.turn_id)

    async def _send_text(self, body: str, key: str) -> bool:
        assert self._conversation_id is not None
        sent = await workflow.execute_activity_method(
            AiAgentActivities.send_sms,
            SendAiSms(
                self._conversation_id,
                self._input.user_id,
                self._input.ai_agent_id,
                body,
                f"{workflow.info().workflow_id}:{key}",
            ),
            start_to_close_timeout=SHORT,
            retry_policy=SEND_RETRY,
        )
        if sent.message_id is not None:
            self._said(body)
        return sent.message_id is not None

    def _said(self, text: str) -> None:
        """Record a line the AI said, once: the model's reply is already recorded (with its
        tool calls) when it is texted or spoken; a fixed line (the opening, a hand-off or a
        goodbye) is recorded here."""
        last = next((s for s in reversed(self._steps) if s.kind is not StepKind.TOOL), None)
        if last is not None and last.kind is StepKind.ASSISTANT and last.text == text:
            return
        self._steps.append(ConversationStep(StepKind.ASSISTANT, text))

    # --- a turn ---------------------------------------------------------------------------------

    async def _turn(self, turn: ClaimantTurn) -> AiReply:
        """What the claimant said, through the model and its tools, to what the AI says back.
        One turn at a time: a second webhook waits for the first."""
        async with self._turn_lock:
            known = self._replies.get(turn.turn_id)
            if known is not None:
                return known
            reply = await self._answer(turn)
            if self._input.channel is AiChannel.VOICE and reply.say:
                self._said(reply.say)  # spoken by the turn's TwiML (SMS: once texted)
            self._replies[turn.turn_id] = reply
            if len(self._replies) > SEEN_TURNS_KEPT:
                self._replies.pop(next(iter(self._replies)))
            return reply

    async def _answer(self, turn: ClaimantTurn) -> AiReply:
        assert self._limits is not None
        if self._end is not None:
            return AiReply(talk.GOODBYE, end=True)
        if self._input.channel is AiChannel.VOICE and not self._answered:
            self._answered = True  # speech means a person answered, whatever the signal says
            self._connected()
        self._turns += 1
        self._steps.append(ConversationStep(StepKind.CLAIMANT, turn.text))
        if self._turns > self._limits.max_turns:
            self._hand_off(HandoffReason.LIMIT_REACHED, "the conversation reached its turn limit")
            return AiReply(talk.HANDOFF_LINE, end=True)
        correction: str | None = None
        for _ in range(MAX_TOOL_ROUNDS):
            reply = await self._model(correction)
            if reply is None or reply.refused:
                self._hand_off(HandoffReason.MODEL_FAILED, "the AI could not answer")
                return AiReply(talk.HANDOFF_LINE, end=True)
            if reply.malformed is not None:
                if correction is not None:  # the second malformed answer in a row
                    self._hand_off(HandoffReason.MODEL_FAILED, "the AI's answers were malformed")
                    return AiReply(talk.HANDOFF_LINE, end=True)
                correction = f"Your last answer was invalid: {reply.malformed}. Try again."
                continue
            correction = None
            self._steps.append(
                ConversationStep(
                    StepKind.ASSISTANT,
                    reply.say,
                    tool_calls=[
                        {"id": c.call_id, "name": c.name, "arguments": _json(c.arguments)}
                        for c in reply.tool_calls
                    ],
                )
            )
            if not reply.tool_calls:
                return AiReply(reply.say or talk.SORRY_LINE, end=self._end is not None)
            for call in reply.tool_calls:
                result = await self._use(call)
                self._steps.append(ConversationStep(StepKind.TOOL, result, call.call_id, call.name))
            if self._end is not None:
                closing = reply.say or (
                    talk.HANDOFF_LINE if self._end is ContactEnd.HANDED_OFF else talk.GOODBYE
                )
                return AiReply(closing, end=True)
        self._hand_off(HandoffReason.COULD_NOT_HELP, "the AI went round in circles")
        return AiReply(talk.HANDOFF_LINE, end=True)

    async def _model(self, correction: str | None) -> ModelReply | None:
        assert self._conversation_id is not None
        voice = self._input.channel is AiChannel.VOICE
        try:
            return await workflow.execute_activity_method(
                AiAgentActivities.model_turn,
                ModelTurn(
                    self._conversation_id,
                    self._input.user_id,
                    self._input.channel,
                    self._input.queue,
                    list(self._steps),
                    correction,
                ),
                start_to_close_timeout=MODEL_TIMEOUT,
                # the activity heartbeats while the model thinks: a worker that died
                # mid-call is noticed in seconds, and the turn is retried on another
                heartbeat_timeout=MODEL_HEARTBEAT,
                retry_policy=VOICE_MODEL_RETRY if voice else SMS_MODEL_RETRY,
            )
        except ActivityError:
            return None  # a model outage: a person takes over

    async def _use(self, call: ToolCall) -> str:
        """Validate the tool call against the claimant's state, then run it; the text is
        what the model is told."""
        assert self._conversation_id is not None
        verdict = await workflow.execute_activity_method(
            AiToolActivities.check_tool,
            ToolCheck(
                self._conversation_id,
                self._input.user_id,
                call,
                self._magic_links,
                self._callback_at,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DB_RETRY,
        )
        if verdict.refusal is not None:
            return f"Refused: {verdict.refusal}"
        args = verdict.arguments
        if verdict.name == "send_magic_link":
            return await self._send_link(args)
        if verdict.name == "claim_context":
            answer = await workflow.execute_activity_method(
                AiAgentActivities.claim_context,
                ContextQuestion(self._input.user_id, self._conversation_id),
                start_to_close_timeout=SHORT,
                retry_policy=DB_RETRY,
            )
            missing = ", ".join(answer.missing_documents) or "nothing"
            return (
                f"Lenders: {', '.join(answer.lenders) or 'none'}. Missing documents: {missing}. "
                f"Signed: {'yes' if answer.signed else 'no'}."
            )
        if verdict.name == "schedule_callback":  # booked with the outcome, by the parent
            self._callback_at = datetime.fromisoformat(args["at"])
            return verdict.result
        if verdict.name == "record_outcome":
            outcome = args["outcome"]
            if outcome == Disposition.CALLBACK_REQUESTED.value and self._callback_at is None:
                return "Refused: book the callback time first."
            self._finish(ContactEnd.FINISHED, outcome, args.get("note", ""))
            return f"Outcome recorded: {outcome}."
        if verdict.name == "hand_off":
            self._hand_off(HandoffReason(args["reason"]), args["summary"])
            return "A colleague will take over."
        return f"Refused: no tool called {verdict.name}"

    async def _send_link(self, args: dict[str, str]) -> str:
        assert self._conversation_id is not None
        try:
            await workflow.execute_activity_method(
                MessagingActivities.create_magic_link,
                CreateMagicLink(
                    self._input.user_id,
                    LinkChannel(args.get("channel", "sms")),
                    args["purpose"],
                    created_by=self._input.ai_agent_id,
                    source_kind=ContactKind.AI,
                    source_ref=str(self._conversation_id),
                ),
                task_queue=self._input.outreach_task_queue,
                start_to_close_timeout=SHORT,
                # a retry after the provider accepted the message would send it twice
                retry_policy=SEND_RETRY,
            )
        except ActivityError:
            return "The link could not be sent."
        self._magic_links += 1
        return f"A {args['purpose']} link was sent by {args.get('channel', 'sms')}."

    # --- the end ------------------------------------------------------------------------------

    def _finish(self, end: ContactEnd, disposition: str | None, summary: str) -> None:
        if self._end is None:
            self._end, self._disposition, self._summary = end, disposition, summary

    def _hand_off(self, reason: HandoffReason, summary: str) -> None:
        if self._end is None:
            self._end, self._handoff_reason, self._summary = ContactEnd.HANDED_OFF, reason, summary

    async def _stop_politely(self) -> None:
        """Cancelled by the outreach workflow: a live call hears a goodbye and ends."""
        self._end = ContactEnd.CANCELLED
        if self._call_sid is not None and self._answered and not self._call_over:
            await self._end_call(talk.GOODBYE)

    async def _end_call(self, goodbye: str) -> None:
        assert self._call_sid is not None
        await workflow.execute_activity_method(
            AiAgentActivities.end_call,
            EndAiCall(self._call_sid, goodbye),
            start_to_close_timeout=SHORT,
            retry_policy=SEND_RETRY,
        )
        self._call_over = True

    async def _close(self) -> AiContactResult:
        assert self._conversation_id is not None
        end = self._end or ContactEnd.NO_CONTACT
        disposition = self._disposition
        if end is ContactEnd.FINISHED or end is ContactEnd.HANDED_OFF:
            if disposition is None and self._callback_at is not None:
                disposition = Disposition.CALLBACK_REQUESTED.value
            elif disposition is None and self._magic_links:
                disposition = Disposition.MAGIC_LINK_SENT.value
        if end is ContactEnd.CANCELLED:
            disposition = None
        await workflow.execute_activity_method(
            AiAgentActivities.close_conversation,
            CloseConversation(
                self._conversation_id,
                end,
                disposition,
                self._summary,
                self._handoff_reason,
                list(self._steps),
                self._call_id,
                self._turns,
                self._abandoned,
            ),
            start_to_close_timeout=SHORT,
            retry_policy=DB_RETRY,
        )
        return AiContactResult(
            conversation_id=self._conversation_id,
            end=end,
            disposition=disposition,
            callback_at=self._callback_at
            if disposition == Disposition.CALLBACK_REQUESTED.value
            else None,
            summary=self._summary,
            handoff_reason=self._handoff_reason,
            call_id=self._call_id,
            magic_links_sent=self._magic_links,
            abandoned=self._abandoned,
        )


def _json(arguments: dict[str, str]) -> str:
    return json.dumps(arguments, sort_keys=True)
