"""Magic links (`magic_links`): the one module that reads and writes them.

A link is kept as the SHA-256 of its token, never the token. It is usable while unused and
unexpired; opening it counts a click, using it consumes it (once, atomically). The token
rules themselves (size, hash, hand-off) are in `domain.magic_links`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import dialler_db as db

_L = db.magic_links.c


@dataclass(frozen=True, slots=True)
class NewLink:
    link_id: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UsedLink:
    link_id: int
    user_id: int


def _usable(token_hash: str) -> ColumnElement[bool]:
    return (_L.token_hash == token_hash) & _L.used_at.is_(None) & (_L.expires_at > func.now())


async def create_link(
    conn: AsyncConnection,
    *,
    user_id: int,
    token_hash: str,
    channel: str,
    purpose: str,
    created_by: int | None,
    ttl: timedelta,
) -> NewLink:
    """Keep a new link, expiring `ttl` after the database's now."""
    row = (
        await conn.execute(
            insert(db.magic_links)
            .values(
                user_id=user_id,
                token_hash=token_hash,
                channel=channel,
                purpose=purpose,
                created_by=created_by,
                expires_at=func.now() + ttl,
            )
            .returning(_L.id, _L.expires_at)
        )
    ).one()
    return NewLink(int(row.id), row.expires_at)


async def count_click(conn: AsyncConnection, token_hash: str) -> int | None:
    """Count an opening of a usable link; its id, or None (unknown, used or expired)."""
    link_id = await conn.scalar(
        update(db.magic_links)
        .where(_usable(token_hash))
        .values(clicks=_L.clicks + 1, last_clicked_at=func.now())
        .returning(_L.id)
    )
    return None if link_id is None else int(link_id)


async def consume(conn: AsyncConnection, token_hash: str) -> UsedLink | None:
    """Mark a usable link used, once: of two concurrent uses only one gets the link."""
    row = (
        await conn.execute(
            update(db.magic_links)
            .where(_usable(token_hash))
            .values(used_at=func.now())
            .returning(_L.id, _L.user_id)
        )
    ).one_or_none()
    return None if row is None else UsedLink(int(row.id), int(row.user_id))


async def delete_expired_links(conn: AsyncConnection, before: datetime) -> int:
    """Delete the links that expired before `before`; how many."""
    result = await conn.execute(delete(db.magic_links).where(_L.expires_at < before))
    return int(result.rowcount)
