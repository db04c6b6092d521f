"""Queue depth and queue events for live views (see `adapters.live` for channels and names).

`LiveQueueEvents` is the `ClaimEvents` the web app gives `ClaimService`: after every claim,
outcome and release it has `DepthPublisher` publish the depth of each queue to that queue's
channel, and it publishes a `task-released` event when an agent gives a claimant back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters.live import QUEUE_DEPTH, TASK_RELEASED, LiveBus, LiveEvent, channel_for_queue
from schemas import dialler_db as db
from schemas.enums import Queue, TaskStatus
from schemas.outreach import OutcomeRecorded, Released
from services.claims import ClaimedTask

log = get_logger(__name__)


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int  # callable now
    waiting: int  # in the queue, not callable yet (cooldown, calling window, callback time)
    claimed: int  # with an agent

    def event(self) -> LiveEvent:
        return LiveEvent(QUEUE_DEPTH, asdict(self))


async def queue_depths(engine: AsyncEngine) -> dict[Queue, QueueDepth]:
    """Every queue's depth, in one query over the partial index of live tasks."""
    tasks = db.call_tasks.c
    now = func.now()
    is_ready = tasks.status == TaskStatus.READY.value
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                tasks.queue,
                func.count().filter(is_ready & (tasks.not_before <= now)),
                func.count().filter(is_ready & (tasks.not_before > now)),
                func.count().filter(tasks.status == TaskStatus.CLAIMED.value),
            )
            .where(tasks.status.in_([TaskStatus.READY.value, TaskStatus.CLAIMED.value]))
            .group_by(tasks.queue)
        )
        found = {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}
    return {q: QueueDepth(q.value, *found.get(q.value, (0, 0, 0))) for q in Queue}


class DepthPublisher:
    """Publishes every queue's depth after changes, off the agents' requests and at most once
    per `every` seconds: the depth query counts every live task, and when each claim and
    outcome ran it before answering, it was 8 % of the web process's CPU under 200 agents
    and sat in every claim's latency. One per process; `changed` never waits."""

    def __init__(self, engine: AsyncEngine, bus: LiveBus, every: float = 0.25) -> None:
        self._engine = engine
        self._bus = bus
        self._every = every
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def changed(self) -> None:
        self._dirty.set()
        if not self._closed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._closed:
            await self._dirty.wait()
            if self._closed:
                return
            self._dirty.clear()
            await self.publish()
            await asyncio.sleep(self._every)  # changes meanwhile make one more publish

    async def publish(self) -> None:
        try:
            depths = await queue_depths(self._engine)
            for queue, depth in depths.items():
                await self._bus.publish(channel_for_queue(queue), depth.event())
        except SQLAlchemyError as error:  # (LiveBus.publish already handles Redis errors)
            log.warning("queue depth not published", error=str(error))

    async def close(self) -> None:
        """Stops the publishing task. A cancellation that lands inside a Redis command can
        be swallowed by the client, so the loop also stops when it sees `_closed`."""
        self._closed = True
        self._dirty.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class LiveQueueEvents:
    def __init__(self, engine: AsyncEngine, bus: LiveBus, depths: DepthPublisher) -> None:
        self._engine = engine
        self._bus = bus
        self._depths = depths

    async def claimed(self, task: ClaimedTask) -> None:
        self._depths.changed()

    async def outcome_recorded(self, user_id: int, result: OutcomeRecorded) -> None:
        self._depths.changed()

    async def released(self, user_id: int, agent_id: int, result: Released) -> None:
        try:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(db.call_tasks.c.id, db.call_tasks.c.queue).where(
                            db.call_tasks.c.user_id == user_id
                        )
                    )
                ).one_or_none()
        except SQLAlchemyError as error:
            log.warning("task-released not published", error=str(error))
            row = None
        if row is not None:
            event = LiveEvent(
                TASK_RELEASED,
                {
                    "queue": row.queue,
                    "task_id": row.id,
                    "agent_id": agent_id,
                    "at": datetime.now(UTC).isoformat(),
                },
            )
            await self._bus.publish(channel_for_queue(Queue(row.queue)), event)
        self._depths.changed()
