"""The queue projection (`call_tasks`) and its reservations: every read and write of the table.

`call_tasks` is an index of the outreach workflows, one row per claimant. Its writers:

- the claimant's workflow, through its `refresh_task` activity: `publish` and `withdraw`,
  versioned, so an older version (a retried activity, a late run) never overwrites a newer one;
- the claim protocol (`services.claims`): `reserve_next`, then `confirm_reservation` or
  `end_reservation`, each guarded by the row's version, so the workflow's own write wins;
- reconcile: `withdraw_without_workflow`, for a task no workflow stands behind.

Everything else reads. A function takes a connection when its caller decides the transaction
(claim-next's autocommit statements, the refresh's one connection), an engine otherwise. The
hot statements (the reservation, the held claim, the task upsert) are built once, at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Insert, Select, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.floor import REASON_DIGITS, Claimant, TaskGroup
from domain.queue_listing import QueueListing, TaskFilter, TaskOrder
from schemas import dialler_db as db
from schemas.enums import Queue, TaskStatus
from schemas.outreach import PublishTask, TaskWritten, WithdrawTask

_T = db.call_tasks.c
_LIVE = [TaskStatus.READY.value, TaskStatus.CLAIMED.value]


@dataclass(frozen=True)
class CallTask:
    """One `call_tasks` row (every column; a test keeps the two in step)."""

    id: int
    user_id: int
    workflow_id: str
    queue: str
    score: Decimal
    score_breakdown: list[dict[str, Any]]
    not_before: datetime
    not_before_reason: str
    status: str
    claimed_by: int | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    version: int
    route_to_people_only: bool
    owner_agent_id: int | None
    held_until: datetime | None
    ai_routed: bool
    score_arm: str | None
    created_at: datetime
    updated_at: datetime


def _task(row: Row[Any] | None) -> CallTask | None:
    return None if row is None else CallTask(**row._mapping)


# --- the claim protocol (services.claims) ------------------------------------------------------

# Reserve the best ready task in one statement: no row lock is held while the workflow is
# asked to confirm, so the workflow's own writes to the row never wait on this agent.
# The reservation expires after `hold` seconds if the process dies before confirming
# (reconcile hands such rows back to their workflows).
#
# Personal callbacks (domain.callback_routing): the agent's own due callbacks come first;
# another agent's is skipped while it is held for its owner (`held_until`), unless the
# owner is away: disabled, signed out (their latest state Offline) or without a live
# session. `owner_away` tells the workflow, which cannot see sessions, why it was taken.
# (The owner's presence is read in the same statement, as SQL text over the agents'
# tables: one round trip per claim.)
# The same hold offers a claimant first to their previous successful agent
# (domain.agent_preference), outside the callback queue. Its owner is offered it first only
# while it is held: after that it is anyone's by score, the owner's too, where a personal
# callback stays its owner's first.
# A task routed to the AI (domain.ai_routing) is the AI's to make; a person is offered it
# only once it has waited AI_GRACE_SECONDS past its time (the AI worker is down or behind).
AI_GRACE_SECONDS = 600
_READY = """
    status = 'ready' AND queue = :queue AND not_before <= now()
    AND (:people OR NOT route_to_people_only)
    AND (NOT :people OR NOT ai_routed OR not_before <= now() - make_interval(secs => :ai_grace))
    AND NOT (id = ANY(:skip))
"""
_OWNER_PRESENT = """
    EXISTS (
        SELECT 1 FROM agents a
        WHERE a.id = call_tasks.owner_agent_id AND a.is_active
          AND EXISTS (
            SELECT 1 FROM agent_sessions s
            WHERE s.agent_id = a.id AND s.revoked_at IS NULL AND s.expires_at > now()
              AND s.last_seen_at > now() - make_interval(secs => :idle)
          )
          AND COALESCE((
            SELECT c.state FROM agent_state_changes c
            WHERE c.agent_id = a.id ORDER BY c.at DESC, c.id DESC LIMIT 1
          ), 'offline') <> 'offline'
    )
"""
_RESERVE_NEXT = text(  # built from the constants above only
    f"""
    UPDATE call_tasks
    SET status = 'claimed', claimed_by = :agent, claimed_at = now(),
        lease_expires_at = now() + make_interval(secs => :hold)
    WHERE id = COALESCE(
        (
            SELECT id FROM call_tasks
            WHERE owner_agent_id = :agent AND {_READY}
              AND (queue = 'callback' OR held_until > now())
            ORDER BY score DESC
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        ),
        (
            SELECT id FROM call_tasks
            WHERE {_READY}
              AND (owner_agent_id IS NULL OR owner_agent_id = :agent OR held_until <= now()
                   OR NOT {_OWNER_PRESENT})
            ORDER BY score DESC
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
    )
    RETURNING id, user_id, workflow_id, queue, version, score, score_breakdown,
        not_before_reason,
        (owner_agent_id IS NOT NULL AND owner_agent_id <> :agent AND held_until > now())
            AS owner_away
    """  # noqa: S608
)
# The claim this agent already holds (or is reserving) in this queue.
_HELD = text(
    """
    SELECT id, user_id, workflow_id, queue, version, score, score_breakdown, not_before_reason
    FROM call_tasks
    WHERE claimed_by = :agent AND status = 'claimed' AND queue = :queue
    ORDER BY claimed_at
    LIMIT 1
    """
)


@dataclass(frozen=True)
class Reservation:
    """A task reserved (or held) by an agent, as the claim protocol needs it."""

    id: int
    user_id: int
    workflow_id: str
    queue: str
    version: int
    score: Decimal
    score_breakdown: list[dict[str, Any]]
    not_before_reason: str
    owner_away: bool = False  # taken from a personal callback's absent owner


async def reserve_next(
    conn: AsyncConnection,
    *,
    agent_id: int,
    queue: Queue,
    people: bool,
    skip: list[int],
    hold_seconds: int,
    session_idle_seconds: int,
) -> Reservation | None:
    """Reserve the best task this agent may take now (`people`: a person, who may take
    people-only tasks), skipping the ids in `skip`; None when there is none."""
    parameters = {
        "agent": agent_id,
        "hold": hold_seconds,
        "idle": session_idle_seconds,
        "queue": queue.value,
        "people": people,
        "skip": skip,
        "ai_grace": AI_GRACE_SECONDS,
    }
    row = (await conn.execute(_RESERVE_NEXT, parameters)).one_or_none()
    return None if row is None else Reservation(**row._mapping)


async def held_reservation(
    conn: AsyncConnection, agent_id: int, queue: Queue
) -> Reservation | None:
    """The claim this agent already holds (or is reserving) in this queue, if any:
    claim-next answers with it first, so a retry after a lost response gets the same task
    instead of a second one. (A supervisor asking for another queue asks for another task.)"""
    row = (await conn.execute(_HELD, {"agent": agent_id, "queue": queue.value})).one_or_none()
    return None if row is None else Reservation(**row._mapping)


def _own_reservation(reservation: Reservation, agent_id: int) -> Any:
    """The row, if it is still this agent's reservation at the version reserved: a newer
    write by the workflow wins over the protocol's."""
    return update(db.call_tasks).where(
        _T.id == reservation.id,
        _T.version == reservation.version,
        _T.claimed_by == agent_id,
        _T.status == TaskStatus.CLAIMED.value,
    )


async def confirm_reservation(
    conn: AsyncConnection,
    reservation: Reservation,
    agent_id: int,
    *,
    lease_expires_at: datetime | None,
) -> None:
    """The workflow granted the claim: the row carries the workflow's lease."""
    await conn.execute(
        _own_reservation(reservation, agent_id).values(lease_expires_at=lease_expires_at)
    )


async def end_reservation(
    conn: AsyncConnection,
    reservation: Reservation,
    agent_id: int,
    *,
    status: TaskStatus,
    reason: str | None = None,
) -> None:
    """The reservation ends without a claim: the row is handed back (`ready`) or, when no
    workflow stands behind it, withdrawn with `reason`."""
    values: dict[str, Any] = {
        "lease_expires_at": None,
        "status": status.value,
        "claimed_by": None,
        "claimed_at": None,
    }
    if reason is not None:
        values["not_before_reason"] = reason[:200]
    await conn.execute(_own_reservation(reservation, agent_id).values(**values))


async def claimed_user_ids(engine: AsyncEngine, agent_id: int) -> list[int]:
    """The claimants whose tasks this agent holds."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_T.user_id).where(
                _T.claimed_by == agent_id, _T.status == TaskStatus.CLAIMED.value
            )
        )
        return [int(r[0]) for r in rows]


# --- the workflow's writes (activities.outreach) -------------------------------------------------


def _task_upsert_statement() -> Insert:
    """The task write, its values given as parameters: an older version (a retried activity,
    a late run) never overwrites a newer one."""
    table = db.call_tasks
    statement = pg_insert(table).values(updated_at=func.now())
    return statement.on_conflict_do_update(
        index_elements=[table.c.user_id],
        set_={
            column.name: statement.excluded[column.name]
            for column in table.c
            if column.name not in ("id", "user_id", "created_at")
        },
        where=table.c.version < statement.excluded.version,
    )


# Built once at import: building it per change was a large share of the worker's CPU.
TASK_UPSERT = _task_upsert_statement()


async def publish(conn: AsyncConnection, request: PublishTask) -> TaskWritten:
    """Write the claimant's task as the workflow sees it (claimed when it holds a claim)."""
    a = request.assessment
    claim = request.claim
    queue = a.stage.queue
    if queue is None or a.not_before is None:
        raise ValueError("only a callable stage can be published; withdraw instead")
    values: dict[str, Any] = {
        "user_id": request.user_id,
        "workflow_id": request.workflow_id,
        "queue": queue.value,
        "score": a.score,
        "score_breakdown": [
            {"name": f.name, "contribution": f.contribution, "detail": f.detail} for f in a.factors
        ],
        "not_before": a.not_before,
        "not_before_reason": a.not_before_reason[:200],
        "status": (TaskStatus.CLAIMED if claim else TaskStatus.READY).value,
        "claimed_by": claim.agent_id if claim else None,
        "claimed_at": claim.claimed_at if claim else None,
        "lease_expires_at": claim.lease_expires_at if claim else None,
        "version": request.version,
        "route_to_people_only": a.people_only,
        "ai_routed": a.routing is not None and a.routing.to_ai,
        "owner_agent_id": a.owner_agent_id,
        "held_until": a.held_until,
        "score_arm": a.score_arm,
    }
    result = await conn.execute(TASK_UPSERT, values)
    return TaskWritten(applied=result.rowcount > 0)


async def withdraw(conn: AsyncConnection, request: WithdrawTask) -> TaskWritten:
    """Take the claimant's task out of the queue (unless a newer version is written); with
    a queue, write the withdrawn row even where none was (the reason is kept)."""
    values: dict[str, Any] = {
        "status": TaskStatus.WITHDRAWN.value,
        "claimed_by": None,
        "claimed_at": None,
        "lease_expires_at": None,
        "not_before_reason": request.reason[:200],
        "version": request.version,
        "updated_at": func.now(),
    }
    if request.queue is None or request.workflow_id is None:
        result = await conn.execute(
            update(db.call_tasks)
            .where(_T.user_id == request.user_id, _T.version < request.version)
            .values(**values)
        )
        return TaskWritten(applied=result.rowcount > 0)
    row = values | {
        "user_id": request.user_id,
        "workflow_id": request.workflow_id,
        "queue": request.queue,
        "score": request.score,
        "not_before": func.now(),
    }
    upsert = pg_insert(db.call_tasks).values(**row)
    result = await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[_T.user_id],
            set_={**values, "queue": upsert.excluded.queue, "score": upsert.excluded.score},
            where=_T.version < upsert.excluded.version,
        )
    )
    return TaskWritten(applied=result.rowcount > 0)


async def withdraw_without_workflow(engine: AsyncEngine, user_ids: list[int], reason: str) -> None:
    """Withdraw tasks no running workflow stands behind (reconcile)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(_T.user_id.in_(user_ids))
            .values(status=TaskStatus.WITHDRAWN.value, not_before_reason=reason[:200])
        )


# --- reads --------------------------------------------------------------------------------------


def score_arm_of(user_id: int | ColumnElement[Any]) -> ColumnElement[Any]:
    """The live split's arm on the claimant's task (NULL: none, or no task), as a scalar
    subquery for another owner's statement (`user_id` a value or a column): the call log
    writes it on a call with its outcome, so a call carries the arm of the task as it was
    then."""
    return select(_T.score_arm).where(_T.user_id == user_id).scalar_subquery()


@dataclass(frozen=True)
class LiveTask:
    """A task in a queue (ready or claimed)."""

    user_id: int
    queue: str
    status: str
    lease_expires_at: datetime | None


async def live_tasks(
    engine: AsyncEngine, user_ids: tuple[int, int] | None = None
) -> list[LiveTask]:
    """Every ready or claimed task, or those of user ids in [from, to)."""
    query = select(_T.user_id, _T.queue, _T.status, _T.lease_expires_at).where(_T.status.in_(_LIVE))
    if user_ids is not None:
        query = query.where(_T.user_id >= user_ids[0], _T.user_id < user_ids[1])
    async with engine.connect() as conn:
        return [LiveTask(int(r.user_id), str(r.queue), str(r.status), r.lease_expires_at)
                for r in await conn.execute(query)]  # fmt: skip


async def recently_withdrawn(
    engine: AsyncEngine, since: datetime, user_ids: tuple[int, int] | None = None
) -> dict[int, str]:
    """Claimants whose task their workflow withdrew since `since` (user id -> the queue it
    was in): a workflow stands behind them and said why (no consent, a wrong number...)."""
    query = select(_T.user_id, _T.queue).where(
        _T.status == TaskStatus.WITHDRAWN.value, _T.updated_at >= since
    )
    if user_ids is not None:
        query = query.where(_T.user_id >= user_ids[0], _T.user_id < user_ids[1])
    async with engine.connect() as conn:
        return {int(r.user_id): str(r.queue) for r in await conn.execute(query)}


async def top_ready_user_ids(conn: AsyncConnection, queue: Queue, limit: int) -> list[int]:
    """The claimants of the best-scored ready tasks of a queue, best first."""
    rows = await conn.execute(
        select(_T.user_id)
        .where(_T.status == TaskStatus.READY.value, _T.queue == queue.value)
        .order_by(_T.score.desc())
        .limit(limit)
    )
    return [int(user_id) for (user_id,) in rows]


async def lowest_ready(engine: AsyncEngine, queues: list[Queue], limit: int) -> list[LiveTask]:
    """Ready tasks of these queues, lowest score first (`dialler sync test` picks a probe)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_T.user_id, _T.queue, _T.status, _T.lease_expires_at)
            .where(_T.status == TaskStatus.READY.value, _T.queue.in_([q.value for q in queues]))
            .order_by(_T.score)
            .limit(limit)
        )
        return [LiveTask(int(r.user_id), str(r.queue), str(r.status), r.lease_expires_at)
                for r in rows]  # fmt: skip


async def task_user_ids(engine: AsyncEngine) -> list[int]:
    """Every claimant with a task, whatever its status (a withdrawn task may have been
    withdrawn because of what a re-screening is about to change)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(_T.user_id).order_by(_T.user_id))
        return [int(r.user_id) for r in rows]


async def queue_and_status(engine: AsyncEngine, user_id: int) -> tuple[str, str] | None:
    """The claimant's task's queue and status; None without a task."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(_T.queue, _T.status).where(_T.user_id == user_id))
        ).one_or_none()
    return None if row is None else (str(row.queue), str(row.status))


async def task_of(conn: AsyncConnection, user_id: int) -> CallTask | None:
    """The claimant's task, whatever its status."""
    return _task(
        (await conn.execute(select(db.call_tasks).where(_T.user_id == user_id))).one_or_none()
    )


async def held_task(engine: AsyncEngine, agent_id: int, user_id: int) -> CallTask | None:
    """The claimant's task if, and only if, this agent holds its claim."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(db.call_tasks).where(
                    _T.user_id == user_id,
                    _T.claimed_by == agent_id,
                    _T.status == TaskStatus.CLAIMED.value,
                )
            )
        ).one_or_none()
    return _task(row)


async def holds_claim(engine: AsyncEngine, user_id: int, agent_id: int) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(holds_claim_query(user_id, agent_id))
    return found is not None


async def current_claim(engine: AsyncEngine, agent_id: int) -> CallTask | None:
    """The task this agent holds now (the latest claimed), if any."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(db.call_tasks)
                .where(_T.claimed_by == agent_id, _T.status == TaskStatus.CLAIMED.value)
                .order_by(_T.claimed_at.desc())
                .limit(1)
            )
        ).one_or_none()
    return _task(row)


@dataclass(frozen=True)
class NextReady:
    not_before: datetime
    not_before_reason: str


async def next_ready(engine: AsyncEngine, queue: Queue) -> NextReady | None:
    """When the queue's next ready task becomes callable, and why not before."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(_T.not_before, _T.not_before_reason)
                .where(_T.queue == queue.value, _T.status == TaskStatus.READY.value)
                .order_by(_T.not_before)
                .limit(1)
            )
        ).one_or_none()
    return None if row is None else NextReady(row.not_before, row.not_before_reason)


async def task_ref(engine: AsyncEngine, user_id: int) -> tuple[int, str] | None:
    """The claimant's task's id and queue, if they have a task."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(_T.id, _T.queue).where(_T.user_id == user_id))
        ).one_or_none()
    return None if row is None else (int(row.id), str(row.queue))


# --- the supervisors' queue lists (web/blueprints/supervisor_claimants.py) ---------------------


@dataclass(frozen=True)
class ListedTask:
    """A task as a supervisor's queue list shows it: ids and reasons, no personal data."""

    user_id: int
    score: Decimal
    score_breakdown: list[dict[str, Any]]
    not_before: datetime
    not_before_reason: str
    status: str
    callable_now: bool  # ready and due
    claimed_by: int | None
    holder_name: str | None
    lease_expires_at: datetime | None
    owner_agent_id: int | None  # a personal callback's owner
    owner_name: str | None
    held_until: datetime | None
    people_only: bool
    listed_since: datetime  # the row's creation: when the claimant first had a task
    ai_routed: bool = False  # the routing policy gave the contact to the AI


def _listing_filter(status: TaskFilter) -> list[ColumnElement[bool]]:
    due = _T.not_before <= func.now()
    ready = _T.status == TaskStatus.READY.value
    match status:
        case TaskFilter.LIVE:
            return [_T.status.in_(_LIVE)]
        case TaskFilter.READY:
            return [ready, due]
        case TaskFilter.WAITING:
            return [ready, ~due]
        case TaskFilter.CLAIMED:
            return [_T.status == TaskStatus.CLAIMED.value]
        case TaskFilter.WITHDRAWN:
            return [_T.status == TaskStatus.WITHDRAWN.value]


def _listing_order(order: TaskOrder) -> list[ColumnElement[Any]]:
    """Each order ends on the user id, so pages never overlap nor skip a tie."""
    match order:
        case TaskOrder.SCORE:
            return [_T.score.desc(), _T.user_id]
        case TaskOrder.NOT_BEFORE:
            return [_T.not_before, _T.user_id]
        case TaskOrder.WAITING_SINCE:
            return [_T.created_at, _T.user_id]


async def queue_listing(
    conn: AsyncConnection,
    listing: QueueListing,
    *,
    limit: int,
    agent_name: Callable[[ColumnElement[Any]], ColumnElement[Any]],
) -> list[ListedTask]:
    """A page of one queue's tasks, filtered and ordered as `listing` says (`agent_name`:
    the agents' owner's display name of an agent id column)."""
    rows = await conn.execute(
        select(
            _T.user_id,
            _T.score,
            _T.score_breakdown,
            _T.not_before,
            _T.not_before_reason,
            _T.status,
            ((_T.status == TaskStatus.READY.value) & (_T.not_before <= func.now())).label(
                "callable_now"
            ),
            _T.claimed_by,
            agent_name(_T.claimed_by).label("holder_name"),
            _T.lease_expires_at,
            _T.owner_agent_id,
            agent_name(_T.owner_agent_id).label("owner_name"),
            _T.held_until,
            _T.route_to_people_only.label("people_only"),
            _T.created_at.label("listed_since"),
            _T.ai_routed,
        )
        .where(_T.queue == listing.queue.value, *_listing_filter(listing.status))
        .order_by(*_listing_order(listing.order))
        .limit(limit)
        .offset(listing.offset)
    )
    return [ListedTask(**row._mapping) for row in rows]


# --- query fragments, for a caller that composes one statement over several owners ----------------


def claimed_by_query(agent_id: int) -> Select[tuple[int]]:
    """The user ids whose tasks this agent holds."""
    return select(_T.user_id).where(
        _T.claimed_by == agent_id, _T.status == TaskStatus.CLAIMED.value
    )


def holds_claim_query(user_id: int, agent_id: int) -> Select[tuple[int]]:
    """The claimant's task id if this agent holds its claim (use with `.exists()`)."""
    return select(_T.id).where(
        _T.user_id == user_id,
        _T.claimed_by == agent_id,
        _T.status == TaskStatus.CLAIMED.value,
    )


# --- counts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueTally:
    ready: int  # callable now
    waiting: int  # in the queue, not callable yet
    claimed: int


async def queue_tallies(engine: AsyncEngine) -> dict[str, QueueTally]:
    """Every queue's depth, in one query over the partial index of live tasks."""
    now = func.now()
    is_ready = _T.status == TaskStatus.READY.value
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                _T.queue,
                func.count().filter(is_ready & (_T.not_before <= now)),
                func.count().filter(is_ready & (_T.not_before > now)),
                func.count().filter(_T.status == TaskStatus.CLAIMED.value),
            )
            .where(_T.status.in_(_LIVE))
            .group_by(_T.queue)
        )
        return {str(r[0]): QueueTally(int(r[1]), int(r[2]), int(r[3])) for r in rows}


# Ready tasks split by whether they may be called now; waiting ones counted per reason.
_TASKS_BY_REASON = text(
    """
    SELECT queue, status, not_before <= now() AS callable, not_before_reason, count(*)
    FROM call_tasks
    WHERE status IN ('ready', 'claimed')
    GROUP BY queue, status, callable, not_before_reason
    """
)


@dataclass
class QueueCounts:
    callable_now: int = 0
    waiting: list[tuple[str, int]] = field(default_factory=list)  # (reason, tasks)
    claimed: int = 0


async def queue_counts(dialler: AsyncEngine) -> dict[str, QueueCounts]:
    """Per queue: tasks callable now, waiting (with their reasons, as written on the task)
    and claimed (`dialler queue depth`)."""
    found: dict[str, QueueCounts] = {}
    async with dialler.connect() as conn:
        for queue, status, callable_now, reason, count in await conn.execute(_TASKS_BY_REASON):
            counts = found.setdefault(str(queue), QueueCounts())
            if status == "claimed":
                counts.claimed += int(count)
            elif callable_now:
                counts.callable_now += int(count)
            else:
                counts.waiting.append((str(reason), int(count)))
    return found


# --- the supervisors' wallboard (services.wallboard) -------------------------------------------
# Every task that is, or may come back, in a queue, counted by what decides where it stands
# (`domain.floor.place_of`). The reason is kept only where it says why a task waits (a ready
# task not due yet, a withdrawn one), and without its digits (`domain.floor.reason_key`):
# one group per kind of reason, not one per minute in "cooldown ... until 14:30". The digits
# go from the distinct reasons, after a first count (translate() costs more per row than
# the grouping: 3x slower over 36,000 tasks).
_FLOOR_GROUPS = text(
    """
    SELECT queue, status, due, held, btrim(translate(reason, :digits, '')) AS reason,
           sum(tasks) AS tasks, min(oldest_due) AS oldest_due
    FROM (
        SELECT queue, status,
            status = 'ready' AND not_before <= :now AS due,
            status = 'ready' AND not_before <= :now AND owner_agent_id IS NOT NULL
                AND COALESCE(held_until > :now, false) AS held,
            CASE WHEN status = 'withdrawn' OR (status = 'ready' AND not_before > :now)
                 THEN not_before_reason ELSE '' END AS reason,
            count(*) AS tasks,
            min(not_before) FILTER (WHERE status = 'ready' AND not_before <= :now) AS oldest_due
        FROM call_tasks
        WHERE status IN ('ready', 'claimed', 'withdrawn')
        GROUP BY 1, 2, 3, 4, 5
    ) by_reason
    GROUP BY 1, 2, 3, 4, 5
    """
)
# The task each agent holds (the latest claimed), over the partial index on claimed_by.
_CLAIMANTS = text(
    """
    SELECT DISTINCT ON (claimed_by) claimed_by, user_id, queue, claimed_at
    FROM call_tasks
    WHERE claimed_by IS NOT NULL AND status = 'claimed'
    ORDER BY claimed_by, claimed_at DESC
    """
)


async def floor_task_groups(conn: AsyncConnection, now: datetime) -> list[TaskGroup]:
    """The queues' tasks in groups, for `domain.floor.queue_floors`, as at `now`."""
    rows = await conn.execute(_FLOOR_GROUPS, {"now": now, "digits": REASON_DIGITS})
    return [
        TaskGroup(
            queue=str(r.queue),
            status=str(r.status),
            due=bool(r.due),
            held=bool(r.held),
            reason=str(r.reason),
            tasks=int(r.tasks),
            oldest_due=r.oldest_due,
        )
        for r in rows
    ]


async def claimants_by_agent(conn: AsyncConnection) -> dict[int, Claimant]:
    """The claimant each agent holds now (agent id -> their task's claimant)."""
    rows = await conn.execute(_CLAIMANTS)
    return {int(r.claimed_by): Claimant(int(r.user_id), str(r.queue), r.claimed_at) for r in rows}
