"""Reading and appending opt-outs in the dialler DB; the rules are in `domain.suppressions`.

Every check of "may we contact this claimant?" goes through `suppression_status` (one
claimant) or `suppressed_users` (many), so the outreach facts, the messaging activities,
the SMS pages and the API agree on what a STOP followed by a START means.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.sms import number_spellings
from domain.suppressions import SuppressionRow, SuppressionStatus, status_of
from schemas import dialler_db as db

_S = db.suppressions.c


async def _rows(conn: AsyncConnection, subject: list[ColumnElement[bool]]) -> list[SuppressionRow]:
    if not subject:
        return []
    result = await conn.execute(
        select(_S.id, _S.user_id, _S.phone_number, _S.reason).where(or_(*subject))
    )
    return [
        SuppressionRow(int(r.id), None if r.user_id is None else int(r.user_id),
                       r.phone_number, r.reason)
        for r in result
    ]  # fmt: skip


async def suppression_status(
    conn: AsyncConnection, user_id: int | None, number: str | None
) -> SuppressionStatus:
    """The reasons in force against texting or calling this claimant at this number."""
    numbers = number_spellings(number)
    subject: list[ColumnElement[bool]] = []
    if user_id is not None:
        subject.append(_S.user_id == user_id)
    if numbers:
        subject.append(_S.phone_number.in_(sorted(numbers)))
    return status_of(await _rows(conn, subject), user_id, numbers)


async def suppressed_users(conn: AsyncConnection, users: Mapping[int, str | None]) -> set[int]:
    """Which of these claimants (id -> phone number) are suppressed, in one query."""
    if not users:
        return set()
    spellings = {user_id: number_spellings(number) for user_id, number in users.items()}
    all_numbers = sorted(set().union(*spellings.values()))
    subject: list[ColumnElement[bool]] = [_S.user_id.in_(sorted(users))]
    if all_numbers:
        subject.append(_S.phone_number.in_(all_numbers))
    rows = await _rows(conn, subject)
    return {
        user_id
        for user_id, numbers in spellings.items()
        if status_of(rows, user_id, numbers).suppressed
    }


async def append_suppression(
    conn: AsyncConnection,
    *,
    reason: str,
    source: str,
    user_id: int | None = None,
    phone_number: str | None = None,
) -> int:
    values: dict[str, Any] = {
        "user_id": user_id,
        "phone_number": phone_number,
        "reason": reason,
        "source": source[:64],
    }
    suppression_id = await conn.scalar(insert(db.suppressions).values(**values).returning(_S.id))
    assert suppression_id is not None
    return int(suppression_id)


async def latest_reason_among(
    conn: AsyncConnection, user_id: int, reasons: Collection[str]
) -> SuppressionRow | None:
    """The claimant's newest row whose reason is one of `reasons` (one channel's events)."""
    row = (
        await conn.execute(
            select(_S.id, _S.user_id, _S.phone_number, _S.reason)
            .where(_S.user_id == user_id, _S.reason.in_(sorted(reasons)))
            .order_by(_S.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return SuppressionRow(int(row.id), int(row.user_id), row.phone_number, row.reason)


async def claimant_reasons_from(conn: AsyncConnection, source: str) -> list[tuple[int, str]]:
    """(user id, reason) of the rows one source wrote about claimants (not bare numbers)."""
    rows = await conn.execute(
        select(_S.user_id, _S.reason).where(_S.source == source, _S.user_id.is_not(None))
    )
    return [(int(user_id), str(reason)) for user_id, reason in rows]
