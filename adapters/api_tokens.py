"""API tokens for AI agents and integrations (`api_tokens`): the one module that reads and
writes them.

A token is `rmc_` and 43 URL-safe characters (256 random bits). It is shown once, when it
is issued; the table keeps its SHA-256 (a plain hash is enough for a secret that random:
there is nothing to guess) and its first characters (`prefix`), to tell tokens apart on a
page. Every API request that presents one is one indexed lookup (`live_token`): the token's
hash, not revoked, not expired, its agent active. So revoking a token, or disabling its
agent, takes effect on the next request in every web process, with no cache to clear.
`last_used_at` is written at most once a minute per token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import agent_store
from schemas import dialler_db as db

PREFIX = "rmc_"
_RANDOM_BYTES = 32  # 43 characters of base64url
PREFIX_SHOWN = 12  # "rmc_" and 8 characters: the column holds 16
TOUCH_EVERY = timedelta(seconds=60)
_FORMAT = re.compile(r"rmc_[A-Za-z0-9_-]{43}")

_T = db.api_tokens.c


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as listed (never the token itself)."""

    id: int
    agent_id: int
    label: str
    prefix: str
    issued_by: int | None  # None: issued from the CLI
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class LiveToken:
    token_id: int
    last_used_at: datetime | None
    agent: agent_store.Agent


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(presented: str) -> bool:
    """Whether a bearer credential is one of ours (and not a JWT), before any lookup."""
    return _FORMAT.fullmatch(presented) is not None


async def add_token(
    conn: AsyncConnection,
    *,
    agent_id: int,
    label: str,
    token: str,
    issued_by: int | None,
    expires_at: datetime | None,
) -> TokenRecord:
    row = (
        await conn.execute(
            insert(db.api_tokens)
            .values(
                agent_id=agent_id,
                label=label,
                token_hash=token_hash(token),
                prefix=token[:PREFIX_SHOWN],
                issued_by=issued_by,
                expires_at=expires_at,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return _record(row)


async def tokens_of(conn: AsyncConnection, agent_id: int) -> list[TokenRecord]:
    """The agent's tokens, newest first (revoked and expired ones too: the history)."""
    rows = await conn.execute(
        select(*_COLUMNS).where(_T.agent_id == agent_id).order_by(_T.id.desc())
    )
    return [_record(r) for r in rows]


async def token_record(conn: AsyncConnection, token_id: int) -> TokenRecord | None:
    row = (await conn.execute(select(*_COLUMNS).where(_T.id == token_id))).one_or_none()
    return None if row is None else _record(row)


async def revoke_token(conn: AsyncConnection, token_id: int, at: datetime) -> bool:
    """Revoke the token unless it already is; whether this call revoked it."""
    result = await conn.execute(
        update(db.api_tokens)
        .where(_T.id == token_id, _T.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)


async def revoke_presented(conn: AsyncConnection, token: str, at: datetime) -> int | None:
    """Revoke the token with this value (its holder signing out); its id if this revoked it."""
    result = await conn.execute(
        update(db.api_tokens)
        .where(_T.token_hash == token_hash(token), _T.revoked_at.is_(None))
        .values(revoked_at=at)
        .returning(_T.id)
    )
    revoked = result.scalar_one_or_none()
    return None if revoked is None else int(revoked)


# Every API request with a token runs this: built once. The unique index on token_hash
# finds the row; the agent is joined by its primary key.
LIVE_TOKEN = agent_store.join_active_agent(
    select(_T.id, _T.agent_id, _T.last_used_at).where(
        _T.token_hash == bindparam("token_hash"),
        _T.revoked_at.is_(None),
        or_(_T.expires_at.is_(None), _T.expires_at > bindparam("now", type_=_T.expires_at.type)),
    ),
    _T.agent_id,
)


async def live_token(conn: AsyncConnection, token: str, now: datetime) -> LiveToken | None:
    """The unrevoked, unexpired token with this value and its active agent, or None."""
    row = (
        await conn.execute(LIVE_TOKEN, {"token_hash": token_hash(token), "now": now})
    ).one_or_none()
    if row is None:
        return None
    return LiveToken(int(row.id), row.last_used_at, agent_store.agent_of(row, row.agent_id))


async def touch_token(conn: AsyncConnection, token_id: int, at: datetime) -> None:
    """Record a use, unless another request (in any process) did in the last minute."""
    await conn.execute(
        update(db.api_tokens)
        .where(
            _T.id == token_id,
            or_(_T.last_used_at.is_(None), _T.last_used_at <= at - TOUCH_EVERY),
        )
        .values(last_used_at=at)
    )


_COLUMNS = (
    _T.id,
    _T.agent_id,
    _T.label,
    _T.prefix,
    _T.issued_by,
    _T.created_at,
    _T.expires_at,
    _T.last_used_at,
    _T.revoked_at,
)


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        int(row.id),
        int(row.agent_id),
        row.label,
        row.prefix,
        row.issued_by,
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )
