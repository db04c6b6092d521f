"""Queue depth and queue events for live views (see `adapters.live` for channels and names).

`LiveQueueEvents` is the `ClaimEvents` the web app gives `ClaimService`: after every claim,
outcome and release it has `DepthPublisher` publish the depth of each queue to that queue's
channel, and it publishes a `task-released` event when an agent gives a claimant back.
With a `FloorPublisher` it also tells the supervisors' wallboards (`floor-changed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import task_store
from adapters.live import (
    FLOOR_CHANGED,
    QUEUE_DEPTH,
    SUPERVISORS_CHANNEL,
    TASK_RELEASED,
    LiveBus,
    LiveEvent,
    channel_for_queue,
)
from schemas.enums import Queue
from schemas.outreach import OutcomeRecorded, Released
from services.claims import ClaimedTask
from services.work_waiters import publish_task_ready

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
    tallies = await task_store.queue_tallies(engine)
    depths: dict[Queue, QueueDepth] = {}
    for queue in Queue:
        tally = tallies.get(queue.value) or task_store.QueueTally(ready=0, waiting=0, claimed=0)
        depths[queue] = QueueDepth(queue.value, tally.ready, tally.waiting, tally.claimed)
    return depths


class CoalescedPublisher:
    """Publishes after changes, off the caller and at most once per `every` seconds: the
    first change is published at once, and changes during the pause make one more publish
    after it, so the last change is never left out. One per process; `changed` never waits.
    Subclasses say what `publish` sends."""

    def __init__(self, every: float) -> None:
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
        raise NotImplementedError

    async def close(self) -> None:
        """Stops the publishing task. A cancellation that lands inside a Redis command can
        be swallowed by the client, so the loop also stops when it sees `_closed`."""
        self._closed = True
        self._dirty.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class DepthPublisher(CoalescedPublisher):
    """Publishes every queue's depth after changes, off the agents' requests: the depth
    query counts every live task, and when each claim and outcome ran it before answering,
    it was 8 % of the web process's CPU under 200 agents and sat in every claim's latency."""

    def __init__(self, engine: AsyncEngine, bus: LiveBus, every: float = 0.25) -> None:
        super().__init__(every)
        self._engine = engine
        self._bus = bus

    async def publish(self) -> None:
        try:
            depths = await queue_depths(self._engine)
            for queue, depth in depths.items():
                await self._bus.publish(channel_for_queue(queue), depth.event())
        except SQLAlchemyError as error:  # (LiveBus.publish already handles Redis errors)
            log.warning("queue depth not published", error=str(error))


# A burst of changes reaches the wallboards as at most two events per second per process:
# the first at once, the rest together half a second later (within the second promised).
FLOOR_EVERY = 0.5


class FloorPublisher(CoalescedPublisher):
    """Tells the supervisors' wallboards that the floor changed (`floor-changed` on
    live:supervisors): each open wallboard fetches its figures again, so the event carries
    no figures and no personal data, and one event stands for a burst of changes. Each
    process that changes the floor has one: the web app (claims, outcomes, releases, agents'
    states, sign-in and sign-out) and the outreach worker (tasks its workflows write: CDC
    changes, timers, reconcile)."""

    def __init__(self, bus: LiveBus, every: float = FLOOR_EVERY) -> None:
        super().__init__(every)
        self._bus = bus

    async def publish(self) -> None:
        event = LiveEvent(FLOOR_CHANGED, {"at": datetime.now(UTC).isoformat()})
        await self._bus.publish(SUPERVISORS_CHANNEL, event)


class LiveQueueEvents:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: LiveBus,
        depths: DepthPublisher,
        floor: FloorPublisher | None = None,
    ) -> None:
        self._engine = engine
        self._bus = bus
        self._depths = depths
        self._floor = floor

    def _changed(self) -> None:
        self._depths.changed()
        if self._floor is not None:
            self._floor.changed()

    async def claimed(self, task: ClaimedTask) -> None:
        self._changed()

    async def outcome_recorded(self, user_id: int, result: OutcomeRecorded) -> None:
        self._changed()

    async def released(self, user_id: int, agent_id: int, result: Released) -> None:
        try:
            found = await task_store.task_ref(self._engine, user_id)
        except SQLAlchemyError as error:
            log.warning("task-released not published", error=str(error))
            found = None
        if found is not None:
            task_id, queue = found
            event = LiveEvent(
                TASK_RELEASED,
                {
                    "queue": queue,
                    "task_id": task_id,
                    "agent_id": agent_id,
                    "at": datetime.now(UTC).isoformat(),
                },
            )
            await self._bus.publish(channel_for_queue(Queue(queue)), event)
            await publish_task_ready(self._bus, Queue(queue))  # long-polling agents claim it
        self._changed()
