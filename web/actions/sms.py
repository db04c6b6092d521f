"""What the SMS pages, the SMS webhooks and the JSON API do: the conversations service,
telling the workflows what an inbound message changed, and asking a claimant's workflow for
a magic link. The workflows' refusals and silences are the outreach client's
`OutreachRefused` and `OutreachUnavailable`. What the SMS pages show is `web.views.sms`."""

from __future__ import annotations

from datetime import UTC, datetime

from structlog import get_logger

from adapters import call_log, sms_outbox, task_store
from adapters.live import SMS_INBOUND, STAFF_CHANNEL, LiveEvent
from domain.suppressions import SMS_START, SMS_STOP
from schemas.attribution import ContactKind, LinkSource
from schemas.enums import LinkChannel
from schemas.messaging import MagicLinkCreated
from schemas.outreach import ChangeEvent, ChangeKind, MagicLinkRequest
from services.sms_conversations import Received, SmsConversations
from web.services import services
from web.views.sms import MAGIC_LINK_PURPOSES
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

log = get_logger(__name__)


def conversations() -> SmsConversations:
    deps = services()
    return SmsConversations(
        deps.dialler_db, deps.replica_db, deps.sms_outbox(), deps.claimant_loader()
    )


async def after_inbound(sid: str, received: Received) -> None:
    """What follows a stored inbound message: staff pages hear of a new one (ids and counts
    only), and the workflows of claimants it opted out or back in are told. Raises
    `OutreachUnavailable` if Temporal cannot be reached (the opt-out is already recorded)."""
    deps = services()
    if not received.duplicate:
        data = {"user_id": received.user_id, "message_id": received.message_id,
                "unread": received.unread}  # fmt: skip
        await deps.live().publish(STAFF_CHANNEL, LiveEvent(SMS_INBOUND, data))
    # OPTED_OUT for each claimant a STOP suppressed; REFRESH for each a START freed (a fresh
    # run rebuilds its facts without the lifted STOP). One event id per message SID, so a
    # repeated delivery re-sends signals the workflow already ignores.
    now = datetime.now(UTC)
    event_id = f"sms:{sid}"
    events = [
        ChangeEvent(event_id, ChangeKind.OPTED_OUT, user_id, now, reason=SMS_STOP)
        for user_id in received.opted_out
    ] + [
        ChangeEvent(event_id, ChangeKind.REFRESH, user_id, now, reason=SMS_START)
        for user_id in received.resubscribed
    ]
    if not events:
        return
    try:
        for event in events:
            await deps.outreach().deliver(event)
    except (OutreachRefused, OutreachUnavailable) as error:
        # a refused start is reported as unavailable too: the message and its opt-out are
        # kept either way, only the workflows have not heard of it
        log.error("opt-out recorded but the workflow was not told", sid=sid, error=str(error))
        raise OutreachUnavailable("Recorded; the outreach service is unavailable.") from None


async def call_source(agent_id: int, user_id: int) -> LinkSource | None:
    """The agent's current call with the claimant (placed during the claim they hold, no
    outcome yet), as the contact a link is sent from; None when there is none."""
    engine = services().dialler_db
    task = await task_store.held_task(engine, agent_id, user_id)
    if task is None:
        return None
    call = await call_log.open_call_for_claim(engine, agent_id, user_id, task.claimed_at)
    return None if call is None else LinkSource(ContactKind.CALL, str(call.id))


async def thread_source(user_id: int) -> LinkSource | None:
    """The SMS conversation a link is sent from: its newest message (the one being answered)."""
    async with services().dialler_db.connect() as conn:
        newest = await sms_outbox.newest_messages(conn, user_id, 1)
    return LinkSource(ContactKind.SMS, str(newest[0].id)) if newest else None


async def send_magic_link(
    user_id: int,
    agent_id: int,
    channel: LinkChannel,
    purpose: str,
    source: LinkSource | None = None,
) -> MagicLinkCreated:
    """Ask the claimant's workflow for a link; `source` is the contact it is sent from
    (attribution), by default the agent's current call with the claimant, if any."""
    if purpose not in MAGIC_LINK_PURPOSES:
        raise ValueError(f"purpose must be one of: {', '.join(MAGIC_LINK_PURPOSES)}")
    source = source or await call_source(agent_id, user_id)
    request = MagicLinkRequest(
        agent_id,
        channel,
        purpose,
        source_kind=None if source is None else source.kind,
        source_ref=None if source is None else source.ref,
    )
    return await services().claim_service().send_magic_link(user_id, request)
