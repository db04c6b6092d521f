"""Agents, their sign-in sessions and their state changes (`agents`, `agent_sessions`,
`agent_state_changes`): the one module that reads and writes them.

A session is kept as the SHA-256 of its cookie token, never the token (`web.auth.sessions`
makes and hashes tokens and decides the lifetimes). An agent's current state is their
latest `agent_state_changes` row (`services.agent_states` holds the rules). Other owners'
views that show who did something name the agent with `display_name_of`, a scalar
subquery, so that each of those views stays one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.analytics import StateSpan, StateTotal
from domain.floor import AgentSeen
from schemas import dialler_db as db
from schemas.enums import AgentRole, AgentState

_A = db.agents.c
_S = db.agent_sessions.c
_CHANGES = db.agent_state_changes.c


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    email: str
    display_name: str
    role: str
    queue: str | None
    is_ai: bool


@dataclass(frozen=True, slots=True)
class LiveSession:
    session_id: int
    last_seen_at: datetime
    agent: Agent


@dataclass(frozen=True, slots=True)
class Credentials:
    """An active agent's id and Argon2 hash (None: an AI agent, which cannot sign in)."""

    agent_id: int
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class NewAgent:
    email: str
    display_name: str
    role: str
    queue: str | None
    password_hash: str | None


@dataclass(frozen=True, slots=True)
class StateChange:
    agent_id: int
    state: str
    reason: str | None
    at: datetime


def display_name_of(agent_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The display name of the agent `agent_id` holds (NULL for none), as a scalar
    subquery for another owner's statement."""
    return select(_A.display_name).where(_A.id == agent_id).scalar_subquery()


def active_person(agent_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """`agent_id` when it names an active person (not an AI agent), else NULL, as a scalar
    subquery for another owner's statement (the previous successful agent, call_log)."""
    return (
        select(_A.id).where(_A.id == agent_id, _A.is_active, _A.is_ai.is_(False)).scalar_subquery()
    )


# --- agents --------------------------------------------------------------------------------


async def count_agents(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(db.agents))).scalar_one())


async def add_agents(conn: AsyncConnection, new: Sequence[NewAgent]) -> None:
    """Insert these agents in one statement."""
    if not new:
        return
    await conn.execute(
        insert(db.agents),
        [
            {
                "email": a.email,
                "display_name": a.display_name,
                "role": a.role,
                "queue": a.queue,
                "password_hash": a.password_hash,
            }
            for a in new
        ],
    )


async def credentials(conn: AsyncConnection, email: str) -> Credentials | None:
    """The active agent signing in with this (normalised) email, if any."""
    row = (
        await conn.execute(select(_A.id, _A.password_hash).where(_A.email == email, _A.is_active))
    ).one_or_none()
    return None if row is None else Credentials(int(row.id), row.password_hash)


async def active_agent(conn: AsyncConnection, agent_id: int) -> Agent | None:
    row = (
        await conn.execute(
            select(_A.id, _A.email, _A.display_name, _A.role, _A.queue, _A.is_ai).where(
                _A.id == agent_id, _A.is_active
            )
        )
    ).one_or_none()
    return None if row is None else _agent(row, row.id)


async def role_of(conn: AsyncConnection, agent_id: int) -> str | None:
    role = await conn.scalar(select(_A.role).where(_A.id == agent_id))
    return None if role is None else str(role)


def _agent(row: Any, agent_id: int) -> Agent:
    return Agent(int(agent_id), row.email, row.display_name, row.role, row.queue, row.is_ai)


# --- sessions ------------------------------------------------------------------------------

# Every request with a cookie resolves its session: the statement is built once.
LIVE_SESSION = (
    select(
        _S.id,
        _S.last_seen_at,
        _A.id.label("agent_id"),
        _A.email,
        _A.display_name,
        _A.role,
        _A.queue,
        _A.is_ai,
    )
    .join(db.agents, _A.id == _S.agent_id)
    .where(
        _S.token_hash == bindparam("token_hash"),
        _S.revoked_at.is_(None),
        _S.expires_at > bindparam("now", type_=_S.expires_at.type),
        _S.last_seen_at > bindparam("idle_since", type_=_S.last_seen_at.type),
        _A.is_active,
    )
)


async def create_session(
    conn: AsyncConnection,
    *,
    agent_id: int,
    token_hash: str,
    expires_at: datetime,
    ip_address: str | None,
    user_agent: str | None,
) -> None:
    await conn.execute(
        insert(db.agent_sessions).values(
            agent_id=agent_id,
            token_hash=token_hash,
            expires_at=expires_at,
            ip_address=(ip_address or "")[:45] or None,
            user_agent=(user_agent or "")[:300] or None,
        )
    )


async def live_session(
    conn: AsyncConnection, token_hash: str, *, now: datetime, idle_since: datetime
) -> LiveSession | None:
    """The unrevoked, unexpired session of an active agent, seen since `idle_since`."""
    row = (
        await conn.execute(
            LIVE_SESSION, {"token_hash": token_hash, "now": now, "idle_since": idle_since}
        )
    ).one_or_none()
    if row is None:
        return None
    return LiveSession(int(row.id), row.last_seen_at, _agent(row, row.agent_id))


async def touch_session(conn: AsyncConnection, session_id: int, at: datetime) -> None:
    await conn.execute(update(db.agent_sessions).where(_S.id == session_id).values(last_seen_at=at))


async def revoke_session(conn: AsyncConnection, token_hash: str, at: datetime) -> None:
    await conn.execute(
        update(db.agent_sessions).where(_S.token_hash == token_hash).values(revoked_at=at)
    )


async def delete_ended_sessions(conn: AsyncConnection, before: datetime) -> int:
    """Delete the sessions revoked or expired before `before`; how many."""
    result = await conn.execute(
        delete(db.agent_sessions).where(or_(_S.revoked_at < before, _S.expires_at < before))
    )
    return int(result.rowcount)


# --- state changes -------------------------------------------------------------------------


async def latest_states(conn: AsyncConnection, agent_ids: Iterable[int]) -> list[StateChange]:
    """Each agent's latest change (agents with none are left out)."""
    rows = await conn.execute(
        select(_CHANGES.agent_id, _CHANGES.state, _CHANGES.reason, _CHANGES.at)
        .ext(distinct_on(_CHANGES.agent_id))
        .where(_CHANGES.agent_id.in_(sorted(set(agent_ids))))
        .order_by(_CHANGES.agent_id, _CHANGES.at.desc(), _CHANGES.id.desc())
    )
    return [StateChange(int(r.agent_id), r.state, r.reason, r.at) for r in rows]


async def ai_agents_on_duty(conn: AsyncConnection) -> list[int]:
    """Active AI agents whose latest state is Ready or On call (the AI worker sets Ready
    when it starts and Offline when it stops), lowest id first."""
    latest = (
        select(_CHANGES.agent_id, _CHANGES.state)
        .ext(distinct_on(_CHANGES.agent_id))
        .join(db.agents, _A.id == _CHANGES.agent_id)
        .where(_A.is_ai, _A.is_active)
        .order_by(_CHANGES.agent_id, _CHANGES.at.desc(), _CHANGES.id.desc())
        .subquery()
    )
    rows = await conn.execute(
        select(latest.c.agent_id)
        .where(latest.c.state.in_((AgentState.READY.value, AgentState.ON_CALL.value)))
        .order_by(latest.c.agent_id)
    )
    return [int(r[0]) for r in rows]


async def record_state(
    conn: AsyncConnection, agent_id: int, state: str, reason: str | None
) -> datetime:
    """Append a change; its time (the database's now)."""
    at: datetime | None = await conn.scalar(
        insert(db.agent_state_changes)
        .values(agent_id=agent_id, state=state, reason=reason)
        .returning(_CHANGES.at)
    )
    assert at is not None
    return at


@dataclass(frozen=True)
class AgentLabel:
    display_name: str
    is_ai: bool
    works_a_queue: bool = True  # role agent (people and AI); False: a supervisor or admin


async def agent_labels(conn: AsyncConnection, agent_ids: Iterable[int]) -> dict[int, AgentLabel]:
    """Display names, whether each is an AI agent, and whether each works a queue (reports:
    the funnel and analytics by agent)."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(_A.id, _A.display_name, _A.is_ai, _A.role).where(_A.id.in_(ids))
    )
    return {
        int(r.id): AgentLabel(r.display_name, bool(r.is_ai), r.role == AgentRole.AGENT)
        for r in rows
    }


# --- agent management (services/staff.py) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaffRecord:
    """An account as the supervisor's agent pages show it."""

    id: int
    email: str
    display_name: str
    role: str
    queue: str | None
    is_ai: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    created_at: datetime  # signed in
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None  # signed out, or signed out by a supervisor
    ip_address: str | None
    user_agent: str | None


def _staff_columns() -> list[Any]:
    last_login = (
        select(func.max(_S.created_at)).where(_S.agent_id == _A.id).scalar_subquery()
    ).label("last_login_at")
    return [_A.id, _A.email, _A.display_name, _A.role, _A.queue, _A.is_ai, _A.is_active,
            _A.created_at, last_login]  # fmt: skip


def _staff(row: Any) -> StaffRecord:
    return StaffRecord(int(row.id), row.email, row.display_name, row.role, row.queue,
                       bool(row.is_ai), bool(row.is_active), row.created_at,
                       row.last_login_at)  # fmt: skip


async def create_agent(conn: AsyncConnection, new: NewAgent, *, is_ai: bool) -> int:
    """Insert one agent; its id. A taken email raises the unique violation (IntegrityError)."""
    agent_id = await conn.scalar(
        insert(db.agents)
        .values(
            email=new.email,
            display_name=new.display_name,
            role=new.role,
            queue=new.queue,
            password_hash=new.password_hash,
            is_ai=is_ai,
        )
        .returning(_A.id)
    )
    assert agent_id is not None
    return int(agent_id)


async def email_taken(conn: AsyncConnection, email: str) -> bool:
    return (await conn.scalar(select(_A.id).where(_A.email == email))) is not None


async def staff_page(conn: AsyncConnection, *, limit: int, offset: int) -> list[StaffRecord]:
    """Accounts, active first, then by name."""
    rows = await conn.execute(
        select(*_staff_columns())
        .order_by(_A.is_active.desc(), _A.display_name, _A.id)
        .limit(limit)
        .offset(offset)
    )
    return [_staff(r) for r in rows]


async def staff_record(conn: AsyncConnection, agent_id: int) -> StaffRecord | None:
    row = (await conn.execute(select(*_staff_columns()).where(_A.id == agent_id))).one_or_none()
    return None if row is None else _staff(row)


async def staff_by_email(conn: AsyncConnection, email: str) -> StaffRecord | None:
    row = (await conn.execute(select(*_staff_columns()).where(_A.email == email))).one_or_none()
    return None if row is None else _staff(row)


async def update_agent(conn: AsyncConnection, agent_id: int, **values: Any) -> None:
    """Set some of is_active, password_hash, role, queue (and updated_at)."""
    allowed = {"is_active", "password_hash", "role", "queue"}
    assert values and set(values) <= allowed, values
    await conn.execute(
        update(db.agents).where(_A.id == agent_id).values(**values, updated_at=func.now())
    )


async def revoke_sessions_of(conn: AsyncConnection, agent_id: int, at: datetime) -> int:
    """End every session of the agent still open; how many."""
    result = await conn.execute(
        update(db.agent_sessions)
        .where(_S.agent_id == agent_id, _S.revoked_at.is_(None), _S.expires_at > at)
        .values(revoked_at=at)
    )
    return int(result.rowcount)


async def sessions_of(
    conn: AsyncConnection, agent_id: int, *, limit: int, offset: int
) -> list[SessionRecord]:
    """The agent's sign-ins, newest first."""
    rows = await conn.execute(
        select(
            _S.id,
            _S.created_at,
            _S.last_seen_at,
            _S.expires_at,
            _S.revoked_at,
            _S.ip_address,
            _S.user_agent,
        )
        .where(_S.agent_id == agent_id)
        .order_by(_S.created_at.desc(), _S.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [SessionRecord(int(r.id), r.created_at, r.last_seen_at, r.expires_at, r.revoked_at,
                          r.ip_address, r.user_agent) for r in rows]  # fmt: skip


async def state_changes_of(
    conn: AsyncConnection, agent_id: int, *, limit: int, offset: int
) -> list[StateChange]:
    """The agent's state changes (with pause reasons), newest first."""
    rows = await conn.execute(
        select(_CHANGES.agent_id, _CHANGES.state, _CHANGES.reason, _CHANGES.at)
        .where(_CHANGES.agent_id == agent_id)
        .order_by(_CHANGES.at.desc(), _CHANGES.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [StateChange(int(r.agent_id), r.state, r.reason, r.at) for r in rows]


def join_active_agent(statement: Select[Any], agent_id: ColumnElement[Any]) -> Select[Any]:
    """`statement` joined to the active agent `agent_id` names, with that agent's email,
    display_name, role, queue and is_ai added: another owner's lookup stays one statement
    (an API token's agent, adapters/api_tokens.py). Read the row with `agent_of`."""
    return statement.add_columns(_A.email, _A.display_name, _A.role, _A.queue, _A.is_ai).join(
        db.agents, and_(_A.id == agent_id, _A.is_active)
    )


def agent_of(row: Any, agent_id: int) -> Agent:
    """The agent in a row of a statement built with `join_active_agent`."""
    return _agent(row, agent_id)


@dataclass(frozen=True)
class AgentListing:
    """Every agent, active or not, as the supervisors' filters list them."""

    id: int
    email: str
    display_name: str
    role: str
    is_ai: bool
    is_active: bool


async def agent_directory(conn: AsyncConnection) -> list[AgentListing]:
    """Every agent, people first, by name (the calls list's and audit viewer's filters and
    the names on their rows: agents are a few hundred at most)."""
    rows = await conn.execute(
        select(_A.id, _A.email, _A.display_name, _A.role, _A.is_ai, _A.is_active).order_by(
            _A.is_ai, _A.display_name, _A.id
        )
    )
    return [
        AgentListing(int(r.id), r.email, r.display_name, r.role, bool(r.is_ai), bool(r.is_active))
        for r in rows
    ]


# --- analytics (issue 12): time in each state over a period ----------------------------------

# Each change starts an interval that the agent's next change ends. Per agent, reading the
# index on (agent_id, at, id) in order (it holds the state: no table rows are read), three
# parts: the intervals wholly inside the period, summed per state; the change in force when
# the period starts, with the first change inside (or none: it is still in force); and the
# last change inside, which has no next change inside. The last two come back whole for
# `domain.analytics.time_in_states` to clip, at most two per agent.
_STATE_TIME = text(
    """
    SELECT a.id AS agent_id, w.state, NULL::timestamptz AS began, NULL::timestamptz AS ended,
           EXTRACT(EPOCH FROM sum(w.next_at - w.at)) AS seconds
    FROM agents a
    CROSS JOIN LATERAL (
        SELECT c.state, c.at, lead(c.at) OVER (ORDER BY c.at, c.id) AS next_at
        FROM agent_state_changes c
        WHERE c.agent_id = a.id AND c.at >= :start AND c.at < :end
    ) w
    WHERE w.next_at IS NOT NULL
    GROUP BY a.id, w.state
    UNION ALL
    SELECT a.id, opening.state, opening.at,
           (SELECT c.at FROM agent_state_changes c
            WHERE c.agent_id = a.id AND c.at >= :start AND c.at < :end
            ORDER BY c.at, c.id LIMIT 1),
           NULL
    FROM agents a
    CROSS JOIN LATERAL (
        SELECT c.state, c.at FROM agent_state_changes c
        WHERE c.agent_id = a.id AND c.at < :start
        ORDER BY c.at DESC, c.id DESC LIMIT 1
    ) opening
    UNION ALL
    SELECT a.id, latest.state, latest.at, NULL, NULL
    FROM agents a
    CROSS JOIN LATERAL (
        SELECT c.state, c.at FROM agent_state_changes c
        WHERE c.agent_id = a.id AND c.at >= :start AND c.at < :end
        ORDER BY c.at DESC, c.id DESC LIMIT 1
    ) latest
    """
)


async def state_time_between(
    conn: AsyncConnection, start: datetime, end: datetime
) -> tuple[list[StateTotal], list[StateSpan]]:
    """Every agent's time in each state over [start, end): the intervals wholly inside,
    summed per state, and the ones crossing the start or still open, unclipped."""
    totals: list[StateTotal] = []
    spans: list[StateSpan] = []
    for r in await conn.execute(_STATE_TIME, {"start": start, "end": end}):
        if r.seconds is not None:
            totals.append(StateTotal(int(r.agent_id), r.state, float(r.seconds)))
        else:
            spans.append(StateSpan(int(r.agent_id), r.state, r.began, r.ended))
    return totals, spans


# --- the supervisors' wallboard (services.wallboard) -------------------------------------------

# Every agent with their latest state change, one index probe per agent (agents are a few
# hundred; their state changes grow every day).
_AGENTS_IN_STATES = text(
    """
    SELECT a.id, a.display_name, a.role, a.queue, a.is_ai, a.is_active,
           s.state, s.reason, s.at
    FROM agents a
    LEFT JOIN LATERAL (
        SELECT c.state, c.reason, c.at FROM agent_state_changes c
        WHERE c.agent_id = a.id
        ORDER BY c.at DESC, c.id DESC
        LIMIT 1
    ) s ON true
    ORDER BY a.id
    """
)


@dataclass(frozen=True)
class StaffOnRecord:
    """An agent of any role, active or not, as the wallboard reads them."""

    seen: AgentSeen  # with their latest state change
    role: str
    is_active: bool


async def agents_in_states(conn: AsyncConnection) -> list[StaffOnRecord]:
    """Every agent (any role, disabled ones too) with their latest state change."""
    rows = await conn.execute(_AGENTS_IN_STATES)
    return [
        StaffOnRecord(
            AgentSeen(int(r.id), r.display_name, bool(r.is_ai), r.queue, r.state, r.reason, r.at),
            role=str(r.role),
            is_active=bool(r.is_active),
        )
        for r in rows
    ]


# Each agent's time in each state within each settled day, kept in `agent_state_days`
# (migration 0012) once counted; a row with no agent marks a day counted. Counting splits
# the intervals at the days' midnights (in `zone`): an interval still open at the end of the
# last day counts up to it (the days are settled: the agent was still in that state).
_STATE_DAYS_LOCK = 7_300_013
_SD = db.agent_state_days.c
_COUNT_STATE_DAYS = text(
    """
    WITH days AS (
        SELECT d AS day,
               (d::timestamp AT TIME ZONE :zone) AS day_start,
               ((d + 1)::timestamp AT TIME ZONE :zone) AS day_end
        FROM unnest(CAST(:days AS date[])) AS t(d)
    ),
    bounds AS (SELECT min(day_start) AS lo, max(day_end) AS hi FROM days),
    spans AS (
        SELECT a.id AS agent_id, v.state, GREATEST(v.at, b.lo) AS began,
               coalesce(v.next_at, b.hi) AS ended
        FROM agents a
        CROSS JOIN bounds b
        CROSS JOIN LATERAL (
            SELECT u.state, u.at, lead(u.at) OVER (ORDER BY u.at, u.id) AS next_at
            FROM (
                (SELECT c.state, c.at, c.id FROM agent_state_changes c
                 WHERE c.agent_id = a.id AND c.at < b.lo
                 ORDER BY c.at DESC, c.id DESC LIMIT 1)
                UNION ALL
                (SELECT c.state, c.at, c.id FROM agent_state_changes c
                 WHERE c.agent_id = a.id AND c.at >= b.lo AND c.at < b.hi)
            ) u
        ) v
    )
    INSERT INTO agent_state_days (day, agent_id, state, seconds)
    SELECT d.day, s.agent_id, s.state,
           sum(EXTRACT(EPOCH FROM LEAST(s.ended, d.day_end) - GREATEST(s.began, d.day_start)))
    FROM spans s
    CROSS JOIN LATERAL generate_series(
        date_trunc('day', s.began AT TIME ZONE :zone),
        date_trunc('day', (s.ended - interval '1 microsecond') AT TIME ZONE :zone),
        interval '1 day'
    ) AS g(local_day)
    JOIN days d ON d.day = CAST(g.local_day AS date)
    WHERE s.ended > s.began
    GROUP BY d.day, s.agent_id, s.state
    """
)


async def keep_state_days(conn: AsyncConnection, days: Sequence[date], zone: str) -> list[date]:
    """Count each of these consecutive settled days (in `zone`) into `agent_state_days` if it
    is not counted yet, in the caller's transaction; the days now kept: `days`, or the first
    of them when the database's clock says the later ones are not a day old yet."""
    if not days:
        return []
    await conn.execute(select(func.pg_advisory_xact_lock(_STATE_DAYS_LOCK)))
    now = await conn.scalar(select(func.now()))
    assert now is not None
    past = [d for d in days if _day_end(d, zone) <= now - timedelta(days=1)]
    kept = set(await conn.scalars(select(_SD.day).where(_SD.agent_id.is_(None), _SD.day.in_(past))))
    missing = [d for d in past if d not in kept]
    if missing:
        for run in _consecutive(missing):
            await conn.execute(_COUNT_STATE_DAYS, {"days": run, "zone": zone})
        await conn.execute(
            insert(db.agent_state_days),
            [{"day": d, "agent_id": None, "state": None, "seconds": 0.0} for d in missing],
        )
    return past


def _day_end(day: date, zone: str) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, ZoneInfo(zone))


def _consecutive(days: Sequence[date]) -> list[list[date]]:
    """Sorted days in runs of consecutive days (each run is counted in one statement)."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] + timedelta(days=1) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


async def kept_state_time(conn: AsyncConnection, first: date, last: date) -> list[StateTotal]:
    """Each agent's kept time in each state over the days from `first` to `last` (all
    kept)."""
    rows = await conn.execute(
        select(_SD.agent_id, _SD.state, func.sum(_SD.seconds).label("seconds"))
        .where(_SD.day >= first, _SD.day <= last, _SD.agent_id.is_not(None))
        .group_by(_SD.agent_id, _SD.state)
    )
    return [StateTotal(int(r.agent_id), r.state, float(r.seconds)) for r in rows]
