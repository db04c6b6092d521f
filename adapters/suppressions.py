"""Reading and appending opt-outs in the dialler DB; the rules are in `domain.suppressions`.

Every check of "may we contact this claimant?" goes through `suppression_status` (one
claimant) or `suppressed_users` (many), so the outreach facts, the messaging activities,
the SMS pages and the API agree on what a STOP followed by a START means.

It owns `suppressions` and `suppression_removals`: imported lists (`import_lines`, reason
`list`, numbers in E.164 and lower-case addresses) and their dated removal
(`record_removal`); a removed row is read with `removed=True` and no longer counts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.sms import number_spellings
from domain.suppressions import (
    IMPORTED,
    ImportLine,
    SuppressionRow,
    SuppressionStatus,
    email_key,
    status_of,
)
from schemas import dialler_db as db

_S = db.suppressions.c
_R = db.suppression_removals.c
# Imports take this transaction-level lock, so two at once cannot both add the same entry.
_IMPORT_LOCK = 0x5355_5050  # "SUPP"


def _select_rows() -> Select[Any]:
    return select(
        _S.id, _S.user_id, _S.phone_number, _S.reason, _S.email,
        _R.id.is_not(None).label("removed"),
    ).outerjoin(db.suppression_removals, _R.suppression_id == _S.id)  # fmt: skip


def _row(r: Any) -> SuppressionRow:
    return SuppressionRow(
        int(r.id), None if r.user_id is None else int(r.user_id), r.phone_number, r.reason,
        r.email, bool(r.removed),
    )  # fmt: skip


async def _rows(conn: AsyncConnection, subject: list[ColumnElement[bool]]) -> list[SuppressionRow]:
    if not subject:
        return []
    result = await conn.execute(_select_rows().where(or_(*subject)))
    return [_row(r) for r in result]


def _emails(email: str | None) -> frozenset[str]:
    key = email_key(email)
    return frozenset() if key is None else frozenset({key})


async def suppression_status(
    conn: AsyncConnection, user_id: int | None, number: str | None, email: str | None = None
) -> SuppressionStatus:
    """The reasons in force against contacting this claimant at this number (or address)."""
    numbers, emails = number_spellings(number), _emails(email)
    subject: list[ColumnElement[bool]] = []
    if user_id is not None:
        subject.append(_S.user_id == user_id)
    if numbers:
        subject.append(_S.phone_number.in_(sorted(numbers)))
    if emails:
        subject.append(_S.email.in_(sorted(emails)))
    return status_of(await _rows(conn, subject), user_id, numbers, emails)


async def suppressed_users(
    conn: AsyncConnection,
    users: Mapping[int, str | None],
    emails: Mapping[int, str | None] | None = None,
) -> set[int]:
    """Which of these claimants (id -> phone number; and id -> address, when given) are
    suppressed, in one query."""
    if not users:
        return set()
    spellings = {user_id: number_spellings(number) for user_id, number in users.items()}
    addresses = {user_id: _emails((emails or {}).get(user_id)) for user_id in users}
    all_numbers = sorted(set().union(*spellings.values()))
    all_emails = sorted(set().union(*addresses.values()))
    subject: list[ColumnElement[bool]] = [_S.user_id.in_(sorted(users))]
    if all_numbers:
        subject.append(_S.phone_number.in_(all_numbers))
    if all_emails:
        subject.append(_S.email.in_(all_emails))
    rows = await _rows(conn, subject)
    return {
        user_id
        for user_id, numbers in spellings.items()
        if status_of(rows, user_id, numbers, addresses[user_id]).suppressed
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


# --- imported lists and their removal ---------------------------------------------------------


@dataclass(frozen=True)
class ImportedEntry:
    """What one accepted line of a list names, and the suppression that holds it."""

    line: int
    suppression_id: int
    number: str | None  # E.164
    email: str | None  # lower-case
    added: bool  # False: an imported suppression of it was already in force


async def import_lines(
    conn: AsyncConnection, lines: Sequence[ImportLine], source: str
) -> list[ImportedEntry]:
    """Add a row (reason `list`) for each number and address of `lines` that no imported
    suppression still in force names; a line naming both adds two. Idempotent: a number or
    address already held by an imported row (not removed) adds nothing. In the caller's
    transaction, which takes the import lock."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _IMPORT_LOCK})
    numbers = sorted({line.number for line in lines if line.number})
    emails = sorted({line.email for line in lines if line.email})
    held: dict[tuple[str, str], int] = {}
    subject: list[ColumnElement[bool]] = []
    if numbers:
        subject.append(_S.phone_number.in_(numbers))
    if emails:
        subject.append(_S.email.in_(emails))
    if subject:
        found = await conn.execute(
            select(_S.id, _S.phone_number, _S.email)
            .outerjoin(db.suppression_removals, _R.suppression_id == _S.id)
            .where(_S.reason == IMPORTED, _R.id.is_(None), or_(*subject))
            .order_by(_S.id)
        )
        for r in found:
            if r.phone_number is not None:
                held.setdefault(("number", r.phone_number), int(r.id))
            if r.email is not None:
                held.setdefault(("email", r.email), int(r.id))
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        for kind, value in (("number", line.number), ("email", line.email)):
            if value is not None and (kind, value) not in held and (kind, value) not in fresh:
                fresh[(kind, value)] = {
                    "reason": IMPORTED,
                    "source": source[:64],
                    "phone_number": value if kind == "number" else None,
                    "email": value if kind == "email" else None,
                    "note": line.note,  # the first line naming it
                }
    added: set[int] = set()
    if fresh:
        inserted = await conn.execute(
            insert(db.suppressions).returning(_S.id, _S.phone_number, _S.email),
            list(fresh.values()),
        )
        for r in inserted:
            key = ("number", r.phone_number) if r.phone_number is not None else ("email", r.email)
            held[key] = int(r.id)
            added.add(int(r.id))
    entries: list[ImportedEntry] = []
    for line in lines:
        for kind, value in (("number", line.number), ("email", line.email)):
            if value is None:
                continue
            suppression_id = held[(kind, value)]
            first = suppression_id in added
            added.discard(suppression_id)  # a repeat within the file adds nothing
            entries.append(
                ImportedEntry(
                    line.line,
                    suppression_id,
                    value if kind == "number" else None,
                    value if kind == "email" else None,
                    added=first,
                )
            )
    return entries


async def suppression(conn: AsyncConnection, suppression_id: int) -> SuppressionRow | None:
    """One row, with whether a removal ended it (None: no such row)."""
    found = (await conn.execute(_select_rows().where(_S.id == suppression_id))).one_or_none()
    return None if found is None else _row(found)


async def record_removal(
    conn: AsyncConnection,
    suppression_id: int,
    *,
    effective_at: datetime,
    removed_by: str,
    reason: str,
) -> int:
    """Append the removal of a suppression. The caller reads it with `suppression` and asks
    `domain.suppressions.removal_refusal` first, in the same transaction; should two removals
    race, the unique constraint on `suppression_id` refuses the second."""
    removal_id = await conn.scalar(
        insert(db.suppression_removals)
        .values(
            suppression_id=suppression_id,
            effective_at=effective_at,
            removed_by=removed_by,
            reason=reason,
        )
        .returning(_R.id)
    )
    assert removal_id is not None
    return int(removal_id)


async def about_claimant(
    conn: AsyncConnection, user_id: int, number: str | None, email: str | None
) -> list[dict[str, Any]]:
    """Every row naming the claimant, their number (any spelling) or their address, with
    its removal if any, oldest first (subject access)."""
    numbers, emails = number_spellings(number), _emails(email)
    subject: list[ColumnElement[bool]] = [_S.user_id == user_id]
    if numbers:
        subject.append(_S.phone_number.in_(sorted(numbers)))
    if emails:
        subject.append(_S.email.in_(sorted(emails)))
    rows = await conn.execute(
        select(
            _S.id, _S.user_id, _S.phone_number, _S.email, _S.reason, _S.source, _S.note,
            _S.created_at, _R.effective_at.label("removed_effective_at"),
            _R.removed_by, _R.reason.label("removal_reason"),
            _R.created_at.label("removal_recorded_at"),
        )
        .outerjoin(db.suppression_removals, _R.suppression_id == _S.id)
        .where(or_(*subject))
        .order_by(_S.id)
    )  # fmt: skip
    return [dict(r._mapping) for r in rows]


async def count_imported(conn: AsyncConnection) -> int:
    """Imported suppressions still in force (for the import's summary)."""
    found = await conn.scalar(
        select(func.count())
        .select_from(db.suppressions)
        .outerjoin(db.suppression_removals, _R.suppression_id == _S.id)
        .where(_S.reason == IMPORTED, _R.id.is_(None))
    )
    return int(found or 0)
