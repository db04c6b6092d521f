"""Magic links (`magic_links`, `magic_link_events`): the one module that reads and writes them.

A link is kept as the SHA-256 of its token, never the token. It is usable while unused and
unexpired; opening it counts a click, using it consumes it (once, atomically). The token
rules themselves (size, hash, hand-off) are in `domain.magic_links`.

Attribution (issue 11): a link carries the contact it was sent from (`source_kind`,
`source_ref`: a call, an SMS, an AI activity) and the agent (`created_by`); its events
(sent, opened, used) are rows of `magic_link_events`, written in the same transaction as the
change they record. After expiry the token hash is purged (`purge_expired_secrets`): the
row, its events and the conversions credited to it stay until the retention cut-off
(`delete_links_created_before`, compliance.recording_retention_months).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    Select,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.attribution import LinkUse
from schemas import dialler_db as db
from schemas.attribution import ContactKind, LinkEvent, LinkSource

_L = db.magic_links.c
_E = db.magic_link_events.c


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
    source: LinkSource | None = None,
) -> NewLink:
    """Keep a new link, expiring `ttl` after the database's now (`record_sent` once it was
    handed to the provider)."""
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
                source_kind=None if source is None else source.kind.value,
                source_ref=None if source is None else source.ref[:64],
            )
            .returning(_L.id, _L.expires_at)
        )
    ).one()
    return NewLink(int(row.id), row.expires_at)


async def _record(conn: AsyncConnection, link_id: int, event: LinkEvent) -> None:
    await conn.execute(insert(db.magic_link_events).values(link_id=link_id, event=event.value))


async def record_sent(conn: AsyncConnection, link_id: int) -> None:
    """The link was handed to the SMS or email provider."""
    await _record(conn, link_id, LinkEvent.SENT)


async def count_click(conn: AsyncConnection, token_hash: str) -> int | None:
    """Count an opening of a usable link; its id, or None (unknown, used or expired)."""
    link_id = await conn.scalar(
        update(db.magic_links)
        .where(_usable(token_hash))
        .values(clicks=_L.clicks + 1, last_clicked_at=func.now())
        .returning(_L.id)
    )
    if link_id is None:
        return None
    await _record(conn, int(link_id), LinkEvent.OPENED)
    return int(link_id)


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
    if row is None:
        return None
    await _record(conn, int(row.id), LinkEvent.USED)
    return UsedLink(int(row.id), int(row.user_id))


# --- retention (the daily clean-up) ---------------------------------------------------------


async def purge_expired_secrets(conn: AsyncConnection, expired_before: datetime) -> int:
    """Forget the token hash of links that expired before `expired_before` (the rows, their
    events and attribution stay); how many were purged."""
    result = await conn.execute(
        update(db.magic_links)
        .where(_L.expires_at < expired_before, _L.token_hash.is_not(None))
        .values(token_hash=None)
    )
    return int(result.rowcount)


async def delete_links_created_before(conn: AsyncConnection, before: datetime) -> int:
    """Delete links (and their events) created before the retention cut-off; how many.
    Conversions credited to them keep their row (`link_id` becomes NULL) until their own
    cut-off."""
    result = await conn.execute(delete(db.magic_links).where(_L.created_at < before))
    return int(result.rowcount)


# --- attribution and the funnel ---------------------------------------------------------------


async def link_uses(
    conn: AsyncConnection, user_ids: Sequence[int], since: datetime, until: datetime
) -> list[LinkUse]:
    """The links these claimants used between `since` and `until` (inclusive)."""
    if not user_ids:
        return []
    rows = await conn.execute(
        select(_L.id, _L.user_id, _L.used_at).where(
            _L.user_id.in_(list(user_ids)), _L.used_at >= since, _L.used_at <= until
        )
    )
    return [LinkUse(int(r.id), int(r.user_id), r.used_at) for r in rows]


@dataclass(frozen=True, slots=True)
class LinkTally:
    """Links sent in a report's period in one group, and what became of them (ever, until
    now): opened (the landing page was shown, or the link was used) and used."""

    sent: int
    opened: int
    used: int


@dataclass(frozen=True)
class LinkBreakdown:
    # (agent who sent it, delivery channel, source kind, the source call's queue)
    by_source: dict[tuple[int | None, str, str | None, str | None], LinkTally]
    by_user: dict[int, LinkTally]  # per claimant, when asked for (else empty)


def _has_event(*events: LinkEvent) -> ColumnElement[bool]:
    return exists().where(_E.link_id == _L.id, _E.event.in_([e.value for e in events]))


CallQueue = Callable[[ColumnElement[Any]], ColumnElement[Any]]


def _sent_between(
    start: datetime, end: datetime, call_queue: CallQueue, zone: str | None = None
) -> Select[Any]:
    """The links sent in [start, end), one row each with what the counts group by (and,
    given `zone`, the day they were created in it)."""
    from_call = and_(
        _L.source_kind == ContactKind.CALL.value, _L.source_ref.regexp_match("^[0-9]{1,18}$")
    )
    queue = case((from_call, call_queue(cast(_L.source_ref, BigInteger))), else_=None)
    columns: list[ColumnElement[Any]] = [
        _L.created_by.label("agent_id"),
        _L.channel,
        _L.source_kind,
        queue.label("queue"),
        _L.user_id,
        _has_event(LinkEvent.OPENED, LinkEvent.USED).label("opened"),
        _has_event(LinkEvent.USED).label("used"),
    ]
    if zone:
        columns.append(cast(func.timezone(zone, _L.created_at), Date).label("day"))
    return select(*columns).where(
        _L.created_at >= start, _L.created_at < end, _has_event(LinkEvent.SENT)
    )


async def link_counts_between(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    call_queue: CallQueue,
    *,
    by_user: bool = False,
) -> LinkBreakdown:
    """Links sent in [start, end) (their `sent` event), counted by the database: by who
    sent them, how, and from which contact (`call_queue`: the calls' owner's queue of a
    call id column, for links sent from a call) and, if `by_user`, by claimant."""
    p = _sent_between(start, end, call_queue).subquery().c
    sets = [tuple_(p.agent_id, p.channel, p.source_kind, p.queue)]
    if by_user:
        sets.append(tuple_(p.user_id))
    rows = await conn.execute(
        select(
            p.agent_id,
            p.channel,
            p.source_kind,
            p.queue,
            p.user_id if by_user else null().label("user_id"),
            (func.grouping(p.agent_id) == 0).label("by_source"),
            func.count().label("sent"),
            func.count().filter(p.opened).label("opened"),
            func.count().filter(p.used).label("used"),
        ).group_by(func.grouping_sets(*sets))
    )
    found = LinkBreakdown({}, {})
    for r in rows:
        tally = LinkTally(int(r.sent), int(r.opened), int(r.used))
        if r.by_source:
            found.by_source[(r.agent_id, r.channel, r.source_kind, r.queue)] = tally
        else:
            found.by_user[int(r.user_id)] = tally
    return found


# The links of settled days, kept in `link_days` (migration 0012) once every link of the day
# has expired: opening and using a link need it usable, so its figures are final then. A row
# without a channel marks a day counted. Filling them is serialised by a transaction lock.
_LINK_DAYS_LOCK = 7_300_014
_K = db.link_days.c


async def keep_link_days(
    conn: AsyncConnection, days: Sequence[date], zone: str, call_queue: CallQueue
) -> list[date]:
    """Count each of these consecutive settled days (in `zone`) into `link_days` if it is not
    counted yet, in the caller's transaction; the days now kept: the first of `days` up to
    the first whose links have not all expired, or that the database's clock says is not a
    day old yet."""
    if not days:
        return []
    await conn.execute(select(func.pg_advisory_xact_lock(_LINK_DAYS_LOCK)))
    now = await conn.scalar(select(func.now()))
    assert now is not None
    final = [d for d in days if _day_bounds(d, zone)[1] <= now - timedelta(days=1)]
    kept = set(await conn.scalars(select(_K.day).where(_K.channel.is_(None), _K.day.in_(final))))
    missing = [d for d in final if d not in kept]
    if missing:  # from the first day with a link still usable on, nothing is final yet
        first_usable = await conn.scalar(
            select(func.min(_L.created_at)).where(
                _L.created_at >= _day_bounds(missing[0], zone)[0],
                _L.created_at < _day_bounds(missing[-1], zone)[1],
                _L.expires_at > now,
            )
        )
        if first_usable is not None:
            final = [d for d in final if _day_bounds(d, zone)[1] <= first_usable]
    missing = [d for d in final if d not in kept]
    if missing:
        begins, _ = _day_bounds(min(missing), zone)
        _, ends = _day_bounds(max(missing), zone)
        p = _sent_between(begins, ends, call_queue, zone).subquery().c
        counted = (
            select(
                p.day, p.agent_id, p.channel, p.source_kind, p.queue, func.count(),
                func.count().filter(p.opened), func.count().filter(p.used),
            )
            .where(p.day.in_(missing))
            .group_by(p.day, p.agent_id, p.channel, p.source_kind, p.queue)
        )  # fmt: skip
        columns = ["day", "agent_id", "channel", "source_kind", "queue", "sent", "opened", "used"]
        await conn.execute(insert(db.link_days).from_select(columns, counted))
        await conn.execute(
            insert(db.link_days),
            [{"day": d, "sent": 0, "opened": 0, "used": 0} for d in missing],
        )
    return final


def _day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    at = ZoneInfo(zone)
    return (
        datetime.combine(day, time.min, at),
        datetime.combine(day + timedelta(days=1), time.min, at),
    )


async def kept_link_breakdown(conn: AsyncConnection, first: date, last: date) -> LinkBreakdown:
    """The kept counts of the days from `first` to `last` (all kept), added up."""
    rows = await conn.execute(
        select(
            _K.agent_id,
            _K.channel,
            _K.source_kind,
            _K.queue,
            func.sum(_K.sent).label("sent"),
            func.sum(_K.opened).label("opened"),
            func.sum(_K.used).label("used"),
        )
        .where(_K.day >= first, _K.day <= last, _K.channel.is_not(None))
        .group_by(_K.agent_id, _K.channel, _K.source_kind, _K.queue)
    )
    return LinkBreakdown(
        {
            (r.agent_id, r.channel, r.source_kind, r.queue): LinkTally(
                int(r.sent), int(r.opened), int(r.used)
            )
            for r in rows
        },
        {},
    )


_Key = TypeVar("_Key")


def _add(into: dict[_Key, LinkTally], more: Mapping[_Key, LinkTally]) -> None:
    for key, tally in more.items():
        was = into.get(key)
        into[key] = (
            tally
            if was is None
            else LinkTally(was.sent + tally.sent, was.opened + tally.opened, was.used + tally.used)
        )


def combined(parts: Iterable[LinkBreakdown]) -> LinkBreakdown:
    """The breakdowns of consecutive periods added up."""
    found = LinkBreakdown({}, {})
    for part in parts:
        _add(found.by_source, part.by_source)
        _add(found.by_user, part.by_user)
    return found


# --- one claimant's links, for the supervisor's claimant page ---------------------------------


@dataclass(frozen=True, slots=True)
class ClaimantLink:
    link_id: int
    channel: str
    purpose: str
    created_at: datetime
    expires_at: datetime
    sent: bool
    opened: bool  # its landing page was shown, or it was used
    used_at: datetime | None
    clicks: int
    created_by_name: str | None
    source_kind: str | None


async def links_of(
    conn: AsyncConnection,
    user_id: int,
    limit: int,
    agent_name: Callable[[ColumnElement[Any]], ColumnElement[Any]],
) -> list[ClaimantLink]:
    """The claimant's latest links, newest first, with what became of each (`agent_name`:
    the agents' owner's display name of an agent id column). Never the token's hash."""
    rows = await conn.execute(
        select(
            _L.id,
            _L.channel,
            _L.purpose,
            _L.created_at,
            _L.expires_at,
            _has_event(LinkEvent.SENT).label("sent"),
            _has_event(LinkEvent.OPENED, LinkEvent.USED).label("opened"),
            _L.used_at,
            _L.clicks,
            agent_name(_L.created_by).label("created_by_name"),
            _L.source_kind,
        )
        .where(_L.user_id == user_id)
        .order_by(_L.created_at.desc(), _L.id.desc())
        .limit(limit)
    )
    return [
        ClaimantLink(
            int(r.id), r.channel, r.purpose, r.created_at, r.expires_at, bool(r.sent),
            bool(r.opened) or r.used_at is not None, r.used_at, int(r.clicks),
            r.created_by_name, r.source_kind,
        )
        for r in rows
    ]  # fmt: skip


# --- subject access (issue 11): everything kept about one claimant --------------------------

_NOT_EXPORTED = frozenset({"token_hash"})  # a hash of a secret: never leaves the dialler


async def subject_access(conn: AsyncConnection, user_id: int) -> list[dict[str, object]]:
    """The claimant's links, oldest first, without the token's hash."""
    columns = [c for c in db.magic_links.c if c.name not in _NOT_EXPORTED]
    rows = await conn.execute(select(*columns).where(_L.user_id == user_id).order_by(_L.id))
    return [dict(r._mapping) for r in rows]
