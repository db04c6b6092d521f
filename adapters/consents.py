"""Consent: the owner of `consent_records` (what agents confirmed on a call), and the one
place the two sources of consent (those rows and the main app's `consents`, read through
`adapters.replica_reader`) become `domain.consent.ConsentEvent`s.

`consent_records` is append-only (a trigger refuses UPDATE and DELETE): a withdrawal is a
row with `given = false`, so the evidence of every grant stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.consent import ConsentEvent, consented_channels
from schemas import dialler_db as db
from schemas.enums import ConsentChannel

_C = db.consent_records.c


@dataclass(frozen=True)
class ConsentCapture:
    """Consent an agent confirmed with the claimant (or a withdrawal they reported)."""

    user_id: int
    channel: ConsentChannel
    given: bool
    agent_id: int | None
    call_id: int | None
    source: str
    wording: str


@dataclass(frozen=True)
class ConsentRecord:
    """One grant or withdrawal, from either source, as the console and the export show it."""

    channel: str
    given: bool
    at: datetime
    source: str  # "main app: web_form", "console (agent 7, call 12)"
    wording: str
    evidence: str | None
    withdrawn_at: datetime | None = None  # main-app grants: when withdrawn, if they were


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def capture(conn: AsyncConnection, consent: ConsentCapture) -> int:
    result = await conn.execute(
        insert(db.consent_records)
        .values(
            user_id=consent.user_id,
            channel=consent.channel.value,
            given=consent.given,
            agent_id=consent.agent_id,
            call_id=consent.call_id,
            source=consent.source,
            wording=consent.wording,
        )
        .returning(_C.id)
    )
    return int(result.scalar_one())


async def captured(
    conn: AsyncConnection, user_ids: Sequence[int]
) -> dict[int, list[ConsentRecord]]:
    """The consents agents captured for these claimants, oldest first."""
    found: dict[int, list[ConsentRecord]] = {}
    if not user_ids:
        return found
    rows = await conn.execute(
        select(_C.user_id, _C.channel, _C.given, _C.at, _C.source, _C.agent_id, _C.call_id,
               _C.wording)
        .where(_C.user_id.in_(sorted(set(user_ids))))
        .order_by(_C.at, _C.id)
    )  # fmt: skip
    for row in rows:
        by = f"agent {row.agent_id}" if row.agent_id is not None else "no agent"
        on = f", call {row.call_id}" if row.call_id is not None else ""
        found.setdefault(int(row.user_id), []).append(
            ConsentRecord(
                channel=row.channel, given=bool(row.given), at=_utc(row.at),
                source=f"{row.source} ({by}{on})", wording=row.wording, evidence=None,
            )
        )  # fmt: skip
    return found


def from_replica(rows: Iterable[Any]) -> list[ConsentRecord]:
    """The main app's `consents` rows (see `ReplicaReader.consents`) as records."""
    return [
        ConsentRecord(
            channel=str(row.channel), given=True, at=_utc(row.given_at),
            source=f"main app: {row.source}", wording=str(row.wording),
            evidence=row.evidence_ref,
            withdrawn_at=None if row.withdrawn_at is None else _utc(row.withdrawn_at),
        )
        for row in rows
    ]  # fmt: skip


def events_of(records: Iterable[ConsentRecord]) -> list[ConsentEvent]:
    """Grants and withdrawals in time, for `domain.consent.consented_channels`. A channel
    the dialler does not know (a newer main app) is ignored rather than guessed."""
    known = {channel.value: channel for channel in ConsentChannel}
    events: list[ConsentEvent] = []
    for record in records:
        channel = known.get(record.channel)
        if channel is None:
            continue
        events.append(ConsentEvent(channel, record.given, record.at))
        if record.withdrawn_at is not None:
            events.append(ConsentEvent(channel, False, record.withdrawn_at))
    return events


async def records_of(
    conn: AsyncConnection, user_id: int, replica_rows: Iterable[Any]
) -> list[ConsentRecord]:
    """Both sources of one claimant's consent (the main app's rows, read by the caller
    through the replica reader, and what agents captured), oldest first."""
    captured_here = (await captured(conn, [user_id])).get(user_id, [])
    return sorted(from_replica(replica_rows) + captured_here, key=lambda r: r.at)


def in_force(records: Iterable[ConsentRecord], now: datetime) -> frozenset[str]:
    """The channels with consent in force at `now` (`domain.consent.consented_channels`)."""
    return consented_channels(events_of(records), now)
