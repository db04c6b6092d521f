"""Twilio SMS webhooks: inbound messages and delivery status.

Both check `X-Twilio-Signature` against the public URL (`verified_form()`): unsigned or
forged requests get 403 before anything is read. Each is applied once per MessageSid:

- `/webhooks/twilio/sms-inbound` stores the message (once per SID) under the claimant with
  that number, applies STOP / START (see `services.sms_conversations`), tells the claimant's
  workflow, announces the message to staff pages (`sms-inbound`), and answers with empty
  TwiML (no automatic reply: Twilio's own opt-out handling answers STOP and START).
- Then, for any other message from a known claimant, the AI (`_to_the_ai`): the claimant's
  live AI SMS conversation gets it (`claimant_texted`), or, with a model configured, the
  triage workflow starts for it (`SmsTriage`: a callback request booked, a documents
  question answered, the rest left for a person). STOP / START never reach the AI. If
  Temporal cannot be reached the message is kept all the same (a person reads it in the
  inbox) and Twilio still gets its 200.
- `/webhooks/twilio/sms-status` moves an outbound message's status forward; repeats and
  late callbacks for an earlier stage change nothing.

An opt-out is recorded in the dialler DB before the workflow is told, so it holds at once
even while Temporal is away. The signal (signal-with-start, so it works whether or not a
run is live; event id from the MessageSid) is sent again when Twilio repeats the request,
which is harmless: workflows ignore event ids they have seen. If Temporal cannot be
reached the answer is 503, so a retrying sender delivers it later.
"""

from __future__ import annotations

from quart import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError
from structlog import get_logger

from adapters import ai_conversations
from domain.sms import KNOWN_STATUSES, normalise_number
from schemas.ai import AiChannel, ClaimantTurn, TriageInput
from services.sms_conversations import InboundSms, Received
from web.actions.sms import after_inbound, conversations
from web.auth.access import webhook
from web.errors import APIError
from web.services import services
from web.twilio_signature import verified_form
from workflows.ai_contact_client import (
    AiContactNotRunning,
    AiContactRefused,
    AiContactUnavailable,
)

log = get_logger(__name__)

blueprint = Blueprint("webhooks_sms", __name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_SID_LENGTH = 64  # sms_messages.provider_sid
MAX_NUMBER_LENGTH = 20  # sms_messages.from_number / to_number
MAX_AI_TEXT_CHARS = 4_000  # what the AI is passed of one message (kept whole in the inbox)


def _required(form: dict[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name, "").strip()
        if value:
            return value
    message = f"{names[0]} is required."
    raise APIError(400, "missing_field", message, fields={names[0]: message})


def _sid(form: dict[str, str]) -> str:
    sid = _required(form, "MessageSid", "SmsSid")
    if len(sid) > MAX_SID_LENGTH:
        message = "MessageSid is too long."
        raise APIError(400, "invalid_field", message, fields={"MessageSid": message})
    return sid


def _number(form: dict[str, str], name: str) -> str:
    value = _required(form, name)
    plain = normalise_number(value)
    # phone numbers are stored normalised; anything else (a short code, an alphanumeric
    # sender, a channel address) is kept as sent, cut to the column's width
    return (plain if len(plain) > 1 else value)[:MAX_NUMBER_LENGTH]


@blueprint.post("/webhooks/twilio/sms-inbound")
@webhook("Twilio delivers inbound SMS here; X-Twilio-Signature is verified")
async def sms_inbound() -> Response:
    form = await verified_form()
    message = InboundSms(
        sid=_sid(form),
        from_number=_number(form, "From"),
        to_number=_number(form, "To"),
        body=form.get("Body", ""),
    )
    received = await conversations().receive(message)
    await after_inbound(message.sid, received)  # 503 with Retry-After when Temporal is away
    await _to_the_ai(message, received)
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


async def _to_the_ai(message: InboundSms, received: Received) -> None:
    """A known claimant's message that is no keyword: to their live AI SMS conversation, else
    to the triage when a model is configured, else to nobody new (a person reads it in the
    inbox, as always). A repeated webhook passes it again, harmlessly: the conversation
    ignores a turn id (the MessageSid) it has seen, and a triage starts once per message."""
    if received.user_id is None or received.keyword is not None or not message.body.strip():
        return
    deps = services()
    client = deps.ai_contact()
    try:
        async with deps.dialler_db.connect() as conn:
            live = await ai_conversations.active_conversation(
                conn, received.user_id, AiChannel.SMS.value
            )
        if live is not None:
            turn = ClaimantTurn(text=message.body[:MAX_AI_TEXT_CHARS], turn_id=message.sid)
            try:
                await client.claimant_texted(live.workflow_id, turn)
                return
            except AiContactNotRunning:
                pass  # the conversation ended as the message came: triage it instead
        if deps.settings.ai_configured and deps.settings.ai_sms_enabled:
            # the triage answers by text: not while the AI's texts are switched off
            await client.start_triage(TriageInput(received.message_id, received.user_id))
    except (AiContactRefused, AiContactUnavailable, SQLAlchemyError, OSError) as error:
        # kept in the inbox all the same: a person reads it
        log.warning(
            "inbound sms not passed to the AI",
            message_id=received.message_id,
            error=type(error).__name__,
        )


@blueprint.post("/webhooks/twilio/sms-status")
@webhook("Twilio reports delivery status of our SMS here; X-Twilio-Signature is verified")
async def sms_status() -> Response:
    form = await verified_form()
    sid = _sid(form)
    status = _required(form, "MessageStatus", "SmsStatus").lower()
    if status not in KNOWN_STATUSES:
        log.warning("unknown sms status ignored", provider_sid=sid, status=status)
        return Response("", status=204)
    changed = await conversations().apply_status(sid, status)
    if status in ("failed", "undelivered"):
        log.warning(
            "sms not delivered", provider_sid=sid, status=status, error_code=form.get("ErrorCode")
        )
    log.debug("sms status", provider_sid=sid, status=status, applied=changed)
    return Response("", status=204)
