"""The append-only audit log (`audit_log`): the one module that writes it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, insert, or_, select, text, tuple_
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import dialler_db as db
from schemas.outreach import AuditEntry


async def append_audit(
    conn: AsyncConnection,
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    subject_type: str,
    subject_id: str | None,
    detail: Mapping[str, object] | None = None,
    ip_address: str | None = None,
) -> int:
    """Append one entry in the caller's transaction; its id. The address is cut to the
    column's 45 characters (an IPv6 address with a zone fits)."""
    audit_id = await conn.scalar(
        insert(db.audit_log)
        .values(
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            detail=dict(detail or {}),
            ip_address=(ip_address or "")[:45] or None,
        )
        .returning(db.audit_log.c.id)
    )
    return int(audit_id or 0)


async def write_audit(
    conn: AsyncConnection, entry: AuditEntry, *, ip_address: str | None = None
) -> int:
    """Append an activity's or workflow's `AuditEntry` in the caller's transaction; its id."""
    return await append_audit(
        conn,
        actor_type=entry.actor_type,
        actor_id=entry.actor_id,
        action=entry.action,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        detail=entry.detail,
        ip_address=ip_address,
    )


async def entries_about(
    conn: AsyncConnection, subjects: Sequence[tuple[str, str]], user_id: int | None = None
) -> list[dict[str, Any]]:
    """The entries whose subject is one of `subjects` ((subject_type, subject_id) pairs),
    or whose detail names `user_id` (e.g. a recording played: subject the call), oldest
    first (subject access)."""
    a = db.audit_log.c
    where = []
    if subjects:
        where.append(tuple_(a.subject_type, a.subject_id).in_(list(subjects)))
    if user_id is not None:
        where.append(a.detail["user_id"].astext == str(user_id))
    if not where:
        return []
    rows = await conn.execute(select(db.audit_log).where(or_(*where)).order_by(a.id))
    return [dict(r._mapping) for r in rows]


# --- the supervisors' audit viewer (issue 12, services.audit_review) ------------------------------


@dataclass(frozen=True)
class AuditSearch:
    """Which entries the audit viewer shows (None: any)."""

    actor: tuple[str, str] | None = None  # (actor_type, actor_id)
    subjects: Sequence[tuple[str, str]] | None = None  # about one of these (type, id)
    action: str | None = None
    since: datetime | None = None  # at or after
    until: datetime | None = None  # before


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor_type: str
    actor_id: str | None
    action: str
    subject_type: str
    subject_id: str | None
    detail: dict[str, Any]
    ip_address: str | None


def _search_statement(search: AuditSearch) -> Select[Any]:
    a = db.audit_log.c
    where: list[ColumnElement[bool]] = []
    if search.actor is not None:
        where += [a.actor_type == search.actor[0], a.actor_id == search.actor[1]]
    if search.subjects is not None:
        where.append(tuple_(a.subject_type, a.subject_id).in_(list(search.subjects)))
    if search.action is not None:
        where.append(a.action == search.action)
    if search.since is not None:
        where.append(a.at >= search.since)
    if search.until is not None:
        where.append(a.at < search.until)
    return select(db.audit_log).where(*where)


def _record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        id=int(row.id),
        at=row.at,
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        action=row.action,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        detail=dict(row.detail or {}),
        ip_address=row.ip_address,
    )


async def search_audit(
    conn: AsyncConnection,
    search: AuditSearch,
    *,
    limit: int,
    older_than: tuple[datetime, int] | None = None,
    newer_than: tuple[datetime, int] | None = None,
) -> list[AuditRecord]:
    """Up to `limit` entries matching `search`, newest first (by time, then id): the newest,
    those just older than `older_than`, or those just newer than `newer_than` (a keyset:
    a page stays put while entries are appended)."""
    a = db.audit_log.c
    statement = _search_statement(search)
    if older_than is not None:
        at, entry_id = older_than
        statement = statement.where(a.at <= at, (a.at < at) | (a.id < entry_id))
    if newer_than is not None:
        at, entry_id = newer_than
        statement = statement.where(a.at >= at, (a.at > at) | (a.id > entry_id))
    ascending = newer_than is not None and older_than is None
    order = [a.at.asc(), a.id.asc()] if ascending else [a.at.desc(), a.id.desc()]
    rows = await conn.execute(statement.order_by(*order).limit(limit))
    found = [_record(row) for row in rows]
    return found[::-1] if ascending else found


async def stream_audit(
    conn: AsyncConnection, search: AuditSearch, *, batch: int = 1_000
) -> AsyncIterator[list[AuditRecord]]:
    """Every entry matching `search`, newest first, in lists of up to `batch`, read through
    a server-side cursor (an export of millions never sits in memory)."""
    a = db.audit_log.c
    statement = _search_statement(search).order_by(a.at.desc(), a.id.desc())
    result = await conn.stream(statement.execution_options(yield_per=batch))
    async for rows in result.partitions(batch):
        yield [_record(row) for row in rows]


# A skip scan of ix_audit_log_action_at: one index probe per distinct action, where
# SELECT DISTINCT reads the whole log (550 ms at two million entries; this, 3 ms).
_ACTIONS = text(
    """
    WITH RECURSIVE found(action) AS (
        SELECT min(action) FROM audit_log
        UNION ALL
        SELECT (SELECT min(later.action) FROM audit_log later WHERE later.action > found.action)
        FROM found WHERE found.action IS NOT NULL
    )
    SELECT action FROM found WHERE action IS NOT NULL
    """
)


async def distinct_actions(conn: AsyncConnection) -> list[str]:
    """Every action the log holds, alphabetically."""
    return [str(r.action) for r in await conn.execute(_ACTIONS)]
