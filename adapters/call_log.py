"""Calls and their outcomes, callbacks and claimant notes (`calls`, `callbacks`,
`claimant_notes`): every read and write of the three tables.

Writers: the outreach workflow's activities (an outcome once per claim, a callback that
replaces the pending one, due callbacks completed, notes), the calling blueprint and the
Twilio webhooks (a call placed, its legs' statuses only moving forward, its recording once),
and the demo loader. A function takes a connection when its caller decides the transaction
(an outcome and its audit entry commit together), an engine otherwise. The statements a
claimant's refresh runs (`contact_summary`, `claimant_record`) are built once, at import.

Agents' display names come from the agents' owner: the views that show them take an
`AgentName`, the name of an agent id as a column expression, so each stays one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Insert,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    null,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.agent_store import active_person
from adapters.learned_rates import count_attempts, slot_of
from adapters.task_store import score_arm_of
from domain.abandoned_calls import RATE_WINDOW, AbandonRate, abandon_rate
from domain.attribution import SPOKE_DISPOSITIONS, Contact
from domain.dispositions import EFFECTS, Disposition
from domain.floor import CallGroup
from domain.phones import phone_key
from schemas import dialler_db as db
from schemas.attribution import ContactKind
from schemas.enums import CallbackStatus, RecordingStore
from schemas.learned_rates import AttemptCounts
from schemas.outreach import RecordOutcome, SaveCallback

_C = db.calls.c
_CB = db.callbacks.c
_N = db.claimant_notes.c

# calls.direction: we called (every call until issue 14), or the claimant rang us back
OUTBOUND = "outbound"
INBOUND = "inbound"

# The display name of the agent whose id a column holds (NULL when none): given by the
# agents' owner, used as a correlated scalar subquery.
AgentName = Callable[[ColumnElement[Any]], ColumnElement[Any]]


@dataclass(frozen=True)
class Call:
    """One `calls` row (every column; a test keeps the two in step)."""

    id: int
    user_id: int
    task_id: int | None
    agent_id: int | None
    queue: str | None
    provider: str
    provider_call_sid: str | None
    to_number: str
    phone_key: str | None
    from_number: str | None
    status: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int | None
    abandoned: bool
    answered_by: str | None
    agent_left_at: datetime | None
    agent_seconds: int | None
    disposition: str | None
    notes: str | None
    recording_sid: str | None
    recording_url: str | None
    recording_duration_seconds: int | None
    recording_notice_played: bool
    outcome_key: str | None
    recording_store: str | None
    recording_key: str | None
    recording_deleted_at: datetime | None
    transcript: str | None
    direction: str
    score_arm: str | None


def _call(row: Row[Any] | None) -> Call | None:
    return None if row is None else Call(**row._mapping)


# --- what the outreach workflow reads (activities.outreach) --------------------------------------


_POSITIVE = [d.value for d, effect in EFFECTS.items() if effect.positive]


def _contact_history_statement() -> Select[Any]:
    """One statement: the claimant's attempt counts and times, the number's counts (a
    number can be shared), and the last ten dispositions, newest first. Built once: building
    the subqueries' column collections cost more than running the statement."""
    day_start = bindparam("day_start", type_=_C.started_at.type)
    week_ago = bindparam("week_ago", type_=_C.started_at.type)
    mine = (
        select(
            func.count().filter(_C.started_at >= day_start).label("today"),
            func.count().filter(_C.started_at >= week_ago).label("week"),
            func.max(_C.started_at).label("last_contact_at"),
            func.max(_C.started_at).filter(_C.abandoned).label("last_abandoned_at"),
        )
        # a claimant ringing us back (issue 14) is no attempt of ours: caps count outbound
        .where(_C.user_id == bindparam("user_id"), _C.direction == OUTBOUND)
        .subquery("mine")
    )
    number = (
        select(
            func.count().filter(_C.started_at >= day_start).label("today"),
            func.count().filter(_C.started_at >= week_ago).label("week"),
            # an abandoned call locks the number, whoever it was for
            func.max(_C.started_at).filter(_C.abandoned).label("last_abandoned_at"),
        )
        # `= NULL` matches nothing: a claimant with no number shares no attempts
        .where(
            _C.phone_key == bindparam("phone_key", type_=_C.phone_key.type),
            _C.direction == OUTBOUND,
        )
        .subquery("number")
    )
    last = (
        select(_C.disposition, _C.ended_at, _C.started_at)
        .where(_C.user_id == bindparam("user_id"), _C.disposition.is_not(None))
        .order_by(_C.started_at.desc())
        .limit(10)
        .subquery("last")
    )
    # who recorded the latest positive outcome, when that is an active person (never an AI
    # agent): the claimant's previous successful agent (domain.agent_preference)
    latest_positive = (
        select(_C.agent_id)
        .where(_C.user_id == bindparam("user_id"), _C.disposition.in_(_POSITIVE))
        .order_by(_C.started_at.desc(), _C.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(
            active_person(latest_positive).label("previous_agent_id"),
            mine.c.today,
            mine.c.week,
            mine.c.last_contact_at,
            func.greatest(mine.c.last_abandoned_at, number.c.last_abandoned_at).label(
                "last_abandoned_at"
            ),
            number.c.today.label("number_today"),
            number.c.week.label("number_week"),
            last.c.disposition,
            last.c.ended_at,
            last.c.started_at,
        )
        .select_from(mine.join(number, true()).outerjoin(last, true()))
        .order_by(last.c.started_at.desc().nulls_last())
    )


CONTACT_HISTORY = _contact_history_statement()


@dataclass(frozen=True)
class PastOutcome:
    disposition: str
    at: datetime  # when the call ended (or started, when it has no end)


@dataclass(frozen=True)
class ContactSummary:
    attempts_today: int
    attempts_7d: int
    number_attempts_today: int
    number_attempts_7d: int
    last_contact_at: datetime | None
    last_abandoned_at: datetime | None  # the claimant's, or their number's
    outcomes: list[PastOutcome]  # the last ten, newest first
    # the active person who recorded the latest positive outcome (None: none, or the AI)
    previous_agent_id: int | None = None


async def contact_summary(
    conn: AsyncConnection,
    *,
    user_id: int,
    phone_key: str | None,
    day_start: datetime,
    week_ago: datetime,
) -> ContactSummary:
    """See `CONTACT_HISTORY`: one round trip."""
    parameters = {
        "user_id": user_id,
        "phone_key": phone_key,
        "day_start": day_start,
        "week_ago": week_ago,
    }
    rows = (await conn.execute(CONTACT_HISTORY, parameters)).all()
    first = rows[0]
    return ContactSummary(
        attempts_today=int(first.today),
        attempts_7d=int(first.week),
        number_attempts_today=int(first.number_today),
        number_attempts_7d=int(first.number_week),
        last_contact_at=first.last_contact_at,
        last_abandoned_at=first.last_abandoned_at,
        outcomes=[
            PastOutcome(row.disposition, row.ended_at or row.started_at)
            for row in rows
            if row.disposition is not None
        ],
        previous_agent_id=None if first.previous_agent_id is None else int(first.previous_agent_id),
    )


@dataclass(frozen=True)
class QueueOutcomes:
    queue: str | None
    positive: int  # outcomes that moved a claim forward
    total: int  # outcomes recorded


async def outcomes_by_queue(
    conn: AsyncConnection, positive: list[str], window: timedelta
) -> list[QueueOutcomes]:
    """Per queue, over calls started within `window`: outcomes in `positive`, and all."""
    rows = await conn.execute(
        select(
            _C.queue,
            func.count().filter(_C.disposition.in_(positive)),
            func.count().filter(_C.disposition.is_not(None)),
        )
        .where(_C.started_at >= func.now() - window)
        .group_by(_C.queue)
    )
    return [QueueOutcomes(queue, int(p), int(t)) for queue, p, t in rows]


_DECEASED = select(func.count()).where(
    _C.user_id == bindparam("user_id"), _C.disposition == Disposition.DECEASED.value
)
# the number the latest wrong_number outcome was against (domain.facts)
_WRONG_NUMBER = (
    select(_C.phone_key)
    .where(_C.user_id == bindparam("user_id"), _C.disposition == Disposition.WRONG_NUMBER.value)
    .order_by(_C.started_at.desc(), _C.id.desc())
    .limit(1)
)
_PENDING_CALLBACK = (
    select(_CB.scheduled_for, _CB.owner_agent_id)
    .where(_CB.user_id == bindparam("user_id"), _CB.status == CallbackStatus.PENDING.value)
    .order_by(_CB.scheduled_for)
    .limit(1)
)


@dataclass(frozen=True)
class ClaimantRecord:
    """What the dialler's own record says about a claimant, for their facts."""

    deceased: bool
    wrong_phone_key: str | None
    callback_at: datetime | None  # the earliest pending callback
    callback_owner_agent_id: int | None


async def claimant_record(conn: AsyncConnection, user_id: int) -> ClaimantRecord:
    parameters = {"user_id": user_id}
    deceased = await conn.scalar(_DECEASED, parameters)
    wrong_phone_key = await conn.scalar(_WRONG_NUMBER, parameters)
    callback = (await conn.execute(_PENDING_CALLBACK, parameters)).one_or_none()
    return ClaimantRecord(
        deceased=bool(deceased),
        wrong_phone_key=wrong_phone_key,
        callback_at=callback.scheduled_for if callback is not None else None,
        callback_owner_agent_id=callback.owner_agent_id if callback is not None else None,
    )


# --- what the outreach workflow writes -----------------------------------------------------------


async def recorded_outcome(conn: AsyncConnection, outcome_key: str) -> int | None:
    """The call an outcome was already written to, if it was."""
    found = await conn.scalar(select(_C.id).where(_C.outcome_key == outcome_key))
    return None if found is None else int(found)


def _outcome_values(request: RecordOutcome) -> dict[str, Any]:
    return {
        "disposition": request.disposition,
        "notes": request.notes or None,
        "abandoned": request.abandoned,
        "outcome_key": request.outcome_key,
        # the live split's arm that scored the claimant's task, as it is now (issue 14)
        "score_arm": score_arm_of(request.user_id),
    }


async def add_outcome_to_call(conn: AsyncConnection, request: RecordOutcome) -> None:
    """The outcome of a call placed through the dialler (`request.call_id`)."""
    assert request.call_id is not None
    await conn.execute(
        update(db.calls)
        .where(_C.id == request.call_id, _C.user_id == request.user_id)
        # the call-status webhook may have found the call abandoned: keep that
        .values(**_outcome_values(request) | {"abandoned": _C.abandoned | request.abandoned})
    )


async def insert_outcome_call(
    conn: AsyncConnection, request: RecordOutcome, number: str | None
) -> int | None:
    """A call recorded by hand, with its outcome; None when another run wrote this
    outcome first (the unique key lets one insert win)."""
    inserted = await conn.scalar(
        pg_insert(db.calls)
        .values(
            user_id=request.user_id,
            agent_id=request.agent_id,
            queue=request.queue.value if request.queue else None,
            provider="manual",
            to_number=number or "unknown",
            phone_key=phone_key(number),
            status="completed",
            started_at=request.at,
            ended_at=request.at,
            **_outcome_values(request),
        )
        .on_conflict_do_nothing(index_elements=[_C.outcome_key])
        .returning(_C.id)
    )
    return None if inserted is None else int(inserted)


async def replace_pending_callback(conn: AsyncConnection, request: SaveCallback) -> int:
    """Book a callback: one pending callback per claimant, so a new one cancels the old."""
    await conn.execute(
        update(db.callbacks)
        .where(_CB.user_id == request.user_id, _CB.status == CallbackStatus.PENDING.value)
        .values(status=CallbackStatus.CANCELLED.value, completed_at=func.now())
    )
    callback_id = await conn.scalar(
        insert(db.callbacks)
        .values(
            user_id=request.user_id,
            owner_agent_id=request.owner_agent_id,
            scheduled_for=request.at,
            notes=request.notes or None,
            created_by=request.created_by,
        )
        .returning(_CB.id)
    )
    return int(callback_id or 0)


async def complete_due_callbacks(conn: AsyncConnection, user_id: int, at: datetime) -> int:
    """Mark the claimant's pending callbacks due by `at` completed; how many were."""
    result = await conn.execute(
        update(db.callbacks)
        .where(
            and_(
                _CB.user_id == user_id,
                _CB.status == CallbackStatus.PENDING.value,
                _CB.scheduled_for <= at,
            )
        )
        .values(status=CallbackStatus.COMPLETED.value, completed_at=at)
    )
    return int(result.rowcount)


async def add_note(conn: AsyncConnection, user_id: int, agent_id: int, body: str) -> int:
    note_id = await conn.scalar(
        insert(db.claimant_notes)
        .values(user_id=user_id, agent_id=agent_id, body=body)
        .returning(_N.id)
    )
    return int(note_id or 0)


# --- calls placed from the console, and the Twilio webhooks (web.blueprints.calls) ---------------


async def call(engine: AsyncEngine, call_id: int) -> Call | None:
    async with engine.connect() as conn:
        return _call((await conn.execute(select(db.calls).where(_C.id == call_id))).one_or_none())


async def call_by_sid(engine: AsyncEngine, sid: str) -> Call | None:
    """The call whose claimant leg has this provider SID."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(db.calls).where(_C.provider_call_sid == sid))
        ).one_or_none()
    return _call(row)


async def agents_call(engine: AsyncEngine, agent_id: int, call_id: int) -> Call | None:
    """The call, if this agent placed it."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(db.calls).where(_C.id == call_id, _C.agent_id == agent_id))
        ).one_or_none()
    return _call(row)


async def open_call_for_claim(
    engine: AsyncEngine, agent_id: int, user_id: int, since: datetime | None
) -> Call | None:
    """The latest call the agent placed to the claimant (since `since`) that has no outcome
    yet."""
    query = select(db.calls).where(
        _C.agent_id == agent_id,
        _C.user_id == user_id,
        _C.provider != "manual",
        _C.direction == OUTBOUND,
        _C.disposition.is_(None),
    )
    if since is not None:
        query = query.where(_C.started_at >= since)
    async with engine.connect() as conn:
        row = (
            await conn.execute(query.order_by(_C.started_at.desc(), _C.id.desc()).limit(1))
        ).one_or_none()
    return _call(row)


async def active_call(
    engine: AsyncEngine,
    agent_id: int,
    user_id: int,
    *,
    ended: Iterable[str],
    active_for: timedelta,
) -> Call | None:
    """The agent's call to the claimant still going (not in an `ended` status, no outcome,
    started within `active_for`), if any."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(db.calls)
                .where(
                    _C.agent_id == agent_id,
                    _C.user_id == user_id,
                    _C.direction == OUTBOUND,
                    _C.status.not_in(list(ended)),
                    _C.disposition.is_(None),
                    _C.started_at > func.now() - active_for,
                )
                .order_by(_C.id.desc())
                .limit(1)
            )
        ).one_or_none()
    return _call(row)


@dataclass(frozen=True)
class NewCall:
    user_id: int
    task_id: int
    agent_id: int
    queue: str
    provider: str
    to_number: str
    from_number: str | None


async def place_call(engine: AsyncEngine, new: NewCall) -> int:
    """Write the call before anything is dialled; its id."""
    async with engine.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(
                user_id=new.user_id,
                task_id=new.task_id,
                agent_id=new.agent_id,
                queue=new.queue,
                provider=new.provider,
                to_number=new.to_number,
                phone_key=phone_key(new.to_number),
                from_number=new.from_number,
                status="initiated",
            )
            .returning(_C.id)
        )
    assert call_id is not None
    return int(call_id)


# --- claimants ringing back (issue 14; web.blueprints.inbound_calls) -----------------------------


@dataclass(frozen=True)
class CalledBefore:
    """The latest call we made to a number: the claimant it was for, and who made it."""

    user_id: int
    agent_id: int | None


async def latest_call_to(engine: AsyncEngine, phone_keys: Sequence[str]) -> CalledBefore | None:
    """The latest call we made to a number with one of these keys (its spellings'), over
    the index on (phone_key, started_at); None when we never called it. A number is
    matched by its hash only: the caller's number is never compared in clear."""
    keys = sorted(set(phone_keys))
    if not keys:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(_C.user_id, _C.agent_id)
                .where(_C.phone_key.in_(keys), _C.direction == OUTBOUND)
                .order_by(_C.started_at.desc(), _C.id.desc())
                .limit(1)
            )
        ).one_or_none()
    return None if row is None else CalledBefore(int(row.user_id), row.agent_id)


@dataclass(frozen=True)
class NewInboundCall:
    user_id: int
    agent_id: int  # the agent rung
    task_id: int | None
    queue: str | None
    provider: str  # twilio or simulated
    provider_call_sid: str  # the caller's leg
    claimant_number: str  # kept in to_number, as on every row: the claimant's end
    our_number: str | None  # the dialler's number they rang, kept in from_number


async def insert_inbound_call(engine: AsyncEngine, new: NewInboundCall) -> int | None:
    """A claimant's call to us, written as their call rings an agent; the recording notice
    is in the answer that rings the agent, so it is played. Its id, or None when a call
    with this SID is on record already (Twilio asked again)."""
    async with engine.begin() as conn:
        call_id = await conn.scalar(
            pg_insert(db.calls)
            .values(
                user_id=new.user_id,
                task_id=new.task_id,
                agent_id=new.agent_id,
                queue=new.queue,
                provider=new.provider,
                provider_call_sid=new.provider_call_sid,
                to_number=new.claimant_number,
                phone_key=phone_key(new.claimant_number),
                from_number=new.our_number,
                status="ringing",
                direction=INBOUND,
                recording_notice_played=True,
            )
            .on_conflict_do_nothing(index_elements=[_C.provider_call_sid])
            .returning(_C.id)
        )
    return None if call_id is None else int(call_id)


async def insert_ai_call(
    conn: AsyncConnection,
    *,
    user_id: int,
    agent_id: int,
    queue: str | None,
    provider: str,
    to_number: str,
    from_number: str | None,
) -> int:
    """An AI agent's call (issue 13), written before it is dialled, in the caller's
    transaction (with its conversation's link to it); no task: the AI works from its
    conversation. Its id."""
    call_id = await conn.scalar(
        insert(db.calls)
        .values(
            user_id=user_id,
            agent_id=agent_id,
            queue=queue,
            provider=provider,
            to_number=to_number,
            phone_key=phone_key(to_number),
            from_number=from_number,
            status="initiated",
        )
        .returning(_C.id)
    )
    assert call_id is not None
    return int(call_id)


async def finish_ai_call(
    conn: AsyncConnection,
    call_id: int,
    *,
    transcript: str | None,
    disposition: str | None,
    abandoned: bool = False,
) -> None:
    """An AI call's transcript (unless retention already deleted its recording) and the
    outcome its conversation recorded (an outcome already on the call is kept). `abandoned`:
    the claimant answered and did not hear the AI within 2 seconds (Ofcom's abandoned-call
    rules: counted in the abandon rate, and the number locked), whatever the outcome."""
    values: dict[str, Any] = {
        "disposition": func.coalesce(_C.disposition, disposition),
        # the live split's arm of the claimant's task, with the outcome (issue 14)
        "score_arm": func.coalesce(_C.score_arm, score_arm_of(_C.user_id)),
    }
    if abandoned:
        values["abandoned"] = True
    if transcript:
        values["transcript"] = case(
            (_C.recording_deleted_at.is_(None), transcript), else_=_C.transcript
        )
    await conn.execute(update(db.calls).where(_C.id == call_id).values(**values))


async def attach_claimant_leg(engine: AsyncEngine, call_id: int, sid: str) -> bool:
    """Record the SID the call is placed under, once (`initiated` becomes `queued`); False
    when the call was already placed under another SID."""
    async with engine.begin() as conn:
        attached = await conn.scalar(
            update(db.calls)
            .where(
                _C.id == call_id, (_C.provider_call_sid.is_(None)) | (_C.provider_call_sid == sid)
            )
            .values(
                provider_call_sid=sid,
                status=case((_C.status == "initiated", "queued"), else_=_C.status),
            )
            .returning(_C.id)
        )
    return attached is not None


async def mark_notice_played(engine: AsyncEngine, call_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(db.calls)
            .where(_C.id == call_id, _C.recording_notice_played.is_(False))
            .values(recording_notice_played=True)
        )


async def advance_status(
    engine: AsyncEngine,
    call_id: int,
    status: str,
    *,
    earlier: list[str],
    at: datetime,
    answered_by: str | None = None,
    answered: bool = False,
    ended: bool = False,
    duration_seconds: int = 0,
) -> bool:
    """Move the call to `status` if it is still in one of the `earlier` statuses (statuses
    only move forward, so a repeat changes nothing); the answer and end times are kept
    once. Whether it moved."""
    values: dict[str, Any] = {"status": status}
    if answered_by:
        values["answered_by"] = answered_by[:32]
    if answered:
        values["answered_at"] = func.coalesce(_C.answered_at, at)
    if ended:
        values["ended_at"] = func.coalesce(_C.ended_at, at)
        values["duration_seconds"] = duration_seconds
    async with engine.begin() as conn:
        applied = await conn.scalar(
            update(db.calls)
            .where(_C.id == call_id, _C.status.in_(earlier))
            .values(**values)
            .returning(_C.id)
        )
    return applied is not None


async def end_agent_leg(
    engine: AsyncEngine, call_id: int, at: datetime, bridged_seconds: int
) -> bool:
    """Keep when the agent's leg ended and how long it was bridged, once (the first ending
    wins); whether this was the first."""
    async with engine.begin() as conn:
        applied = await conn.scalar(
            update(db.calls)
            .where(_C.id == call_id, _C.agent_left_at.is_(None))
            .values(agent_left_at=at, agent_seconds=bridged_seconds)
            .returning(_C.id)
        )
    return applied is not None


async def mark_abandoned(conn: AsyncConnection, call_id: int) -> bool:
    """Mark the call abandoned, once; False when it already was."""
    marked = await conn.scalar(
        update(db.calls)
        .where(_C.id == call_id, _C.abandoned.is_(False))
        .values(abandoned=True)
        .returning(_C.id)
    )
    return marked is not None


async def store_recording(
    engine: AsyncEngine,
    call_id: int,
    sid: str,
    url: str | None,
    seconds: int | None,
    *,
    location: RecordingLocation | None = None,
) -> None:
    """The call's recording, stored once per call, with where it is kept (`location`;
    None: at Twilio, by its SID)."""
    kept = location or RecordingLocation(RecordingStore.TWILIO, sid)
    async with engine.begin() as conn:
        await conn.execute(
            update(db.calls)
            .where(_C.id == call_id, _C.recording_sid.is_(None))
            .values(
                recording_sid=sid,
                recording_url=url,
                recording_duration_seconds=seconds,
                recording_store=kept.store.value,
                recording_key=kept.key,
            )
        )


# --- recordings and their retention (issue 11) ---------------------------------------------------
# Where each call's recording is kept (`recording_store`, `recording_key`), its transcript, and
# their deletion at the end of retention (`recording_deleted_at`): the playback route and the
# daily clean-up (activities.maintenance) read and write them only here.


@dataclass(frozen=True)
class RecordingLocation:
    store: RecordingStore
    key: str  # the Twilio RecordingSid, the S3 object key, or the file under RECORDINGS_DIR


@dataclass(frozen=True)
class CallRecording:
    """What the playback route needs to know about a call's recording."""

    call_id: int
    user_id: int
    agent_id: int | None
    location: RecordingLocation | None  # None: no recording was ever kept
    duration_seconds: int | None
    deleted_at: datetime | None


def _location(store: str | None, key: str | None) -> RecordingLocation | None:
    if store is None or not key:
        return None
    return RecordingLocation(RecordingStore(store), key)


async def recording_of(engine: AsyncEngine, call_id: int) -> CallRecording | None:
    """The call's recording (None: no such call)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    _C.id,
                    _C.user_id,
                    _C.agent_id,
                    _C.recording_store,
                    _C.recording_key,
                    _C.recording_duration_seconds,
                    _C.recording_deleted_at,
                ).where(_C.id == call_id)
            )
        ).one_or_none()
    if row is None:
        return None
    return CallRecording(
        call_id=int(row.id),
        user_id=int(row.user_id),
        agent_id=row.agent_id,
        location=_location(row.recording_store, row.recording_key),
        duration_seconds=row.recording_duration_seconds,
        deleted_at=row.recording_deleted_at,
    )


@dataclass(frozen=True)
class ExpiringRecording:
    call_id: int
    user_id: int
    started_at: datetime
    location: RecordingLocation | None  # None: a transcript (or a SID) with nothing kept
    has_transcript: bool


# A call holds something retention deletes: a recording (anywhere) or a transcript.
_HOLDS_RECORDING = and_(
    _C.recording_deleted_at.is_(None),
    _C.recording_sid.is_not(None) | _C.recording_store.is_not(None) | _C.transcript.is_not(None),
)


async def recordings_started_before(
    engine: AsyncEngine, cutoff: datetime, *, after_id: int, limit: int
) -> list[ExpiringRecording]:
    """Calls started before `cutoff` whose recording or transcript is not deleted yet,
    by id after `after_id` (a page of `limit`)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                _C.id,
                _C.user_id,
                _C.started_at,
                _C.recording_store,
                _C.recording_key,
                _C.transcript.is_not(None).label("has_transcript"),
            )
            .where(_HOLDS_RECORDING, _C.started_at < cutoff, _C.id > after_id)
            .order_by(_C.id)
            .limit(limit)
        )
        return [
            ExpiringRecording(
                int(r.id),
                int(r.user_id),
                r.started_at,
                _location(r.recording_store, r.recording_key),
                bool(r.has_transcript),
            )
            for r in rows
        ]


async def mark_recording_deleted(conn: AsyncConnection, call_id: int, at: datetime) -> bool:
    """The recording and transcript are gone: keep when, drop the transcript and the
    provider's URL, once. Whether this call was marked now (False: already was)."""
    marked = await conn.scalar(
        update(db.calls)
        .where(_C.id == call_id, _C.recording_deleted_at.is_(None))
        .values(recording_deleted_at=at, transcript=None, recording_url=None)
        .returning(_C.id)
    )
    return marked is not None


async def save_transcript(conn: AsyncConnection, call_id: int, transcript: str) -> bool:
    """The call's transcript (issue 13's AI transcripts); refused (False) once the recording
    was deleted."""
    saved = await conn.scalar(
        update(db.calls)
        .where(_C.id == call_id, _C.recording_deleted_at.is_(None))
        .values(transcript=transcript)
        .returning(_C.id)
    )
    return saved is not None


# --- the claimant's history, as the console shows it (services.claimant_context) -----------------


@dataclass(frozen=True)
class CallEntry:
    id: int
    started_at: datetime
    agent_name: str | None
    status: str
    disposition: str | None
    duration_seconds: int | None
    notes: str | None
    recorded: bool
    agent_id: int | None = None
    recording_deleted: bool = False  # at the end of retention: no longer playable


async def recent_calls(
    conn: AsyncConnection, user_id: int, limit: int, agent_name: AgentName
) -> list[CallEntry]:
    """The claimant's latest calls, newest first."""
    rows = await conn.execute(
        select(
            _C.id,
            _C.started_at,
            _C.status,
            _C.disposition,
            _C.duration_seconds,
            _C.notes,
            _C.recording_sid,
            _C.recording_store,
            _C.recording_deleted_at,
            _C.agent_id,
            agent_name(_C.agent_id).label("agent_name"),
        )
        .where(_C.user_id == user_id)
        .order_by(_C.started_at.desc(), _C.id.desc())
        .limit(limit)
    )
    return [
        CallEntry(r.id, r.started_at, r.agent_name, r.status, r.disposition,
                  r.duration_seconds, r.notes,
                  r.recording_deleted_at is None and r.recording_store is not None,
                  r.agent_id, r.recording_deleted_at is not None)
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class CallbackEntry:
    scheduled_for: datetime
    status: str
    notes: str | None
    owner_name: str | None
    creator_name: str | None


async def latest_callback(
    conn: AsyncConnection, user_id: int, agent_name: AgentName
) -> CallbackEntry | None:
    """The pending callback, or else the most recent one (its notes still matter)."""
    row = (
        await conn.execute(
            select(
                _CB.scheduled_for,
                _CB.status,
                _CB.notes,
                agent_name(_CB.owner_agent_id).label("owner_name"),
                agent_name(_CB.created_by).label("creator_name"),
            )
            .where(_CB.user_id == user_id)
            .order_by((_CB.status == CallbackStatus.PENDING.value).desc(), _CB.created_at.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return CallbackEntry(row.scheduled_for, row.status, row.notes, row.owner_name, row.creator_name)


@dataclass(frozen=True)
class NoteEntry:
    created_at: datetime
    agent_name: str | None
    body: str


async def recent_notes(
    conn: AsyncConnection, user_id: int, limit: int, agent_name: AgentName
) -> list[NoteEntry]:
    rows = await conn.execute(
        select(_N.created_at, agent_name(_N.agent_id).label("agent_name"), _N.body)
        .where(_N.user_id == user_id)
        .order_by(_N.created_at.desc(), _N.id.desc())
        .limit(limit)
    )
    return [NoteEntry(r.created_at, r.agent_name, r.body) for r in rows]


async def transcripts_of(
    conn: AsyncConnection, user_id: int, call_ids: Sequence[int]
) -> dict[int, str]:
    """The transcripts kept of these calls to the claimant (call id -> text): AI calls'
    transcripts, until retention deletes them."""
    if not call_ids:
        return {}
    rows = await conn.execute(
        select(_C.id, _C.transcript).where(
            _C.user_id == user_id, _C.id.in_(list(call_ids)), _C.transcript.is_not(None)
        )
    )
    return {int(r.id): str(r.transcript) for r in rows}


# --- many claimants at once (the context cache) --------------------------------------------------


async def next_callbacks(conn: AsyncConnection, user_ids: list[int]) -> dict[int, datetime]:
    """Each claimant's earliest pending callback."""
    rows = await conn.execute(
        select(_CB.user_id, func.min(_CB.scheduled_for))
        .where(_CB.user_id.in_(user_ids), _CB.status == CallbackStatus.PENDING.value)
        .group_by(_CB.user_id)
    )
    return {int(user_id): at for user_id, at in rows}


@dataclass(frozen=True)
class LastCall:
    started_at: datetime
    disposition: str | None


async def last_calls(conn: AsyncConnection, user_ids: list[int]) -> dict[int, LastCall]:
    """Each claimant's latest call."""
    rows = await conn.execute(
        select(_C.user_id, _C.started_at, _C.disposition)
        .ext(distinct_on(_C.user_id))
        .where(_C.user_id.in_(user_ids))
        .order_by(_C.user_id, _C.started_at.desc())
    )
    return {int(r.user_id): LastCall(r.started_at, r.disposition) for r in rows}


# --- query fragments, for a caller that composes one statement over several owners ---------------


def calls_by_agents_query() -> Select[Any]:
    """Every call placed by an agent: (user_id, agent_id, at)."""
    return select(_C.user_id, _C.agent_id, _C.started_at.label("at")).where(
        _C.agent_id.is_not(None)
    )


def called_by_query(agent_id: int) -> Select[Any]:
    """The user ids this agent ever called."""
    return select(_C.user_id).where(_C.agent_id == agent_id)


def personal_callbacks_query(agent_id: int) -> Select[Any]:
    """The user ids with a pending callback owned by this agent."""
    return select(_CB.user_id).where(
        _CB.owner_agent_id == agent_id, _CB.status == CallbackStatus.PENDING.value
    )


def owns_callback_query(user_id: int, agent_id: int) -> Select[Any]:
    """The claimant's pending callback owned by this agent (use with `.exists()`)."""
    return select(_CB.id).where(
        _CB.user_id == user_id,
        _CB.owner_agent_id == agent_id,
        _CB.status == CallbackStatus.PENDING.value,
    )


@dataclass(frozen=True)
class CallParties:
    user_id: int  # the claimant called
    agent_id: int | None  # the agent who made the call


async def parties_of_call(engine: AsyncEngine, call_id: int) -> CallParties | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(_C.user_id, _C.agent_id).where(_C.id == call_id))
        ).one_or_none()
    return None if row is None else CallParties(int(row.user_id), row.agent_id)


async def claimant_of_call(engine: AsyncEngine, call_id: int) -> int | None:
    async with engine.connect() as conn:
        found = await conn.scalar(select(_C.user_id).where(_C.id == call_id))
    return None if found is None else int(found)


# --- operators' figures --------------------------------------------------------------------------

# Live calls (answered by a person) and abandoned calls over the rate window. A call an
# agent recorded as abandoned by hand has no answer time but is a live call too.
_ABANDON_COUNTS = text(
    """
    SELECT
        count(*) FILTER (WHERE abandoned OR (answered_at IS NOT NULL AND (
            answered_by IS NULL OR NOT (answered_by LIKE 'machine%' OR answered_by = 'fax')
        ))) AS live,
        count(*) FILTER (WHERE abandoned) AS abandoned
    FROM calls
    WHERE started_at > now() - make_interval(secs => :window) AND direction = 'outbound'
    """
)


async def daily_abandon_rate(dialler: AsyncEngine) -> AbandonRate:
    """Abandoned over live calls in the last 24 hours (`domain.abandoned_calls`)."""
    async with dialler.connect() as conn:
        row = (await conn.execute(_ABANDON_COUNTS, {"window": RATE_WINDOW.total_seconds()})).one()
    return abandon_rate(int(row.live), int(row.abandoned))


# The seed's callback query, its dialler half: pending callbacks due by `now` (the replica
# then keeps the enabled users, `adapters.queue_queries.due_callback_user_ids`).
_DUE_CALLBACKS = text(
    """
    SELECT DISTINCT cb.user_id FROM callbacks cb
    WHERE cb.status = 'pending'
      AND cb.scheduled_for <= :now
      AND cb.user_id >= :from_id AND cb.user_id < :to_id
    """
)


async def due_callback_user_ids(
    dialler: AsyncEngine, now: datetime, ids: tuple[int, int]
) -> set[int]:
    """Claimants (user ids in [from, to)) with a pending callback due by `now`."""
    async with dialler.connect() as conn:
        rows = await conn.execute(_DUE_CALLBACKS, {"now": now, "from_id": ids[0], "to_id": ids[1]})
        return {int(row[0]) for row in rows}


# --- demo data -----------------------------------------------------------------------------------


async def load_demo_callbacks(
    engine: AsyncEngine,
    batches: Iterable[Sequence[Mapping[str, Any]]],
    *,
    replace_marked: str | None = None,
) -> None:
    """Insert demo callbacks; `replace_marked` first deletes the callbacks whose notes start
    with that marker (only rows a loader wrote: agents' real callbacks stay)."""
    async with engine.begin() as conn:
        if replace_marked is not None:
            marked = _CB.notes.startswith(replace_marked, autoescape=True)
            await conn.execute(delete(db.callbacks).where(marked))
        for batch in batches:
            await conn.execute(insert(db.callbacks), list(batch))


# --- attribution and the funnel (issue 11) ------------------------------------------------


async def calls_as_contacts(
    conn: AsyncConnection, user_ids: Sequence[int], since: datetime, until: datetime
) -> list[Contact]:
    """These claimants' calls started between `since` and `until` (inclusive), as the
    contacts a conversion can be credited to."""
    if not user_ids:
        return []
    rows = await conn.execute(
        select(_C.id, _C.user_id, _C.started_at, _C.agent_id, _C.queue).where(
            _C.user_id.in_(list(user_ids)), _C.started_at >= since, _C.started_at <= until
        )
    )
    return [
        Contact(int(r.user_id), ContactKind.CALL, str(r.id), r.started_at, r.agent_id, r.queue)
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class CallTally:
    """Calls of a report's period in one group: how many, how many reached the claimant
    (`call_breakdown` says when), and the agents' talk time."""

    calls: int
    reached: int
    talk_seconds: int


@dataclass(frozen=True)
class CallBreakdown:
    """Calls started in a period, counted by the database in one pass, several ways."""

    by_agent: dict[tuple[int | None, str | None], CallTally]  # (agent id, disposition)
    by_queue: dict[tuple[str | None, str | None], CallTally]  # (queue, disposition)
    by_hour: dict[int, CallTally]  # the hour of the day the call started (0-23), in `zone`
    by_user: dict[int, CallTally]  # per claimant, when asked for (else empty)


def _reached() -> ColumnElement[bool]:
    """A placed call reached the claimant when it was answered by a person (not a machine)
    and the agent's leg was bridged to it; a call recorded by hand, when its outcome says
    someone spoke (`SPOKE_DISPOSITIONS`)."""
    human = func.coalesce(_C.answered_by, "human") == "human"
    bridged = func.coalesce(_C.agent_seconds, 0) > 0
    return case(
        (_C.provider == "manual", _C.disposition.in_(sorted(SPOKE_DISPOSITIONS))),
        else_=and_(_C.answered_at.is_not(None), human, bridged),
    )


async def call_breakdown(
    conn: AsyncConnection, start: datetime, end: datetime, zone: str, *, by_user: bool = False
) -> CallBreakdown:
    """Calls started in [start, end), grouped in the database (one scan, GROUPING SETS) by
    agent and outcome, by queue and outcome, by the hour of the day in `zone` and, if
    `by_user`, by claimant. Talk time is `agent_seconds`: how long the agent's leg was
    bridged to the claimant (`duration_seconds` is the claimant's leg, which also counts
    answering machines and the time before an agent joined; calls recorded by hand have
    neither)."""
    hour = cast(func.extract("hour", func.timezone(zone, _C.started_at)), Integer)
    period = (
        select(
            _C.agent_id,
            _C.queue,
            _C.disposition,
            _C.user_id,
            hour.label("hour"),
            _reached().label("reached"),
            func.coalesce(_C.agent_seconds, 0).label("talk"),
        )
        .where(_C.started_at >= start, _C.started_at < end)
        .subquery()
    )
    p = period.c
    sets = [tuple_(p.agent_id, p.disposition), tuple_(p.queue, p.disposition), tuple_(p.hour)]
    if by_user:
        sets.append(tuple_(p.user_id))
    rows = await conn.execute(
        select(
            p.agent_id,
            p.queue,
            p.disposition,
            p.hour,
            p.user_id if by_user else null().label("user_id"),
            (func.grouping(p.agent_id) == 0).label("by_agent"),
            (func.grouping(p.queue) == 0).label("by_queue"),
            (func.grouping(p.hour) == 0).label("by_hour"),
            func.count().label("calls"),
            func.count().filter(p.reached).label("reached"),
            func.coalesce(func.sum(p.talk), 0).label("talk"),
        ).group_by(func.grouping_sets(*sets))
    )
    found = CallBreakdown({}, {}, {}, {})
    for r in rows:
        tally = CallTally(int(r.calls), int(r.reached), int(r.talk))
        if r.by_agent:
            found.by_agent[(r.agent_id, r.disposition)] = tally
        elif r.by_queue:
            found.by_queue[(r.queue, r.disposition)] = tally
        elif r.by_hour:
            found.by_hour[int(r.hour)] = tally
        else:
            found.by_user[int(r.user_id)] = tally
    return found


_Key = TypeVar("_Key")


def _add(into: dict[_Key, CallTally], more: Mapping[_Key, CallTally]) -> None:
    for key, tally in more.items():
        was = into.get(key)
        into[key] = (
            tally
            if was is None
            else CallTally(
                was.calls + tally.calls,
                was.reached + tally.reached,
                was.talk_seconds + tally.talk_seconds,
            )
        )


def combined(parts: Iterable[CallBreakdown]) -> CallBreakdown:
    """The breakdowns of consecutive periods added up."""
    found = CallBreakdown({}, {}, {}, {})
    for part in parts:
        _add(found.by_agent, part.by_agent)
        _add(found.by_queue, part.by_queue)
        _add(found.by_hour, part.by_hour)
        _add(found.by_user, part.by_user)
    return found


# The counts of settled days, kept in `call_days` (migration 0012): `grouping` says which
# of the analytics' groups a row counts. Filling them is serialised by a transaction lock,
# so two reports that need the same day count it once.
_DAY_TOTAL, _BY_AGENT, _BY_QUEUE, _BY_HOUR = 0, 1, 2, 3
_CALL_DAYS_LOCK = 7_300_012
_D = db.call_days.c


async def keep_call_days(conn: AsyncConnection, days: Sequence[date], zone: str) -> list[date]:
    """Count each of these consecutive settled days (in `zone`) into `call_days` if it is
    not counted yet, in the caller's transaction; the days now kept: `days`, or the first
    of them when the database's clock says the later ones are not a day old yet."""
    if not days:
        return []
    await conn.execute(select(func.pg_advisory_xact_lock(_CALL_DAYS_LOCK)))
    now = await conn.scalar(select(func.now()))
    assert now is not None
    past = [d for d in days if _day_end(d, zone) <= now - timedelta(days=1)]
    kept = set(
        await conn.scalars(select(_D.day).where(_D.grouping == _DAY_TOTAL, _D.day.in_(past)))
    )
    missing = [d for d in past if d not in kept]
    if missing:
        await conn.execute(_count_days(missing, zone))
        with_calls = set(
            await conn.scalars(select(_D.day).where(_D.grouping == _DAY_TOTAL, _D.day.in_(missing)))
        )
        empty = [d for d in missing if d not in with_calls]
        if empty:  # a day without calls is marked counted too
            await conn.execute(
                insert(db.call_days),
                [{"day": d, "grouping": _DAY_TOTAL, "calls": 0, "reached": 0, "talk_seconds": 0}
                 for d in empty],
            )  # fmt: skip
    return past


def _day_end(day: date, zone: str) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, ZoneInfo(zone))


def _count_days(days: Sequence[date], zone: str) -> Insert:
    """The statement counting these days' calls, each group a row of `call_days`."""
    local = func.timezone(zone, _C.started_at)
    first = datetime.combine(min(days), time.min, ZoneInfo(zone))
    period = (
        select(
            cast(local, Date).label("day"),
            _C.agent_id,
            _C.queue,
            _C.disposition,
            cast(func.extract("hour", local), Integer).label("hour"),
            _reached().label("reached"),
            func.coalesce(_C.agent_seconds, 0).label("talk"),
        )
        .where(_C.started_at >= first, _C.started_at < _day_end(max(days), zone))
        .subquery()
    )
    p = period.c
    grouping = case(
        (func.grouping(p.agent_id) == 0, _BY_AGENT),
        (func.grouping(p.queue) == 0, _BY_QUEUE),
        (func.grouping(p.hour) == 0, _BY_HOUR),
        else_=_DAY_TOTAL,
    )
    counted = (
        select(
            p.day,
            grouping,
            p.agent_id,
            p.queue,
            p.disposition,
            p.hour,
            func.count(),
            func.count().filter(p.reached),
            func.coalesce(func.sum(p.talk), 0),
        )
        .where(p.day.in_(list(days)))
        .group_by(
            func.grouping_sets(
                tuple_(p.day),
                tuple_(p.day, p.agent_id, p.disposition),
                tuple_(p.day, p.queue, p.disposition),
                tuple_(p.day, p.hour),
            )
        )
    )
    columns = ["day", "grouping", "agent_id", "queue", "disposition", "hour", "calls",
               "reached", "talk_seconds"]  # fmt: skip
    return insert(db.call_days).from_select(columns, counted)


async def kept_call_breakdown(conn: AsyncConnection, first: date, last: date) -> CallBreakdown:
    """The kept counts of the days from `first` to `last` (all kept), added up."""
    rows = await conn.execute(
        select(
            _D.grouping,
            _D.agent_id,
            _D.queue,
            _D.disposition,
            _D.hour,
            func.sum(_D.calls).label("calls"),
            func.sum(_D.reached).label("reached"),
            func.sum(_D.talk_seconds).label("talk"),
        )
        .where(_D.day >= first, _D.day <= last, _D.grouping != _DAY_TOTAL)
        .group_by(_D.grouping, _D.agent_id, _D.queue, _D.disposition, _D.hour)
    )
    found = CallBreakdown({}, {}, {}, {})
    for r in rows:
        tally = CallTally(int(r.calls), int(r.reached), int(r.talk))
        if r.grouping == _BY_AGENT:
            found.by_agent[(r.agent_id, r.disposition)] = tally
        elif r.grouping == _BY_QUEUE:
            found.by_queue[(r.queue, r.disposition)] = tally
        else:
            found.by_hour[int(r.hour)] = tally
    return found


def queue_of_call(call_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The queue of the call whose id a column holds (NULL for none), as a scalar subquery
    for another owner's statement (the funnel's links, by the call they were sent from)."""
    return select(_C.queue).where(_C.id == call_id).scalar_subquery()


# --- subject access (issue 11): everything kept about one claimant --------------------------


async def subject_access(conn: AsyncConnection, user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every `calls` (recordings' metadata and transcripts included), `callbacks` and
    `claimant_notes` row of the claimant, oldest first (`dialler compliance export`)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, table in (("calls", db.calls), ("callbacks", db.callbacks),
                        ("notes", db.claimant_notes)):  # fmt: skip
        rows = await conn.execute(
            select(table).where(table.c.user_id == user_id).order_by(table.c.id)
        )
        found[name] = [dict(r._mapping) for r in rows]
    return found


# --- the supervisors' calls list (issue 12, services.call_review) ---------------------------------


@dataclass(frozen=True)
class CallSearch:
    """Which calls the calls list shows (None: any)."""

    agent_ids: Sequence[int] | None = None  # placed by one of these agents
    disposition: str | None = None
    without_outcome: bool = False  # only calls with no outcome recorded
    queue: str | None = None
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before


@dataclass(frozen=True)
class ListedCall:
    id: int
    user_id: int
    started_at: datetime
    agent_id: int | None
    queue: str | None
    status: str
    duration_seconds: int | None
    disposition: str | None
    abandoned: bool
    playable: bool  # a recording is kept (not deleted at the end of retention)
    recording_deleted: bool
    has_transcript: bool


def _search_conditions(search: CallSearch) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if search.agent_ids is not None:
        where.append(_C.agent_id.in_(sorted(set(search.agent_ids))))
    if search.disposition is not None:
        where.append(_C.disposition == search.disposition)
    if search.without_outcome:
        where.append(_C.disposition.is_(None))
    if search.queue is not None:
        where.append(_C.queue == search.queue)
    if search.since is not None:
        where.append(_C.started_at >= search.since)
    if search.until is not None:
        where.append(_C.started_at < search.until)
    return where


async def search_calls(
    conn: AsyncConnection,
    search: CallSearch,
    *,
    limit: int,
    older_than: tuple[datetime, int] | None = None,
    newer_than: tuple[datetime, int] | None = None,
) -> list[ListedCall]:
    """Up to `limit` calls matching `search`, newest first (by start, then id): the newest,
    those just older than `older_than`, or those just newer than `newer_than` (a keyset,
    so a page stays put while calls are added). One agent's calls are read through
    ix_calls_agent_id_started_at."""
    where = _search_conditions(search)
    if older_than is not None:
        at, call_id = older_than
        # the redundant bound lets an index on started_at stop the scan there
        where += [_C.started_at <= at, (_C.started_at < at) | (_C.id < call_id)]
    if newer_than is not None:
        at, call_id = newer_than
        where += [_C.started_at >= at, (_C.started_at > at) | (_C.id > call_id)]
    ascending = newer_than is not None and older_than is None
    order = (
        [_C.started_at.asc(), _C.id.asc()] if ascending else [_C.started_at.desc(), _C.id.desc()]
    )
    rows = await conn.execute(
        select(
            _C.id,
            _C.user_id,
            _C.started_at,
            _C.agent_id,
            _C.queue,
            _C.status,
            _C.duration_seconds,
            _C.disposition,
            _C.abandoned,
            _C.recording_store,
            _C.recording_deleted_at,
            _C.transcript.is_not(None).label("has_transcript"),
        )
        .where(*where)
        .order_by(*order)
        .limit(limit)
    )
    found = [
        ListedCall(
            id=int(r.id),
            user_id=int(r.user_id),
            started_at=r.started_at,
            agent_id=r.agent_id,
            queue=r.queue,
            status=r.status,
            duration_seconds=r.duration_seconds,
            disposition=r.disposition,
            abandoned=bool(r.abandoned),
            playable=r.recording_store is not None and r.recording_deleted_at is None,
            recording_deleted=r.recording_deleted_at is not None,
            has_transcript=bool(r.has_transcript),
        )
        for r in rows
    ]
    return found[::-1] if ascending else found


async def call_ids_of_claimant(conn: AsyncConnection, user_id: int) -> list[int]:
    """Every call to the claimant (the audit viewer finds entries about them by these)."""
    rows = await conn.execute(select(_C.id).where(_C.user_id == user_id).order_by(_C.id))
    return [int(r.id) for r in rows]


# --- the supervisors' wallboard (services.wallboard) -------------------------------------------

# The day's calls and the abandon rate's window, per agent and outcome, in one pass over a
# range of ix_calls_started_at_id (migration 0011). Live calls as in _ABANDON_COUNTS.
_CALLS_BY_AGENT_SINCE = text(
    """
    SELECT agent_id, disposition,
        count(*) FILTER (WHERE started_at >= :day_start) AS today,
        count(*) FILTER (WHERE started_at > :rate_since AND (abandoned OR (
            answered_at IS NOT NULL AND (
                answered_by IS NULL OR NOT (answered_by LIKE 'machine%' OR answered_by = 'fax')
            )))) AS live,
        count(*) FILTER (WHERE started_at > :rate_since AND abandoned) AS abandoned
    FROM calls
    WHERE started_at >= :since
    GROUP BY agent_id, disposition
    """
)
_CALLBACKS_DUE = text(
    """
    SELECT count(*) FILTER (WHERE scheduled_for <= :now) AS due_now,
           count(*) FILTER (WHERE scheduled_for > :now) AS next_hour
    FROM callbacks
    WHERE status = 'pending' AND scheduled_for <= :horizon
    """
)


async def calls_by_agent_since(
    conn: AsyncConnection, *, day_start: datetime, now: datetime
) -> list[CallGroup]:
    """Calls per agent and outcome: started since `day_start`, and live and abandoned in
    the abandon rate's window before `now`."""
    rate_since = now - RATE_WINDOW
    rows = await conn.execute(
        _CALLS_BY_AGENT_SINCE,
        {"day_start": day_start, "rate_since": rate_since, "since": min(day_start, rate_since)},
    )
    return [
        CallGroup(
            agent_id=None if r.agent_id is None else int(r.agent_id),
            disposition=r.disposition,
            today=int(r.today),
            live_24h=int(r.live),
            abandoned_24h=int(r.abandoned),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class CallbacksDue:
    due_now: int  # pending, due by now (overdue ones included)
    next_hour: int  # pending, due after now and within the next hour


async def callbacks_due(conn: AsyncConnection, now: datetime, ahead: timedelta) -> CallbacksDue:
    """Pending callbacks due by `now`, and due in the `ahead` after it."""
    row = (await conn.execute(_CALLBACKS_DUE, {"now": now, "horizon": now + ahead})).one()
    return CallbacksDue(int(row.due_now), int(row.next_hour))


# --- the learned rates (issue 14): the calls of a window, counted -----------------------------


async def attempt_counts(
    conn: AsyncConnection, start: datetime, end: datetime, converted: Select[Any]
) -> AttemptCounts:
    """The calls we placed (not claimants ringing back) started in [start, end), counted in
    one scan by queue, by the quarter hour they started in and by claimant: how many, how
    many reached the claimant (`_reached`), how many converted (their id among
    `converted`'s `call_id`s: `conversions.converted_calls`)."""
    credited = converted.subquery("credited")
    attempts = (
        select(
            _C.queue,
            _C.user_id,
            slot_of(_C.started_at).label("slot"),
            _reached().label("reached"),
            credited.c.call_id.is_not(None).label("converted"),
        )
        .select_from(db.calls.outerjoin(credited, credited.c.call_id == _C.id))
        .where(_C.started_at >= start, _C.started_at < end, _C.direction == "outbound")
        .subquery("attempts")
    )
    return await count_attempts(conn, attempts)


# --- the scoring evaluation and the live split (issue 14) -------------------------------------


@dataclass(frozen=True)
class OutcomeContact:
    """A call we placed from a queue with its outcome recorded: what `dialler scoring
    evaluate` replays."""

    call_id: int
    user_id: int
    queue: str
    started_at: datetime


async def outcome_contacts(
    conn: AsyncConnection, start: datetime, end: datetime
) -> list[OutcomeContact]:
    """Calls we placed from a queue (not claimants ringing back) started in [start, end)
    with an outcome recorded, oldest first."""
    rows = await conn.execute(
        select(_C.id, _C.user_id, _C.queue, _C.started_at)
        .where(
            _C.started_at >= start,
            _C.started_at < end,
            _C.direction == "outbound",
            _C.disposition.is_not(None),
            _C.queue.is_not(None),
        )
        .order_by(_C.started_at, _C.id)
    )
    return [OutcomeContact(int(r.id), int(r.user_id), str(r.queue), r.started_at) for r in rows]


@dataclass(frozen=True)
class ArmTally:
    """One arm of a live split over its calls: claimants called, reached (by at least one
    call) and converted (a conversion credited to at least one of their calls); calls,
    reached calls and the conversions credited to them."""

    claimants: int
    reached_claimants: int
    converted_claimants: int
    calls: int
    reached_calls: int
    conversions: int


async def arm_counts(
    conn: AsyncConnection, start: datetime, end: datetime, credited: Select[int, int]
) -> dict[str, ArmTally]:
    """Per live split arm: the calls we placed started in [start, end) that carry an arm
    (written with their outcome, from the task), counted in one scan. `credited` gives the
    conversions per call id (`conversions.conversions_per_call`)."""
    per_call = credited.subquery("credited")
    conversions = func.coalesce(per_call.c.conversions, 0)
    calls = (
        select(
            _C.score_arm,
            _C.user_id,
            _reached().label("reached"),
            conversions.label("conversions"),
        )
        .select_from(db.calls.outerjoin(per_call, per_call.c.call_id == _C.id))
        .where(
            _C.started_at >= start,
            _C.started_at < end,
            _C.direction == "outbound",
            _C.score_arm.is_not(None),
        )
        .subquery("arm_calls")
    )
    c = calls.c
    rows = await conn.execute(
        select(
            c.score_arm,
            func.count(func.distinct(c.user_id)).label("claimants"),
            func.count(func.distinct(c.user_id)).filter(c.reached).label("reached_claimants"),
            func.count(func.distinct(c.user_id))
            .filter(c.conversions > 0)
            .label("converted_claimants"),
            func.count().label("calls"),
            func.count().filter(c.reached).label("reached_calls"),
            func.coalesce(func.sum(c.conversions), 0).label("conversions"),
        ).group_by(c.score_arm)
    )
    return {
        str(r.score_arm): ArmTally(
            int(r.claimants),
            int(r.reached_claimants),
            int(r.converted_claimants),
            int(r.calls),
            int(r.reached_calls),
            int(r.conversions),
        )
        for r in rows
    }
