"""Queue depth and queue events for live views (see `adapters.live` for channels and names).

`LiveQueueEvents` is the `ClaimEvents` the web app gives `ClaimService`: after every claim,
outcome and release it publishes the depth of each queue to that queue's channel, and a
`task-released` event when an agent gives a claimant back.
"""

from __future__ import annotations

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


class LiveQueueEvents:
    def __init__(self, engine: AsyncEngine, bus: LiveBus) -> None:
        self._engine = engine
        self._bus = bus

    async def publish_depths(self) -> None:
        try:
            depths = await queue_depths(self._engine)
        except SQLAlchemyError as error:
            log.warning("queue depth not published", error=str(error))
            return
        for queue, depth in depths.items():
            await self._bus.publish(channel_for_queue(queue), depth.event())

    async def claimed(self, task: ClaimedTask) -> None:
        await self.publish_depths()

    async def outcome_recorded(self, user_id: int, result: OutcomeRecorded) -> None:
        await self.publish_depths()

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
        await self.publish_depths()
