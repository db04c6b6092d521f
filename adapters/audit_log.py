"""The append-only audit log (`audit_log`): the one module that writes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, or_, select, tuple_
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
