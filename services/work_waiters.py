"""Long-poll for work (`POST /api/queue/next` with `wait`): requests that found nothing to
claim wait here, per queue, and are woken when a task in their queue becomes ready.

Wake-ups come from a `task-ready` event on the queue's work channel (`work_channel_for`),
published by the outreach worker when one of its activities writes a task
(workers.floor_events), heard by one shared subscriber per process that fans out to the
waiting requests (not one Redis connection per request). A short periodic re-check also
wakes the oldest waiter, so a lost message never strands anyone, and a task whose
`not_before` passes (which publishes nothing) is still found.

Fairness: waiters stand in line in arrival order, one line per queue and kind of agent (AI
agents never get people-only tasks, so they must not hold people back). Only the head of a
line tries to claim, one attempt at a time per queue, so a single new task goes to the
agent who has waited longest in this process. A claim hands the wake-up on to the next in
line, since more tasks may be ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from redis.exceptions import RedisError
from structlog import get_logger

from adapters.live import LiveBus, LiveEvent
from schemas.enums import Queue

log = get_logger(__name__)

T = TypeVar("T")

TASK_READY = "task-ready"
MAX_WAIT_SECONDS = 25
RECHECK_SECONDS = 2.0


def work_channel_for(queue: Queue) -> str:
    """Not the queue's live channel: browsers' streams there need not hear every write."""
    return f"work:queue:{queue.value}"


def task_ready_event(queue: Queue) -> LiveEvent:
    return LiveEvent(TASK_READY, {"queue": queue.value})


async def publish_task_ready(bus: LiveBus, queue: Queue) -> None:
    """Best effort, like every live event: a lost one costs a waiter one re-check period."""
    await bus.publish(work_channel_for(queue), task_ready_event(queue))


@dataclass(eq=False)
class _Waiter:
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class WorkWaiters:
    """One per web process."""

    def __init__(self, bus: LiveBus, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self._bus = bus
        self.recheck_seconds = recheck_seconds
        # The longest a request is held, whatever it asks (a test client with a short read
        # timeout, e.g. schemathesis's, sets it lower).
        self.longest_seconds: float = MAX_WAIT_SECONDS
        self._lines: dict[tuple[Queue, bool], deque[_Waiter]] = {}
        self._locks: dict[Queue, asyncio.Lock] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closed = False
        self.attempts = 0  # claim attempts made for waiters (tests watch a waiter park)

    def waiting(self, queue: Queue, is_ai: bool) -> int:
        """How many requests wait in this line."""
        return len(self._lines.get((queue, is_ai), ()))

    def ready(self, queue: Queue) -> None:
        """A task in `queue` may be claimable: wake the head of each of its lines."""
        for kind in (False, True):
            line = self._lines.get((queue, kind))
            if line:
                line[0].woken.set()

    async def wait_for(
        self,
        queue: Queue,
        is_ai: bool,
        attempt: Callable[[], Awaitable[T | None]],
        wait_seconds: float,
    ) -> T | None:
        """What `attempt` claims, trying when woken while first in line; None at the end
        of `wait_seconds`."""
        self._listen()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_seconds, self.longest_seconds)
        line = self._lines.setdefault((queue, is_ai), deque())
        lock = self._locks.setdefault(queue, asyncio.Lock())
        me = _Waiter()
        line.append(me)
        if line[0] is me:
            me.woken.set()  # nobody ahead: try at once
        try:
            while (left := deadline - loop.time()) > 0:
                first = line[0] is me
                timeout = min(left, self.recheck_seconds) if first else left
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(me.woken.wait(), timeout)
                if line[0] is not me:
                    me.woken.clear()
                    continue
                me.woken.clear()  # a wake-up during the attempt makes one more attempt
                async with lock:
                    claimed = await attempt()
                self.attempts += 1
                if claimed is not None:
                    return claimed
            return None
        finally:
            was_first = line[0] is me
            line.remove(me)
            if was_first and line:
                line[0].woken.set()  # the next in line tries (more tasks may be ready)
            if not line:
                del self._lines[(queue, is_ai)]

    def _listen(self) -> None:
        if not self._closed and (self._listener is None or self._listener.done()):
            self._listener = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        by_channel = {work_channel_for(q): q for q in Queue}
        while not self._closed:
            try:
                async with self._bus.subscribe(list(by_channel)) as subscription:
                    while not self._closed:
                        event = await subscription.next(self.recheck_seconds)
                        if event is None or event.name != TASK_READY:
                            continue
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            self.ready(Queue(event.data["queue"]))
            except RedisError as error:
                # The periodic re-check keeps waiters going until Redis is back.
                log.warning("work wake-ups lost, resubscribing", error=str(error))
                await asyncio.sleep(self.recheck_seconds)

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
