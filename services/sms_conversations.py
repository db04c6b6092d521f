"""SMS conversations: threads per claimant, inbound messages and their keywords, delivery
status callbacks, and agents' replies.

Inbound messages are filed under the claimant whose replica `users.phone_number` is the
sender's number (unknown senders are kept with `user_id` NULL). Each is stored once per
provider SID (`sms_messages.provider_sid` is unique): a repeated webhook finds the row and
changes nothing. In the same transaction as the row:

- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT append an `sms_stop` suppression for every
  claimant with that number (or for the bare number when nobody has it), source
  `sms:<MessageSid>`; the caller then tells each claimant's workflow (OPTED_OUT).
- START, UNSTOP append an `sms_start` row where `domain.suppressions` allows it: only a
  claimant held back by an SMS STOP alone. A do-not-call or list entry is never lifted.

Replies go out through `adapters.sms_outbox.SmsOutbox`, the same path the workflows' messaging
activities use, so an opted-out claimant cannot be texted from anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import sms_outbox
from adapters.audit_log import append_audit
from adapters.replica_reader import ReplicaReader
from adapters.sms_outbox import SmsOutbox
from adapters.suppressions import (
    append_suppression,
    claimant_reasons_from,
    suppression_status,
)
from domain.sms import MAX_BODY_LENGTH, Keyword, keyword_of, number_spellings
from domain.suppressions import SMS_START, SMS_STOP, SuppressionStatus, start_refusal
from schemas.context import ReplicaClaimant
from schemas.enums import RequirementStatus
from schemas.messaging import SmsSent
from services.claimant_access import visible_claimants
from services.claimant_loader import ClaimantLoader

log = get_logger(__name__)

INBOUND_RECEIVED = "received"  # Twilio's status for an inbound message
THREAD_LIMIT = 200  # messages shown in one thread (the newest)


class SmsError(Exception):
    """A reply that cannot be sent; the message says why, for the agent."""


class ClaimantNotFound(SmsError):
    pass


class NoPhoneNumber(SmsError):
    pass


class InvalidMessage(SmsError):
    pass


@dataclass(frozen=True)
class Claimant:
    user_id: int
    first_name: str
    last_name: str
    phone_number: str | None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class InboundSms:
    sid: str
    from_number: str
    to_number: str
    body: str


@dataclass(frozen=True)
class Received:
    message_id: int
    user_id: int | None  # the claimant the message is filed under
    duplicate: bool  # this SID was stored before: nothing changed now
    keyword: Keyword | None
    opted_out: tuple[int, ...] = ()  # claimants this STOP suppressed
    resubscribed: tuple[int, ...] = ()  # claimants this START re-subscribed
    refused: dict[int, str] = field(default_factory=dict)  # START refused, and why
    unread: int = 0  # the claimant's unread inbound messages, this one included


@dataclass(frozen=True)
class ThreadSummary:
    user_id: int
    name: str
    phone_number: str | None
    last_at: datetime
    last_direction: str
    last_body: str
    unread: int
    total: int


@dataclass(frozen=True)
class UnknownSender:
    message_id: int
    from_number: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Inbox:
    threads: list[ThreadSummary]
    total_threads: int
    unknown: list[UnknownSender]


@dataclass(frozen=True)
class Message:
    id: int
    direction: str
    body: str
    status: str
    created_at: datetime
    agent_name: str | None
    read_at: datetime | None


@dataclass(frozen=True)
class Thread:
    claimant: Claimant
    messages: list[Message]
    marked_read: int
    suppression: SuppressionStatus
    outstanding: list[str]  # requirement types still PENDING


def outstanding_types(claimant: ReplicaClaimant) -> list[str]:
    """Types of the claimant's requirements still PENDING, oldest first."""
    pending = [
        requirement
        for claim in claimant.claims
        for requirement in claim.requirements
        if requirement.status == RequirementStatus.PENDING.value
    ]
    return [r.type for r in sorted(pending, key=lambda r: r.requirement_id)]


def _claimant_of(found: ReplicaClaimant) -> Claimant:
    return Claimant(found.user_id, found.first_name, found.last_name, found.phone_number)


def clean_body(body: str | None) -> str:
    """The reply as it will be sent; `InvalidMessage` says what is wrong with it."""
    text = (body or "").strip()
    if not text:
        raise InvalidMessage("Write a message before sending.")
    if len(text) > MAX_BODY_LENGTH:
        raise InvalidMessage(f"A message is at most {MAX_BODY_LENGTH} characters.")
    return text


class SmsConversations:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica_db: AsyncEngine,
        outbox: SmsOutbox,
        loader: ClaimantLoader,
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica_db)
        self._outbox = outbox
        self._loader = loader

    # --- claimants (replica) ----------------------------------------------------------------

    async def claimant(self, user_id: int) -> Claimant | None:
        """The claimant a thread, reply or link is about: the one claimant loader's replica
        part (cached, dropped by CDC when the main app changes them)."""
        found = await self._replica_claimant(user_id)
        return None if found is None else _claimant_of(found)

    async def _replica_claimant(self, user_id: int) -> ReplicaClaimant | None:
        return (await self._loader.replica([user_id])).claimants.get(user_id)

    async def claimants(self, user_ids: Sequence[int]) -> dict[int, Claimant]:
        """Names and numbers of many claimants for the inbox (one light replica query)."""
        names = await self._replica.claimant_names(user_ids)
        return {
            user_id: Claimant(user_id, n.first_name, n.last_name, n.phone_number)
            for user_id, n in names.items()
        }

    async def claimants_with_number(self, number: str) -> list[int]:
        return await self._replica.user_ids_with_number(sorted(number_spellings(number)))

    # --- inbound ---------------------------------------------------------------------------

    async def receive(self, message: InboundSms) -> Received:
        """Store an inbound message once per SID and apply its keyword (see the module doc)."""
        matches = await self.claimants_with_number(message.from_number)
        keyword = keyword_of(message.body)
        async with self._dialler.begin() as conn:
            user_id = await self._file_under(conn, matches, message.from_number)
            message_id = await sms_outbox.keep_inbound(
                conn,
                user_id=user_id,
                sid=message.sid,
                from_number=message.from_number,
                to_number=message.to_number,
                body=message.body,
                status=INBOUND_RECEIVED,
            )
            if message_id is None:
                return await self._already_received(conn, message.sid)
            opted_out: list[int] = []
            resubscribed: list[int] = []
            refused: dict[int, str] = {}
            source = f"sms:{message.sid}"
            subjects: list[int | None] = list(matches) or [None]
            for subject in subjects:
                if keyword is Keyword.STOP:
                    await append_suppression(
                        conn,
                        reason=SMS_STOP,
                        source=source,
                        user_id=subject,
                        phone_number=message.from_number,
                    )
                    await self._audit(conn, subject, "sms_opted_out", {"message_id": message_id})
                    if subject is not None:
                        opted_out.append(subject)
                elif keyword is Keyword.START:
                    status = await suppression_status(conn, subject, message.from_number)
                    why_not = start_refusal(status)
                    if why_not is None:
                        await append_suppression(
                            conn,
                            reason=SMS_START,
                            source=source,
                            user_id=subject,
                            phone_number=message.from_number,
                        )
                        await self._audit(
                            conn, subject, "sms_resubscribed", {"message_id": message_id}
                        )
                        if subject is not None:
                            resubscribed.append(subject)
                    else:
                        await self._audit(
                            conn,
                            subject,
                            "sms_start_refused",
                            {"message_id": message_id, "why": why_not},
                        )
                        if subject is not None:
                            refused[subject] = why_not
            unread = await sms_outbox.unread_count(conn, user_id) if user_id is not None else 0
        log.info(
            "sms received",
            message_id=message_id,
            user_id=user_id,
            keyword=keyword.value if keyword else None,
        )
        return Received(
            message_id=int(message_id),
            user_id=user_id,
            duplicate=False,
            keyword=keyword,
            opted_out=tuple(opted_out),
            resubscribed=tuple(resubscribed),
            refused=refused,
            unread=unread,
        )

    async def _file_under(
        self, conn: AsyncConnection, matches: list[int], number: str
    ) -> int | None:
        """The claimant an inbound message belongs to: the only one with that number, or
        (a shared number) the one we last texted there, or the oldest account."""
        if len(matches) <= 1:
            return matches[0] if matches else None
        last_texted = await sms_outbox.last_texted_among(
            conn, matches, sorted(number_spellings(number))
        )
        return last_texted if last_texted is not None else matches[0]

    async def _already_received(self, conn: AsyncConnection, sid: str) -> Received:
        """A repeated delivery: what the first one did, so the caller can repeat its
        (idempotent) signals; nothing is written."""
        kept = await sms_outbox.inbound_by_sid(conn, sid)
        effects = await claimant_reasons_from(conn, f"sms:{sid}")
        opted_out: list[int] = []
        resubscribed: list[int] = []
        for user_id, reason in effects:
            (opted_out if reason == SMS_STOP else resubscribed).append(user_id)
        return Received(
            message_id=kept.message_id,
            user_id=kept.user_id,
            duplicate=True,
            keyword=keyword_of(kept.body),
            opted_out=tuple(sorted(opted_out)),
            resubscribed=tuple(sorted(resubscribed)),
        )

    # --- delivery status -------------------------------------------------------------------

    async def apply_status(self, sid: str, status: str) -> bool:
        """Record a status callback; False when it changes nothing (unknown SID, a repeat,
        or a late callback for an earlier stage)."""
        async with self._dialler.begin() as conn:
            return await sms_outbox.advance_outbound_status(conn, sid, status)

    # --- the inbox and threads -------------------------------------------------------------

    async def inbox(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        unknown_limit: int = 20,
        visible_to: int | None = None,
    ) -> Inbox:
        """Threads newest first, each with its unread count; plus recent unknown senders.
        With `visible_to` (an agent's id), only the threads of claimants that agent may see
        (`services.claimant_access`) and no unknown senders: a stranger's number and words
        belong to no claimant of theirs."""
        among = None
        if visible_to is not None:
            among = visible_claimants(visible_to)
            unknown_limit = 0
        async with self._dialler.connect() as conn:
            rows, total_threads = await sms_outbox.threads(
                conn, among=among, limit=limit, offset=offset
            )
            unknown_rows = await sms_outbox.unknown_senders(conn, unknown_limit)
        people = await self.claimants([r.user_id for r in rows])
        summaries = []
        for r in rows:
            person = people.get(r.user_id)
            summaries.append(
                ThreadSummary(
                    user_id=r.user_id,
                    name=person.name if person else f"Claimant {r.user_id}",
                    phone_number=person.phone_number if person else None,
                    last_at=r.last_at,
                    last_direction=r.last_direction,
                    last_body=r.last_body,
                    unread=r.unread,
                    total=r.total,
                )
            )
        unknown = [UnknownSender(r.message_id, r.from_number, r.body, r.created_at)
                   for r in unknown_rows]  # fmt: skip
        return Inbox(summaries, total_threads, unknown)

    async def thread(self, user_id: int, *, agent_id: int, ip_address: str | None) -> Thread:
        """The claimant's messages, oldest first; marks their inbound messages read and
        writes the view to the audit log."""
        found = await self._replica_claimant(user_id)
        if found is None:
            raise ClaimantNotFound("No such claimant.")
        claimant = _claimant_of(found)
        async with self._dialler.begin() as conn:
            marked = await sms_outbox.mark_read(conn, user_id)
            rows = await sms_outbox.newest_messages(conn, user_id, THREAD_LIMIT)
            await self._audit(
                conn,
                user_id,
                "viewed_sms_thread",
                {"messages": len(rows), "marked_read": marked},
                actor=("agent", str(agent_id)),
                ip_address=ip_address,
            )
            suppression = await suppression_status(conn, user_id, claimant.phone_number)
        messages = [
            Message(r.id, r.direction, r.body, r.status, r.created_at, r.agent_name, r.read_at)
            for r in reversed(rows)
        ]
        return Thread(
            claimant=claimant,
            messages=messages,
            marked_read=marked,
            suppression=suppression,
            outstanding=outstanding_types(found),
        )

    # --- replies ---------------------------------------------------------------------------

    async def reply(self, user_id: int, *, agent_id: int, body: str | None) -> SmsSent:
        """Text the claimant at their number on file. Raises `SmsError` (invalid, no such
        claimant, no number), `OptedOut`, `DeliveryRejected` or the provider's error."""
        text = clean_body(body)
        claimant = await self.claimant(user_id)
        if claimant is None:
            raise ClaimantNotFound("No such claimant.")
        if not claimant.phone_number:
            raise NoPhoneNumber("There is no mobile number on file for this claimant.")
        sent = await self._outbox.send(
            user_id=user_id, to_number=claimant.phone_number, body=text, agent_id=agent_id
        )
        async with self._dialler.begin() as conn:
            await self._audit(
                conn,
                user_id,
                "sms_sent",
                {"message_id": sent.message_id},
                actor=("agent", str(agent_id)),
            )
        return sent

    async def suppression(self, user_id: int, number: str | None) -> SuppressionStatus:
        return await self._outbox.status(user_id, number)

    # --- audit -----------------------------------------------------------------------------

    async def audit_view(
        self, *, agent_id: int, action: str, detail: dict[str, object], ip_address: str | None
    ) -> None:
        """A member of staff saw personal data that belongs to no single claimant (the
        inbox: names and message previews)."""
        async with self._dialler.begin() as conn:
            await self._audit(
                conn,
                None,
                action,
                detail,
                actor=("agent", str(agent_id)),
                ip_address=ip_address,
                subject_type="sms_inbox",
            )

    @staticmethod
    async def _audit(
        conn: AsyncConnection,
        user_id: int | None,
        action: str,
        detail: dict[str, object],
        *,
        actor: tuple[str, str | None] | None = None,
        ip_address: str | None = None,
        subject_type: str = "user",
    ) -> None:
        actor_type, actor_id = actor or ("claimant", str(user_id) if user_id else None)
        await append_audit(
            conn,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=str(user_id) if user_id is not None else None,
            detail=detail,
            ip_address=ip_address,
        )
