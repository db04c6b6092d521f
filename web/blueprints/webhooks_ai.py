"""Twilio voice webhooks of the AI agent's calls: the answer, each speech turn, the status.

The AI contact workflow (`workflows/ai_contact.py`) places the call with these URLs, each
carrying the conversation's id (`?c=<ai_conversations.id>`). Every request's
`X-Twilio-Signature` is checked against the public URL (`verified_form`): forged or
unsigned requests get 403 before anything is read. Whatever else goes wrong (an unknown or
ended conversation, Temporal away, a field too long) the claimant hears a polite line and
the call ends: Twilio never gets a 500.

- `/webhooks/ai/voice/answer`: the call connected. A person hears the opening at once (no
  model call: it is a fixed line saying the assistant is automated and the call recorded),
  then a speech `<Gather>`; an answering machine (Twilio's `AnsweredBy`) hears the neutral
  message or nothing, per the rules' `[ai] answering_machine`. The workflow is told in the
  background with how long the answer took to serve: past 2 seconds the call counts as
  abandoned (the workflow marks it).
- `/webhooks/ai/voice/turn`: what the claimant said (`SpeechResult`) goes to the workflow as
  the `claimant_said` Update, whose reply is spoken before the next `<Gather>`, or before
  hanging up when it ends the call. Each `<Gather>`'s URL carries its sequence number, so a
  repeated request has the same turn id and is answered once. Silence is re-prompted
  without asking the model; Temporal away or too slow hands the claimant to a person.
- `/webhooks/ai/voice/status`: the call's row in `calls` moves forward as an agent's call's
  does (ringing, answered, its end and duration), and the call's end (completed, no answer,
  busy, failed, cancelled) goes to the workflow as `call_progress`.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlencode

from quart import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError
from structlog import get_logger
from twilio.twiml.voice_response import Gather, VoiceResponse

from adapters import ai_conversations, call_log
from adapters.replica_reader import ReplicaReader
from domain.ai_conversation import (
    GOODBYE,
    HANDOFF_LINE,
    MACHINE_MESSAGE,
    SORRY_LINE,
    opening_line,
)
from schemas.ai import AiChannel, CallProgress, CallProgressKind, ClaimantTurn
from web.auth.access import webhook
from web.converters import parse_count, parse_id
from web.services import services
from web.twilio_signature import public_url, verified_form
from web.voice import ENDED, LANGUAGE, STATUS_RANK, VOICE, parse_twilio_time
from workflows.ai_contact_client import AiContactRefused, AiContactUnavailable

log = get_logger(__name__)

blueprint = Blueprint("webhooks_ai", __name__)

ANSWER_PATH = "/webhooks/ai/voice/answer"
TURN_PATH = "/webhooks/ai/voice/turn"
STATUS_PATH = "/webhooks/ai/voice/status"

ACTIVE = "active"  # ai_conversations.status of a contact still going
ANSWER_DEADLINE_MS = 2_000  # a connected claimant hears the AI within this, or it is abandoned
NAME_WAIT_SECONDS = 0.5  # the replica's share of that
MAX_SPEECH_CHARS = 2_000  # a speech result (a minute of talk is under 1,000 characters)
MAX_SAY_CHARS = 3_000  # Twilio's <Say> takes 4,096
MAX_SID_CHARS = 64
MAX_SILENCES = 2  # re-prompts in a row before the AI says goodbye
MAX_TURN_NUMBER = 10_000
# Temporal away or too slow: the claimant is not left waiting, a person calls back
TROUBLE_LINE = "Sorry, something went wrong on our side."
GATHER_SECONDS = 6  # how long Twilio waits for the claimant to start speaking
MACHINE_ANSWERS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
STATUS_KINDS = {
    "completed": CallProgressKind.COMPLETED,
    "no-answer": CallProgressKind.NO_ANSWER,
    "busy": CallProgressKind.BUSY,
    "failed": CallProgressKind.FAILED,
    "canceled": CallProgressKind.NO_ANSWER,  # hung up by us before it was answered
}


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), status=200, mimetype="text/xml")


def _say(response: VoiceResponse, text: str) -> None:
    response.say(text[:MAX_SAY_CHARS], voice=VOICE, language=LANGUAGE)


def _ending(*lines: str) -> Response:
    """Lines said, then the call hung up."""
    response = VoiceResponse()
    for line in lines:
        _say(response, line)
    response.hangup()
    return _xml(response)


def turn_url(conversation_id: int, turn: int, silences: int = 0) -> str:
    """The public URL of the next speech turn (what Twilio signs and posts to)."""
    query = {"c": conversation_id, "t": turn} | ({"s": silences} if silences else {})
    return public_url(services().settings, f"{TURN_PATH}?{urlencode(query)}")


def _listen(response: VoiceResponse, conversation_id: int, turn: int, silences: int = 0) -> None:
    """A speech `<Gather>` posting to the turn URL; posted with an empty result too, so
    silence is re-prompted rather than falling through to the end of the TwiML."""
    response.append(
        Gather(
            input="speech",
            action=turn_url(conversation_id, turn, silences),
            method="POST",
            speech_timeout="auto",
            timeout=GATHER_SECONDS,
            language=LANGUAGE,
            action_on_empty_result=True,
        )
    )


async def _conversation(*, active: bool = True) -> ai_conversations.ConversationRow | None:
    """The voice conversation the signed URL names (`active`: only while it is going);
    None (logged without details) when there is none, or when the database cannot say (the
    call then ends politely)."""
    raw = request.args.get("c", "")
    conversation_id = parse_id(raw)
    if conversation_id is None:
        log.warning("ai voice webhook without a usable conversation id", length=len(raw))
        return None
    try:
        async with services().dialler_db.connect() as conn:
            row = await ai_conversations.conversation_by_id(conn, conversation_id)
    except (SQLAlchemyError, OSError) as error:
        log.error("ai voice webhook: conversation not read", error=type(error).__name__)
        return None
    if row is None or row.channel != AiChannel.VOICE.value:
        log.info("ai voice webhook for no AI call", conversation_id=conversation_id)
        return None
    if active and row.status != ACTIVE:
        log.info("ai voice webhook for an ended AI call", conversation_id=conversation_id)
        return None
    return row


async def _first_name(user_id: int) -> str | None:
    """The claimant's first name for the opening, read now so that no workflow history
    holds it; None (the opening then names nobody) rather than keep the claimant waiting."""
    try:
        async with asyncio.timeout(NAME_WAIT_SECONDS):
            details = await ReplicaReader(services().replica_db).contact_details(user_id)
    except (TimeoutError, SQLAlchemyError, OSError) as error:
        log.warning("ai call opening without a name", user_id=user_id, error=type(error).__name__)
        return None
    return details.first_name if details is not None else None


def _tell_in_background(
    conversation: ai_conversations.ConversationRow, progress: CallProgress
) -> None:
    """Tell the workflow after Twilio has its answer: the claimant never waits on Temporal.
    A failure is logged (ids only); the workflow's own limits end a contact it never hears
    of."""
    client = services().ai_contact()

    async def tell() -> None:
        try:
            await client.call_progress(conversation.workflow_id, progress)
        except (AiContactRefused, AiContactUnavailable) as error:
            log.warning(
                "ai call progress not delivered",
                conversation_id=conversation.id,
                progress=progress.kind.value,
                error=type(error).__name__,
            )

    current_app.add_background_task(tell)


@blueprint.post(ANSWER_PATH)
@webhook("Twilio reports the AI's outbound call answered; signature-checked")
async def voice_answer() -> Response:
    started = time.monotonic()
    form = await verified_form()
    conversation = await _conversation()
    if conversation is None:
        return _ending(GOODBYE)
    answered_by = form.get("AnsweredBy", "").strip().lower()
    if answered_by in MACHINE_ANSWERS:
        response = VoiceResponse()
        if services().rules().ai.answering_machine == "message":
            _say(response, MACHINE_MESSAGE)
        response.hangup()
        _tell_in_background(conversation, CallProgress(CallProgressKind.ANSWERED_MACHINE))
        return _xml(response)
    first_name = await _first_name(conversation.user_id)
    response = VoiceResponse()
    _say(response, opening_line(AiChannel.VOICE, conversation.queue or "", first_name))
    _listen(response, conversation.id, turn=1)
    answered_after_ms = int((time.monotonic() - started) * 1000)
    if answered_after_ms > ANSWER_DEADLINE_MS:
        log.warning("ai call answered late", conversation_id=conversation.id, ms=answered_after_ms)
    human = CallProgress(CallProgressKind.ANSWERED_HUMAN, answered_after_ms=answered_after_ms)
    _tell_in_background(conversation, human)
    return _xml(response)


@blueprint.post(TURN_PATH)
@webhook("Twilio posts what the claimant said on the AI's call; signature-checked")
async def voice_turn() -> Response:
    form = await verified_form()
    conversation = await _conversation()
    if conversation is None:
        return _ending(GOODBYE)
    turn = min(parse_count(request.args.get("t")) or 1, MAX_TURN_NUMBER)
    silences = parse_count(request.args.get("s")) or 0
    speech = " ".join(form.get("SpeechResult", "").split())[:MAX_SPEECH_CHARS]
    if not speech:
        if silences >= MAX_SILENCES:
            return _ending(GOODBYE)
        response = VoiceResponse()
        _say(response, SORRY_LINE)
        _listen(response, conversation.id, turn + 1, silences + 1)
        return _xml(response)
    call_sid = form.get("CallSid", "").strip()[:MAX_SID_CHARS] or f"ai-call-{conversation.id}"
    said = ClaimantTurn(text=speech, turn_id=f"{call_sid}:{turn}")
    try:
        reply = await services().ai_contact().claimant_said(conversation.workflow_id, said)
    except AiContactRefused:  # the conversation has ended (or is ending): nothing to add
        return _ending(GOODBYE)
    except AiContactUnavailable:
        # the workflow's own time limit ends the contact as a hand-off to a person
        log.warning("ai voice turn not answered in time", conversation_id=conversation.id)
        return _ending(TROUBLE_LINE, HANDOFF_LINE)
    response = VoiceResponse()
    if reply.say.strip():
        _say(response, reply.say)
    if reply.end:
        response.hangup()
    else:
        _listen(response, conversation.id, turn + 1)
    return _xml(response)


@blueprint.post(STATUS_PATH)
@webhook("Twilio reports the progress of the AI's outbound call; signature-checked")
async def voice_status() -> tuple[str, int]:
    """The call's row moves forward (as an agent's call's does: statuses only move on, so a
    repeat changes nothing), even after the conversation has closed; a live conversation
    hears of the call's end."""
    form = await verified_form()
    status = form.get("CallStatus", "").strip().lower()
    if status not in STATUS_RANK:
        return "", 204
    conversation = await _conversation(active=False)
    if conversation is None:
        return "", 204
    if conversation.call_id is not None:
        await _advance_call(conversation.call_id, status, form)
    kind = STATUS_KINDS.get(status)
    if kind is not None and conversation.status == ACTIVE:
        _tell_in_background(conversation, CallProgress(kind))
    return "", 204


async def _advance_call(call_id: int, status: str, form: dict[str, str]) -> None:
    ended = status in ENDED
    try:
        await call_log.advance_status(
            services().dialler_db,
            call_id,
            status,
            earlier=[s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]],
            at=parse_twilio_time(form.get("Timestamp")),
            answered_by=form.get("AnsweredBy") or None,
            answered=status == "in-progress",
            ended=ended,
            duration_seconds=(parse_count(form.get("CallDuration")) or 0) if ended else 0,
        )
    except (SQLAlchemyError, OSError) as error:  # Twilio is answered all the same
        log.error("ai call status not kept", call_id=call_id, error=type(error).__name__)
