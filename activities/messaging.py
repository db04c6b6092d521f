"""Messaging activities: send an SMS, create and send a magic link.

Built once per worker with the dialler engine and the providers from
`adapters.messaging.sms_sender/email_sender`. Every outbound SMS goes through
`adapters.sms_outbox.SmsOutbox` (shared with the web app) and is kept in `sms_messages` (row
written before the provider is called, so a message is on record even if the worker dies
mid-send); a magic link's token lives only inside `create_magic_link`: the database holds its
hash, the kept SMS copy holds a redacted link, and neither the result, the audit row nor the
logs ever see it.

Nothing is sent to a claimant who is suppressed (an SMS STOP not followed by their own START,
do-not-call, an imported list naming their number or email address; see
`domain.suppressions`): the activity fails with a
non-retryable `Suppressed` error. A provider's permanent refusal fails with a non-retryable
`DeliveryRejected`; other failures are retried by Temporal, which
can in rare cases (provider accepted, worker died before recording it) send a message twice,
so callers should keep `maximum_attempts` small for these activities.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio import activity
from temporalio.exceptions import ApplicationError

from adapters import magic_links
from adapters.audit_log import append_audit
from adapters.messaging import DeliveryRejected, EmailSender, OutgoingEmail, SmsSender
from adapters.replica_reader import ReplicaReader
from adapters.sms_outbox import OptedOut, SmsOutbox
from adapters.suppressions import suppression_status
from config.settings import Settings
from domain.magic_links import TOKEN_BYTES, email_message, hash_token, redact_link, sms_text
from schemas.attribution import ContactKind, LinkSource
from schemas.enums import LinkChannel
from schemas.messaging import CreateMagicLink, MagicLinkCreated, SendSms, SmsSent

log = get_logger(__name__)

PURPOSE_MAX_LENGTH = 32  # magic_links.purpose
SOURCE_REF_MAX_LENGTH = 64  # magic_links.source_ref


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="InvalidRequest", non_retryable=True)


def _rejected(error: DeliveryRejected) -> ApplicationError:
    return ApplicationError(str(error), type="DeliveryRejected", non_retryable=True)


def _source(request: CreateMagicLink) -> LinkSource | None:
    """The contact the link is sent from; both halves or neither."""
    if request.source_kind is None and not request.source_ref:
        return None
    ref = (request.source_ref or "").strip()
    if request.source_kind is None or not ref or len(ref) > SOURCE_REF_MAX_LENGTH:
        raise _invalid(
            f"source_kind and source_ref go together (source_ref 1 to {SOURCE_REF_MAX_LENGTH}"
            " characters)"
        )
    return LinkSource(ContactKind(request.source_kind), ref)


class MessagingActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        sms: SmsSender,
        email: EmailSender,
        settings: Settings,
        replica: AsyncEngine | None = None,
    ) -> None:
        self._engine = engine
        self._replica = ReplicaReader(replica) if replica is not None else None
        self._sms = sms
        self._outbox = SmsOutbox(engine, sms)
        self._email = email
        self._public_base = str(settings.public_base_url).rstrip("/")
        self._link_ttl = timedelta(minutes=settings.magic_link_ttl_minutes)

    # --- SMS -----------------------------------------------------------------------------

    @activity.defn
    async def send_sms(self, request: SendSms) -> SmsSent:
        """Send one SMS to a claimant and keep it in `sms_messages`."""
        if not request.body.strip():
            raise _invalid("an SMS needs a body")
        await self._refuse_if_suppressed(request.user_id, request.to_number)
        return await self._send_sms(
            user_id=request.user_id,
            to_number=request.to_number,
            body=request.body,
            kept_body=request.body,
            agent_id=request.agent_id,
        )

    async def _send_sms(
        self, *, user_id: int, to_number: str, body: str, kept_body: str, agent_id: int | None
    ) -> SmsSent:
        try:
            return await self._outbox.send(
                user_id=user_id,
                to_number=to_number,
                body=body,
                kept_body=kept_body,
                agent_id=agent_id,
                check_suppression=False,  # the callers check first
            )
        except DeliveryRejected as error:
            raise _rejected(error) from None

    async def _refuse_if_suppressed(
        self, user_id: int, to_number: str | None, to_email: str | None = None
    ) -> None:
        """The shared rule (`domain.suppressions`, through `adapters.suppressions`): any
        final opt-out of the claimant, their number or their address (an imported list's
        too), or an SMS STOP not followed by the claimant's own START."""
        async with self._engine.connect() as conn:
            status = await suppression_status(conn, user_id, to_number, to_email)
        if status.suppressed:
            error = OptedOut(user_id, status)
            raise ApplicationError(str(error), type="Suppressed", non_retryable=True)

    # --- magic links -----------------------------------------------------------------------

    async def _with_contact_details(self, request: CreateMagicLink) -> CreateMagicLink:
        """Workflows pass only the claimant's id (no personal data in their histories): the
        number, address and first name are read from the replica here, at send time."""
        if self._replica is None or (request.to_number or request.to_email):
            return request
        row = await self._replica.contact_details(request.user_id)
        if row is None:
            raise _invalid(f"claimant {request.user_id} is not in the replica")
        return replace(
            request,
            to_number=row.phone_number,
            to_email=row.email,
            first_name=request.first_name or row.first_name,
        )

    @activity.defn
    async def create_magic_link(self, request: CreateMagicLink) -> MagicLinkCreated:
        """Create a single-use link to the main app and send it by SMS or email."""
        request = await self._with_contact_details(request)
        channel = LinkChannel(request.channel)
        purpose = request.purpose.strip()
        if not purpose or len(purpose) > PURPOSE_MAX_LENGTH:
            raise _invalid(f"purpose must be 1 to {PURPOSE_MAX_LENGTH} characters")
        if channel is LinkChannel.SMS and not request.to_number:
            raise _invalid("a magic link by SMS needs to_number")
        if channel is LinkChannel.EMAIL and not request.to_email:
            raise _invalid("a magic link by email needs to_email")
        to_number = request.to_number if channel is LinkChannel.SMS else None
        # whichever way it goes, a listed number or address of the claimant stops it
        await self._refuse_if_suppressed(request.user_id, request.to_number, request.to_email)

        token = secrets.token_urlsafe(TOKEN_BYTES)
        url = f"{self._public_base}/m/{token}"
        async with self._engine.begin() as conn:
            link = await magic_links.create_link(
                conn,
                user_id=request.user_id,
                token_hash=hash_token(token),
                channel=channel.value,
                purpose=purpose,
                created_by=request.created_by,
                ttl=self._link_ttl,
                source=_source(request),
            )
        link_id, expires_at = link.link_id, link.expires_at

        # If delivery fails the link stays valid: nobody has the token unless the provider
        # did deliver it (a timeout after acceptance), and then it should work.
        ttl_minutes = int(self._link_ttl.total_seconds() // 60)
        detail: dict[str, Any] = {
            "link_id": link_id,
            "channel": channel.value,
            "purpose": purpose,
            "expires_at": expires_at.isoformat(),
        }
        provider_id: str | None
        if channel is LinkChannel.SMS:
            assert to_number is not None
            body = sms_text(url, purpose, ttl_minutes, request.first_name)
            sent = await self._send_sms(
                user_id=request.user_id,
                to_number=to_number,
                body=body,
                kept_body=redact_link(body, token, link_id),
                agent_id=request.created_by,
            )
            provider, provider_id = self._sms.provider, sent.provider_sid
            detail["sms_message_id"] = sent.message_id
        else:
            assert request.to_email is not None
            message = email_message(url, purpose, ttl_minutes, request.first_name)
            try:
                receipt = await self._email.send(
                    OutgoingEmail(
                        to=request.to_email,
                        subject=message.subject,
                        text=message.text,
                        html=message.html,
                    )
                )
            except DeliveryRejected as error:
                raise _rejected(error) from None
            provider, provider_id = receipt.provider, receipt.message_id
        detail |= {"provider": provider, "provider_id": provider_id}

        actor_id: str | None
        if request.created_by is not None:
            actor_type, actor_id = "agent", str(request.created_by)
        else:
            actor_type = "workflow"
            actor_id = activity.info().workflow_id if activity.in_activity() else None
        if request.source_kind is not None:
            detail["source"] = f"{request.source_kind.value}:{request.source_ref}"
        async with self._engine.begin() as conn:
            await magic_links.record_sent(conn, link_id)
            await append_audit(
                conn,
                actor_type=actor_type,
                actor_id=actor_id,
                action="magic_link_sent",
                subject_type="user",
                subject_id=str(request.user_id),
                detail=detail,
            )
        log.info(
            "magic link sent",
            link_id=link_id,
            user_id=request.user_id,
            channel=channel.value,
            provider=provider,
        )
        return MagicLinkCreated(
            link_id=link_id, expires_at=expires_at, delivered_via=channel, provider_id=provider_id
        )
