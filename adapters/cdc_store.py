"""CDC state in the dialler DB: source positions (`cdc_offsets`) and dead letters
(`cdc_dead_letters`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import dialler_db as db
from schemas.cdc import DeadLetter

MAX_REASON = 2000


class CdcStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- positions ---------------------------------------------------------------------------

    async def load_position(self, source: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(db.cdc_offsets.c.position).where(db.cdc_offsets.c.source == source)
            )
        return dict(value) if isinstance(value, dict) else None

    async def save_position(self, source: str, position: dict[str, Any], applied: int = 0) -> None:
        """Store the position (upsert) and add `applied` to the events applied so far."""
        table = db.cdc_offsets
        statement = pg_insert(table).values(
            source=source, position=position, events_applied=applied, updated_at=func.now()
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.source],
            set_={
                "position": statement.excluded.position,
                "events_applied": table.c.events_applied + statement.excluded.events_applied,
                "updated_at": func.now(),
            },
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def offsets(self) -> dict[str, tuple[dict[str, Any], int, datetime]]:
        """Every stored position: source -> (position, events applied, updated at)."""
        table = db.cdc_offsets
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(table.c.source, table.c.position, table.c.events_applied, table.c.updated_at)
            )
            return {
                str(source): (dict(position), int(applied), updated)
                for source, position, applied, updated in rows
            }

    # --- dead letters ------------------------------------------------------------------------

    async def add_dead_letter(self, source: str, raw_payload: str, reason: str) -> int:
        async with self._engine.begin() as conn:
            return int(
                await conn.scalar(
                    insert(db.cdc_dead_letters)
                    .values(source=source, raw_payload=raw_payload, reason=reason[:MAX_REASON])
                    .returning(db.cdc_dead_letters.c.id)
                )
            )

    async def dead_letters(
        self, *, pending_only: bool = True, ids: list[int] | None = None, limit: int = 1000
    ) -> list[DeadLetter]:
        table = db.cdc_dead_letters
        query = select(table).order_by(table.c.id).limit(limit)
        if pending_only:
            query = query.where(table.c.replayed_at.is_(None))
        if ids is not None:
            query = query.where(table.c.id.in_(ids))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DeadLetter(
                id=row.id,
                source=row.source,
                raw_payload=row.raw_payload,
                reason=row.reason,
                received_at=row.received_at,
                replayed_at=row.replayed_at,
                replay_count=row.replay_count,
            )
            for row in rows
        ]

    async def pending_dead_letters(self) -> int:
        table = db.cdc_dead_letters
        async with self._engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.replayed_at.is_(None))
            )
        return int(count or 0)

    async def record_replay(self, dead_letter_id: int, *, ok: bool, reason: str = "") -> None:
        """A replay attempt: success marks the letter replayed; a failure keeps it pending
        with the new reason."""
        table = db.cdc_dead_letters
        values: dict[str, Any] = {"replay_count": table.c.replay_count + 1}
        if ok:
            values["replayed_at"] = func.now()
        else:
            values["reason"] = reason[:MAX_REASON]
        async with self._engine.begin() as conn:
            await conn.execute(update(table).where(table.c.id == dead_letter_id).values(**values))

    async def purge_replayed(self, before: datetime) -> int:
        table = db.cdc_dead_letters
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(table).where(table.c.replayed_at.is_not(None), table.c.replayed_at < before)
            )
        return int(result.rowcount)
