"""The append-only audit log (`audit_log`): the one module that writes it."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import dialler_db as db
from schemas.outreach import AuditEntry


async def write_audit(
    conn: AsyncConnection, entry: AuditEntry, *, ip_address: str | None = None
) -> int:
    """Append one entry in the caller's transaction; its id."""
    audit_id = await conn.scalar(
        insert(db.audit_log)
        .values(
            actor_type=entry.actor_type,
            actor_id=entry.actor_id,
            action=entry.action,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            detail=entry.detail,
            ip_address=(ip_address or "")[:45] or None,
        )
        .returning(db.audit_log.c.id)
    )
    return int(audit_id or 0)
