"""The one way an SMS leaves the dialler: suppression check, a kept row, the provider.

Used by the messaging activities (workflows) and by the web app (SMS replies, the API), so
every outbound message is refused the same way when the claimant has opted out and kept
the same way in `sms_messages`. The row is written before the provider is called, so a
message is on record even if the process dies mid-send.
"""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters.messaging import DeliveryRejected, SmsSender
from adapters.suppressions import suppression_status
from domain.suppressions import SuppressionStatus
from schemas import dialler_db as db
from schemas.enums import MessageDirection
from schemas.messaging import SmsSent

log = get_logger(__name__)

SMS_SENDING = "sending"
SMS_FAILED = "failed"  # the provider refused it
SMS_SEND_ERROR = "send_error"  # the call to the provider failed: not known to be sent


class OptedOut(Exception):
    """The claimant (or the number) is suppressed: nothing may be sent."""

    def __init__(self, user_id: int | None, status: SuppressionStatus) -> None:
        super().__init__(f"user {user_id} has opted out of contact")
        self.user_id = user_id
        self.reasons = status.reasons


class SmsOutbox:
    def __init__(self, engine: AsyncEngine, sender: SmsSender) -> None:
        self._engine = engine
        self._sender = sender

    @property
    def provider(self) -> str:
        return self._sender.provider

    @property
    def from_number(self) -> str:
        return self._sender.from_number

    async def status(self, user_id: int | None, to_number: str | None) -> SuppressionStatus:
        async with self._engine.connect() as conn:
            return await suppression_status(conn, user_id, to_number)

    async def refuse_if_suppressed(self, user_id: int, to_number: str | None) -> None:
        status = await self.status(user_id, to_number)
        if status.suppressed:
            raise OptedOut(user_id, status)

    async def send(
        self,
        *,
        user_id: int,
        to_number: str,
        body: str,
        agent_id: int | None,
        kept_body: str | None = None,
        check_suppression: bool = True,
    ) -> SmsSent:
        """Send `body` and keep `kept_body` (a redacted copy, e.g. without a link's token).

        Raises `OptedOut` (nothing written), `DeliveryRejected` (row kept as failed) or the
        provider's error (row kept as send_error; the message may or may not have gone)."""
        if check_suppression:
            await self.refuse_if_suppressed(user_id, to_number)
        async with self._engine.begin() as conn:
            message_id = await conn.scalar(
                insert(db.sms_messages)
                .values(
                    user_id=user_id,
                    direction=MessageDirection.OUTBOUND.value,
                    from_number=self._sender.from_number,
                    to_number=to_number,
                    body=body if kept_body is None else kept_body,
                    status=SMS_SENDING,
                    agent_id=agent_id,
                )
                .returning(db.sms_messages.c.id)
            )
        assert message_id is not None
        try:
            receipt = await self._sender.send(to_number, body)
        except DeliveryRejected:
            await self._set_status(message_id, SMS_FAILED)
            raise
        except BaseException:
            await self._set_status(message_id, SMS_SEND_ERROR)
            raise
        async with self._engine.begin() as conn:
            await conn.execute(
                update(db.sms_messages)
                .where(db.sms_messages.c.id == message_id)
                .values(provider_sid=receipt.sid, status=receipt.status)
            )
        log.info(
            "sms sent",
            message_id=message_id,
            user_id=user_id,
            provider=receipt.provider,
            provider_sid=receipt.sid,
        )
        return SmsSent(message_id=message_id, provider_sid=receipt.sid, status=receipt.status)

    async def _set_status(self, message_id: int, status: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(db.sms_messages)
                    .where(db.sms_messages.c.id == message_id)
                    .values(status=status)
                )
        except Exception as error:  # the send error matters more than this one
            log.warning("could not record sms status", message_id=message_id, error=str(error))
