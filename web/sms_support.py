"""What the SMS pages, the SMS webhooks and the JSON API share: the conversations service,
and asking a claimant's workflow for something (a magic link, an outcome) with the
failures an agent can meet turned into errors they can read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

from structlog import get_logger
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from adapters.live import SMS_INBOUND, STAFF_CHANNEL, LiveEvent
from domain.suppressions import SMS_START, SMS_STOP
from schemas.enums import LinkChannel
from schemas.messaging import MagicLinkCreated
from schemas.outreach import ChangeEvent, ChangeKind, MagicLinkRequest
from services.claims import ClaimError
from services.signals import signal_with_start
from services.sms_conversations import Received, SmsConversations
from web.services import services

log = get_logger(__name__)

T = TypeVar("T")
WORKFLOW_TIMEOUT_SECONDS = 15.0
MAGIC_LINK_PURPOSES = {
    "signature": "Sign the claim documents",
    "documents": "Upload outstanding documents",
    "callback": "Pick up where we left off",
}


class OutreachUnavailable(Exception):
    """Temporal (or the outreach worker) did not answer; nothing was done."""


def conversations() -> SmsConversations:
    deps = services()
    return SmsConversations(deps.dialler_db, deps.replica_db, deps.sms_outbox())


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
        client = await deps.temporal.client()
        for event in events:
            await signal_with_start(client, deps.settings.temporal_task_queue, event)
    except (RPCError, RuntimeError, OSError) as error:
        log.error("opt-out recorded but the workflow was not told", sid=sid, error=str(error))
        raise OutreachUnavailable("Recorded; the outreach service is unavailable.") from None


async def ask_workflow(call: Awaitable[T]) -> T:
    """Await a workflow update. Raises `ClaimError` (the workflow refused, or none is
    running for the claimant) or `OutreachUnavailable` (no answer in time)."""
    try:
        async with asyncio.timeout(WORKFLOW_TIMEOUT_SECONDS):
            return await call
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise OutreachUnavailable("The outreach service did not answer in time.") from None
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ClaimError(
                "There is no outreach running for this claimant (nothing left to chase)."
            ) from None
        raise OutreachUnavailable(
            f"The outreach service is unavailable ({error.status.name})."
        ) from None
    except RuntimeError as error:  # the client could not connect
        raise OutreachUnavailable(f"The outreach service is unavailable: {error}") from None


async def send_magic_link(
    user_id: int, agent_id: int, channel: LinkChannel, purpose: str
) -> MagicLinkCreated:
    if purpose not in MAGIC_LINK_PURPOSES:
        raise ValueError(f"purpose must be one of: {', '.join(MAGIC_LINK_PURPOSES)}")
    deps = services()
    try:
        claims = await deps.claim_service()
    except RuntimeError as error:
        raise OutreachUnavailable(f"The outreach service is unavailable: {error}") from None
    return await ask_workflow(
        claims.send_magic_link(user_id, MagicLinkRequest(agent_id, channel, purpose))
    )
