"""The one way an SMS leaves the dialler: suppression check, a kept row, the provider.

Used by the messaging activities (workflows) and by the web app (SMS replies, the API), so
every outbound message is refused the same way when the claimant has opted out and kept
the same way in `sms_messages`. The row is written before the provider is called, so a
message is on record even if the process dies mid-send.

It owns `sms_messages`: besides the send, the module-level functions below are every other
statement on the table (inbound messages kept once per provider SID, delivery statuses,
the inbox and threads, the claimant context's recent texts and the access rule's "who
texted whom"), each in the caller's connection or transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters.agent_store import display_name_of
from adapters.messaging import DeliveryRejected, SmsSender
from adapters.suppressions import suppression_status
from domain.attribution import Contact
from domain.sms import status_advances
from domain.suppressions import SuppressionStatus
from schemas import dialler_db as db
from schemas.attribution import ContactKind
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


# --- the kept messages: inbound, statuses, the inbox and threads -----------------------------

_M = db.sms_messages.c
_INBOUND = MessageDirection.INBOUND.value
_OUTBOUND = MessageDirection.OUTBOUND.value


@dataclass(frozen=True, slots=True)
class KeptInbound:
    message_id: int
    user_id: int | None
    body: str


@dataclass(frozen=True, slots=True)
class ThreadRow:
    """One claimant's thread: counts and its newest message."""

    user_id: int
    unread: int
    total: int
    last_at: datetime
    last_direction: str
    last_body: str


@dataclass(frozen=True, slots=True)
class UnknownRow:
    message_id: int
    from_number: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    direction: str
    body: str
    status: str
    created_at: datetime
    agent_name: str | None  # who sent it (None: the claimant, a workflow or a deleted agent)
    read_at: datetime | None


async def keep_inbound(
    conn: AsyncConnection,
    *,
    user_id: int | None,
    sid: str,
    from_number: str,
    to_number: str,
    body: str,
    status: str,
) -> int | None:
    """Keep an inbound message; its id, or None when its SID is already kept (a repeat)."""
    message_id = await conn.scalar(
        pg_insert(db.sms_messages)
        .values(
            user_id=user_id,
            direction=_INBOUND,
            provider_sid=sid,
            from_number=from_number,
            to_number=to_number,
            body=body,
            status=status,
        )
        .on_conflict_do_nothing(index_elements=[_M.provider_sid])
        .returning(_M.id)
    )
    return None if message_id is None else int(message_id)


async def inbound_by_sid(conn: AsyncConnection, sid: str) -> KeptInbound:
    """The message kept under this SID (it must exist)."""
    row = (
        await conn.execute(select(_M.id, _M.user_id, _M.body).where(_M.provider_sid == sid))
    ).one()
    return KeptInbound(int(row.id), None if row.user_id is None else int(row.user_id), row.body)


async def inbound_by_id(conn: AsyncConnection, message_id: int) -> KeptInbound | None:
    """An inbound message by its id (the SMS triage reads the text itself: no workflow
    history holds it); None when there is no inbound message with that id."""
    row = (
        await conn.execute(
            select(_M.id, _M.user_id, _M.body).where(_M.id == message_id, _M.direction == _INBOUND)
        )
    ).one_or_none()
    if row is None:
        return None
    return KeptInbound(int(row.id), None if row.user_id is None else int(row.user_id), row.body)


async def last_texted_among(
    conn: AsyncConnection, user_ids: Sequence[int], numbers: Sequence[str]
) -> int | None:
    """Which of these claimants we texted last at any of these numbers (None: none)."""
    found = await conn.scalar(
        select(_M.user_id)
        .where(_M.direction == _OUTBOUND, _M.user_id.in_(user_ids), _M.to_number.in_(numbers))
        .order_by(_M.id.desc())
        .limit(1)
    )
    return None if found is None else int(found)


async def unread_count(conn: AsyncConnection, user_id: int) -> int:
    count = await conn.scalar(
        select(func.count()).where(
            _M.user_id == user_id, _M.direction == _INBOUND, _M.read_at.is_(None)
        )
    )
    return int(count or 0)


async def advance_outbound_status(conn: AsyncConnection, sid: str, status: str) -> bool:
    """Apply a delivery status to the outbound message with this SID, under a row lock, when
    it is a later stage (`domain.sms.status_advances`); False when it changes nothing."""
    row = (
        await conn.execute(
            select(_M.id, _M.status)
            .where(_M.provider_sid == sid, _M.direction == _OUTBOUND)
            .with_for_update()
        )
    ).one_or_none()
    if row is None or not status_advances(row.status, status):
        return False
    await conn.execute(update(db.sms_messages).where(_M.id == row.id).values(status=status))
    return True


async def threads(
    conn: AsyncConnection,
    *,
    among: Select[Any] | None,
    limit: int,
    offset: int,
) -> tuple[list[ThreadRow], int]:
    """Claimants' threads, newest message first, and how many threads there are in all;
    `among` (a query of user ids) limits them to those claimants."""
    listed = _M.user_id.is_not(None) if among is None else _M.user_id.in_(among)
    unread = func.count().filter((_M.direction == _INBOUND) & _M.read_at.is_(None))
    per_claimant = (
        select(
            _M.user_id,
            func.max(_M.id).label("last_id"),
            unread.label("unread"),
            func.count().label("total"),
        )
        .where(listed)
        .group_by(_M.user_id)
        .subquery()
    )
    rows = await conn.execute(
        select(
            per_claimant.c.user_id,
            per_claimant.c.unread,
            per_claimant.c.total,
            _M.created_at,
            _M.direction,
            _M.body,
        )
        .join_from(per_claimant, db.sms_messages, _M.id == per_claimant.c.last_id)
        .order_by(_M.id.desc())
        .limit(limit)
        .offset(offset)
    )
    found = [
        ThreadRow(int(r.user_id), int(r.unread), int(r.total), r.created_at, r.direction, r.body)
        for r in rows
    ]
    total = await conn.scalar(select(func.count(func.distinct(_M.user_id))).where(listed))
    return found, int(total or 0)


async def unknown_senders(conn: AsyncConnection, limit: int) -> list[UnknownRow]:
    """The newest messages from numbers no claimant has."""
    rows = await conn.execute(
        select(_M.id, _M.from_number, _M.body, _M.created_at)
        .where(_M.user_id.is_(None))
        .order_by(_M.id.desc())
        .limit(limit)
    )
    return [UnknownRow(int(r.id), r.from_number, r.body, r.created_at) for r in rows]


async def mark_read(conn: AsyncConnection, user_id: int) -> int:
    """Mark the claimant's unread inbound messages read; how many."""
    result = await conn.execute(
        update(db.sms_messages)
        .where(_M.user_id == user_id, _M.direction == _INBOUND, _M.read_at.is_(None))
        .values(read_at=func.now())
    )
    return int(result.rowcount)


_MESSAGE_COLUMNS = (
    _M.id,
    _M.direction,
    _M.body,
    _M.status,
    _M.created_at,
    display_name_of(_M.agent_id).label("agent_name"),
    _M.read_at,
)


def _message(r: Any) -> MessageRow:
    return MessageRow(int(r.id), r.direction, r.body, r.status, r.created_at, r.agent_name,
                      r.read_at)  # fmt: skip


async def newest_messages(conn: AsyncConnection, user_id: int, limit: int) -> list[MessageRow]:
    """The claimant's newest messages, newest first (by id: the order they were kept)."""
    rows = await conn.execute(
        select(*_MESSAGE_COLUMNS).where(_M.user_id == user_id).order_by(_M.id.desc()).limit(limit)
    )
    return [_message(r) for r in rows]


async def latest_messages(conn: AsyncConnection, user_id: int, limit: int) -> list[MessageRow]:
    """The claimant's latest messages, latest first by time (then id)."""
    rows = await conn.execute(
        select(*_MESSAGE_COLUMNS)
        .where(_M.user_id == user_id)
        .order_by(_M.created_at.desc(), _M.id.desc())
        .limit(limit)
    )
    return [_message(r) for r in rows]


# --- who texted whom (the claimant-access rule's parts) --------------------------------------


def texts_by_agents_query() -> Select[Any]:
    """Every text an agent sent to a claimant: (user_id, agent_id, at)."""
    return select(_M.user_id, _M.agent_id, _M.created_at.label("at")).where(
        _M.direction == _OUTBOUND, _M.agent_id.is_not(None), _M.user_id.is_not(None)
    )


def texted_by_query(agent_id: int) -> Select[Any]:
    """The user ids this agent ever texted."""
    return select(_M.user_id).where(_M.agent_id == agent_id, _M.user_id.is_not(None))


async def outbound_as_contacts(
    conn: AsyncConnection, user_ids: Sequence[int], since: datetime, until: datetime
) -> list[Contact]:
    """These claimants' outbound messages kept between `since` and `until` (inclusive), as
    the contacts a conversion can be credited to (issue 11)."""
    if not user_ids:
        return []
    rows = await conn.execute(
        select(_M.id, _M.user_id, _M.created_at, _M.agent_id).where(
            _M.user_id.in_(list(user_ids)),
            _M.direction == _OUTBOUND,
            _M.created_at >= since,
            _M.created_at <= until,
        )
    )
    return [
        Contact(int(r.user_id), ContactKind.SMS, str(r.id), r.created_at, r.agent_id) for r in rows
    ]


# --- subject access (issue 11): everything kept about one claimant --------------------------


async def subject_access(
    conn: AsyncConnection, user_id: int, numbers: Sequence[str]
) -> list[dict[str, Any]]:
    """Every message filed under the claimant, and every one from or to their number
    (`numbers`: its spellings) filed under nobody, oldest first."""
    mine = _M.user_id == user_id
    unfiled = _M.user_id.is_(None) & (_M.from_number.in_(numbers) | _M.to_number.in_(numbers))
    rows = await conn.execute(
        select(db.sms_messages).where(mine | unfiled if numbers else mine).order_by(_M.id)
    )
    return [dict(r._mapping) for r in rows]


# --- analytics (issue 12) -------------------------------------------------------------------


async def message_counts_between(
    conn: AsyncConnection, start: datetime, end: datetime
) -> dict[tuple[int | None, str], int]:
    """Messages kept in [start, end), counted per (agent id, direction): outbound ones by
    the agent who sent them (None: the workflows' automatic texts), inbound ones under
    None (replies belong to no agent)."""
    sender = case((_M.direction == MessageDirection.OUTBOUND.value, _M.agent_id), else_=None)
    rows = await conn.execute(
        select(sender.label("agent_id"), _M.direction, func.count())
        .where(_M.created_at >= start, _M.created_at < end)
        .group_by(sender, _M.direction)
    )
    return {(r.agent_id, r.direction): int(r[2]) for r in rows}
