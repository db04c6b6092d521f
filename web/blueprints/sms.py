"""SMS conversations for staff: the inbox of threads per claimant and one thread with its
reply form and templates.

Every route that names a claimant is `@claimant_scoped`: an agent sees and answers only the
claimants they may see (`services.claimant_access`: their claim, their personal callback,
or the conversation assigned to them as the agent who last worked the claimant), and the
inbox lists only those; supervisors and admins see every thread.

Opening a thread marks the claimant's inbound messages read and writes `viewed_sms_thread`
to the audit log (the inbox writes `viewed_sms_inbox`). Replies go through the same outbox
as the workflows' messages, so an opted-out claimant cannot be texted; the magic-link
template asks the claimant's workflow (the `send_magic_link` Update, by SMS). Invalid input
re-renders the page with the message.
"""

from __future__ import annotations

import secrets

from quart import Blueprint, Response, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from structlog import get_logger

from adapters.messaging import DeliveryRejected
from adapters.sms_outbox import OptedOut
from domain.sms import MAX_BODY_LENGTH, document_reminder, requirement_words
from schemas.enums import LinkChannel
from services.claimant_access import SEES_EVERY_CLAIMANT
from services.sms_conversations import ClaimantNotFound, InboundSms, SmsError
from web.actions.sms import (
    after_inbound,
    call_source,
    conversations,
    send_magic_link,
    thread_source,
)
from web.auth.access import staff
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.converters import MAX_ID, query_int
from web.errors import APIError
from web.services import services
from web.views.sms import (
    MAGIC_LINK_PURPOSES,
    NOTICES,
    OPTED_OUT_MESSAGE,
    TEMPLATES,
    sms_time,
)
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

log = get_logger(__name__)

blueprint = Blueprint("sms", __name__)
blueprint.add_app_template_filter(sms_time, "sms_time")

PAGE_SIZE = 50


def _page_number() -> int:
    # bounded so the page's offset fits the database's bigint (a page past it is a 404)
    return max(1, query_int("page", 1, maximum=MAX_ID // PAGE_SIZE))


@blueprint.get("/sms")
@staff()
async def inbox() -> str:
    """Threads per claimant, newest first, with unread counts; recent unknown senders."""
    page = _page_number()
    agent = require_agent()
    service = conversations()
    found = await service.inbox(
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        visible_to=None if agent.role in SEES_EVERY_CLAIMANT else agent.id,
    )
    await service.audit_view(
        agent_id=agent.id,
        action="viewed_sms_inbox",
        detail={"user_ids": [t.user_id for t in found.threads], "page": page},
        ip_address=request.remote_addr,
    )
    pages = max(1, -(-found.total_threads // PAGE_SIZE))
    return await render_template("sms_inbox.html", inbox=found, page=page, pages=pages)


async def _thread_page(
    user_id: int,
    *,
    status: int = 200,
    body: str | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    agent = require_agent()
    service = conversations()
    try:
        thread = await service.thread(user_id, agent_id=agent.id, ip_address=request.remote_addr)
    except ClaimantNotFound:
        raise APIError(404, "not_found", "No such claimant.") from None
    template = request.args.get("template")
    if body is None and template == "documents":
        body = document_reminder(thread.claimant.first_name, thread.outstanding)
    page = await render_template(
        "sms_thread.html",
        thread=thread,
        claimant=thread.claimant,
        opted_out=thread.suppression.suppressed,
        opted_out_message=OPTED_OUT_MESSAGE,
        outstanding=[requirement_words(t) for t in dict.fromkeys(thread.outstanding)],
        body=body or "",
        error=error,
        notice=notice,
        templates=TEMPLATES,
        purposes=MAGIC_LINK_PURPOSES,
        max_length=MAX_BODY_LENGTH,
        simulated=not services().settings.twilio_enabled,
    )
    return Response(page, status=status, mimetype="text/html")


@blueprint.get("/sms/<int:user_id>")
@staff()
@claimant_scoped("user_id")
async def thread(user_id: int) -> Response:
    """One claimant's messages (marks them read; the view is audited), and the reply form."""
    return await _thread_page(user_id, notice=NOTICES.get(request.args.get("sent", "")))


@blueprint.post("/sms/<int:user_id>/reply")
@staff()
@claimant_scoped("user_id")
async def reply(user_id: int) -> ResponseReturnValue:
    """Send the reply; the page comes back with the message if it cannot be sent."""
    agent = require_agent()
    body = (await request.form).get("body", "")
    try:
        await conversations().reply(user_id, agent_id=agent.id, body=body)
    except ClaimantNotFound:
        raise APIError(404, "not_found", "No such claimant.") from None
    except SmsError as error:
        return await _thread_page(user_id, status=422, body=body, error=str(error))
    except OptedOut:
        return await _thread_page(user_id, status=409, body=body, error=OPTED_OUT_MESSAGE)
    except DeliveryRejected as error:
        message = f"The SMS provider refused the message ({error.reason}). It was not sent."
        return await _thread_page(user_id, status=502, body=body, error=message)
    except Exception as error:  # the provider is unreachable: the row says send_error
        log.warning("sms reply failed", user_id=user_id, error=str(error))
        message = "The SMS provider could not be reached; the message may not have been sent."
        return await _thread_page(user_id, status=502, body=body, error=message)
    return redirect(url_for("sms.thread", user_id=user_id, sent="sms"), 303)


@blueprint.post("/sms/<int:user_id>/magic-link")
@staff()
@claimant_scoped("user_id")
async def magic_link(user_id: int) -> ResponseReturnValue:
    """The magic-link template: the claimant's workflow creates and texts a single-use link."""
    agent = require_agent()
    purpose = (await request.form).get("purpose", "")
    if purpose not in MAGIC_LINK_PURPOSES:
        return await _thread_page(user_id, status=422, error="Choose what the link is for.")
    if await conversations().claimant(user_id) is None:
        raise APIError(404, "not_found", "No such claimant.")
    try:
        # on a call with the claimant the call is the contact, otherwise this conversation
        source = await call_source(agent.id, user_id) or await thread_source(user_id)
        await send_magic_link(user_id, agent.id, LinkChannel.SMS, purpose, source)
    except OutreachRefused as error:
        return await _thread_page(user_id, status=409, error=f"No link was sent: {error}")
    except OutreachUnavailable as error:
        return await _thread_page(user_id, status=503, error=f"No link was sent: {error}")
    return redirect(url_for("sms.thread", user_id=user_id, sent="link"), 303)


@blueprint.post("/sms/<int:user_id>/simulate-inbound")
@staff()
@claimant_scoped("user_id")
async def simulate_inbound(user_id: int) -> ResponseReturnValue:
    """Local development without Twilio: a reply "from the claimant", handled exactly as the
    inbound webhook handles one (keywords included). Not available with real Twilio."""
    deps = services()
    if deps.settings.twilio_enabled:
        raise APIError(404, "not_found", "Only available with the simulated SMS provider.")
    service = conversations()
    claimant = await service.claimant(user_id)
    if claimant is None or not claimant.phone_number:
        raise APIError(404, "not_found", "No such claimant, or no number on file.")
    body = ((await request.form).get("body") or "").strip()
    if not body:
        return await _thread_page(user_id, status=422, error="Write the simulated reply.")
    sid = "SMsim" + secrets.token_hex(15)[:29]
    received = await service.receive(
        InboundSms(sid, claimant.phone_number, deps.sms_sender().from_number, body)
    )
    try:
        await after_inbound(sid, received)
    except OutreachUnavailable as error:
        return await _thread_page(user_id, status=503, error=str(error))
    return redirect(url_for("sms.thread", user_id=user_id, sent="simulated"), 303)
