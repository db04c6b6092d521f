"""Conversions (`conversions`): the one module that reads and writes them (issue 11).

`attribute_batch` is what the CDC worker runs for the conversions of one source item: the
claimants' contacts (calls from `adapters.call_log`, outbound texts from
`adapters.sms_outbox`) and link uses (`adapters.magic_links`) in the window are read in one
query each, `domain.attribution` picks the credited contact and link, and ONE insert writes
them all. The insert skips what is already there (ON CONFLICT DO NOTHING on the change
event id and on the subject), so a redelivered item writes nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, cast, delete, func, null, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import call_log, magic_links, sms_outbox
from domain.attribution import Attribution, Conversion, attribute_all, look_back
from schemas import dialler_db as db
from schemas.attribution import ContactKind, ConversionKind

_V = db.conversions.c


async def record(conn: AsyncConnection, attributions: Sequence[Attribution]) -> int:
    """Keep attributed conversions, one statement; how many were new."""
    if not attributions:
        return 0
    rows = []
    for a in attributions:
        c, contact = a.conversion, a.contact
        rows.append(
            {
                "event_id": c.event_id[:200],
                "subject_key": c.subject_key,
                "user_id": c.user_id,
                "kind": c.kind.value,
                "claim_id": c.claim_id,
                "requirement_id": c.requirement_id,
                "occurred_at": c.occurred_at,
                "contact_kind": None if contact is None else contact.kind.value,
                "contact_ref": None if contact is None else contact.ref,
                "contact_at": None if contact is None else contact.at,
                "agent_id": None if contact is None else contact.agent_id,
                "queue": None if contact is None else contact.queue,
                "link_id": a.link_id,
            }
        )
    result = await conn.execute(
        pg_insert(db.conversions).values(rows).on_conflict_do_nothing().returning(_V.id)
    )
    return len(result.all())


async def attribute_batch(
    engine: AsyncEngine, conversions: Sequence[Conversion], window: timedelta
) -> int:
    """Attribute and keep these conversions (one transaction); how many were new."""
    if not conversions:
        return 0
    span = look_back(conversions, window)
    async with engine.begin() as conn:
        calls = await call_log.calls_as_contacts(conn, span.user_ids, span.since, span.until)
        texts = await sms_outbox.outbound_as_contacts(conn, span.user_ids, span.since, span.until)
        uses = await magic_links.link_uses(conn, span.user_ids, span.since, span.until)
        attributed = attribute_all(conversions, calls + texts, uses, window)
        return await record(conn, attributed)


class ConversionRecorder:
    """What the CDC worker is given: the dialler engine and the attribution window."""

    def __init__(self, engine: AsyncEngine, window: timedelta) -> None:
        self._engine = engine
        self._window = window

    async def __call__(self, conversions: Sequence[Conversion]) -> int:
        return await attribute_batch(self._engine, conversions, self._window)


@dataclass(frozen=True)
class ConversionRow:
    user_id: int
    kind: ConversionKind
    occurred_at: datetime
    claim_id: int | None
    contact_kind: ContactKind | None
    contact_ref: str | None
    agent_id: int | None
    queue: str | None
    link_id: int | None


@dataclass(frozen=True, slots=True)
class ConversionTally:
    signed: int
    documents: int  # requirements received or approved


@dataclass(frozen=True)
class ConversionBreakdown:
    # (credited agent, the credited call's queue, the credited contact's kind)
    by_credit: dict[tuple[int | None, str | None, ContactKind | None], ConversionTally]
    by_claim: dict[tuple[int, int | None], ConversionTally]  # (user id, claim id), if asked


async def conversion_counts_between(
    conn: AsyncConnection, start: datetime, end: datetime, *, by_claim: bool = False
) -> ConversionBreakdown:
    """Conversions that occurred in [start, end), counted by the database by what they
    are credited to and, if `by_claim`, by claimant and claim."""
    signed = _V.kind == ConversionKind.SIGNED.value
    period = (
        select(
            _V.agent_id, _V.queue, _V.contact_kind, _V.user_id, _V.claim_id, signed.label("signed")
        )
        .where(_V.occurred_at >= start, _V.occurred_at < end)
        .subquery()
    )
    p = period.c
    sets = [tuple_(p.agent_id, p.queue, p.contact_kind)]
    if by_claim:
        sets.append(tuple_(p.user_id, p.claim_id))
    rows = await conn.execute(
        select(
            p.agent_id,
            p.queue,
            p.contact_kind,
            p.user_id if by_claim else null().label("user_id"),
            p.claim_id if by_claim else null().label("claim_id"),
            (func.grouping(p.agent_id) == 0).label("by_credit"),
            func.count().filter(p.signed).label("signed"),
            func.count().filter(~p.signed).label("documents"),
        ).group_by(func.grouping_sets(*sets))
    )
    found = ConversionBreakdown({}, {})
    for r in rows:
        tally = ConversionTally(int(r.signed), int(r.documents))
        if r.by_credit:
            kind = None if r.contact_kind is None else ContactKind(r.contact_kind)
            found.by_credit[(r.agent_id, r.queue, kind)] = tally
        else:
            found.by_claim[(int(r.user_id), r.claim_id)] = tally
    return found


async def conversions_of(conn: AsyncConnection, user_id: int, limit: int) -> list[ConversionRow]:
    """The claimant's conversions, newest first, with the contact and link credited."""
    rows = await conn.execute(
        select(
            _V.user_id,
            _V.kind,
            _V.occurred_at,
            _V.claim_id,
            _V.contact_kind,
            _V.contact_ref,
            _V.agent_id,
            _V.queue,
            _V.link_id,
        )
        .where(_V.user_id == user_id)
        .order_by(_V.occurred_at.desc(), _V.id.desc())
        .limit(limit)
    )
    return [
        ConversionRow(
            user_id=int(r.user_id),
            kind=ConversionKind(r.kind),
            occurred_at=r.occurred_at,
            claim_id=r.claim_id,
            contact_kind=None if r.contact_kind is None else ContactKind(r.contact_kind),
            contact_ref=r.contact_ref,
            agent_id=r.agent_id,
            queue=r.queue,
            link_id=r.link_id,
        )
        for r in rows
    ]


async def delete_before(conn: AsyncConnection, before: datetime) -> int:
    """Retention: delete conversions that occurred before the cut-off; how many."""
    result = await conn.execute(delete(db.conversions).where(_V.occurred_at < before))
    return int(result.rowcount)


# --- the learned rates (issue 14): which attempts converted -----------------------------------


def converted_calls(since: datetime) -> Select[Any]:
    """The calls credited with a conversion (`call_id`, each once) among contacts made at or
    after `since`: for the attempt count `call_log.attempt_counts` builds. A call's
    contact_ref is its id (`call_log.calls_as_contacts`); anything else is skipped."""
    return (
        select(cast(_V.contact_ref, BigInteger).label("call_id"))
        .where(
            _V.contact_kind == ContactKind.CALL.value,
            _V.contact_at >= since,
            _V.contact_ref.regexp_match("^[0-9]{1,18}$"),
        )
        .distinct()
    )


def converted_texts(since: datetime) -> Select[Any]:
    """The texts credited with a conversion among contacts made at or after `since`: who
    was texted, by which agent, when (a text belongs to the AI SMS conversation of the same
    claimant and agent that was going at the time: `ai_conversations.sms_attempt_counts`)."""
    return select(_V.user_id, _V.agent_id, _V.contact_at).where(
        _V.contact_kind == ContactKind.SMS.value, _V.contact_at >= since
    )


# --- the scoring evaluation and the live split (issue 14) -------------------------------------


@dataclass(frozen=True)
class ClaimantConversion:
    """A conversion of a claimant, with what the replay needs: when, of what, and the
    contact it is credited to."""

    user_id: int
    kind: ConversionKind
    occurred_at: datetime
    requirement_id: int | None
    contact_kind: ContactKind | None
    contact_ref: str | None


async def conversions_since(
    conn: AsyncConnection, user_ids: Sequence[int], since: datetime
) -> list[ClaimantConversion]:
    """These claimants' conversions that occurred at or after `since`, oldest first
    (`services.scoring_evaluation`: which contacts converted, and what to undo to see a
    claimant as they were when called)."""
    if not user_ids:
        return []
    rows = await conn.execute(
        select(
            _V.user_id, _V.kind, _V.occurred_at, _V.requirement_id, _V.contact_kind,
            _V.contact_ref,
        )
        .where(_V.user_id.in_(sorted(set(user_ids))), _V.occurred_at >= since)
        .order_by(_V.occurred_at, _V.id)
    )  # fmt: skip
    return [
        ClaimantConversion(
            user_id=int(r.user_id),
            kind=ConversionKind(r.kind),
            occurred_at=r.occurred_at,
            requirement_id=r.requirement_id,
            contact_kind=None if r.contact_kind is None else ContactKind(r.contact_kind),
            contact_ref=r.contact_ref,
        )
        for r in rows
    ]


def conversions_per_call(since: datetime) -> Select[int, int]:
    """The conversions credited to each call (`call_id`, `conversions`) among contacts made
    at or after `since`, for another owner's statement (the live split's arms,
    `call_log.arm_counts`). A call's contact_ref is its id; anything else is skipped."""
    call_id = cast(_V.contact_ref, BigInteger)
    return (
        select(call_id.label("call_id"), func.count().label("conversions"))
        .where(
            _V.contact_kind == ContactKind.CALL.value,
            _V.contact_at >= since,
            _V.contact_ref.regexp_match("^[0-9]{1,18}$"),
        )
        .group_by(call_id)
    )
