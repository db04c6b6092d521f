"""The outreach worker's side of the wallboard's live updates: when one of its activities
writes a claimant's task (a workflow's refresh after a CDC change, a timer or a reconcile,
or reconcile withdrawing a task no workflow stands behind), the supervisors' wallboards are
told (`services.live_updates.FloorPublisher`, coalesced, through Redis, so every web
process's streams hear it). Claims, outcomes and releases are told by the web app itself.

A worker interceptor sees every activity, local ones included, and their results, so the
activities stay unaware of live views.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from adapters.live import LiveBus
from schemas.enums import Queue
from schemas.outreach import TaskRefreshed
from schemas.reconcile import RefreshDone
from services.live_updates import FloorPublisher
from services.work_waiters import publish_task_ready


def wrote_a_task(result: Any) -> bool:
    """Whether an activity's result says it changed the queues' tasks."""
    if isinstance(result, TaskRefreshed):
        return result.wrote
    if isinstance(result, RefreshDone):
        return result.withdrawn_directly > 0
    return False


def ready_queue(result: Any) -> Queue | None:
    """The queue in which an activity's result left an unclaimed task, for the agents
    long-polling it (its `not_before` may lie ahead: their claim then finds nothing and they
    wait on, which costs one query)."""
    if isinstance(result, TaskRefreshed) and result.wrote and result.written is not None:
        shape = result.written
        if shape.queue is not None and shape.claimed_by is None:
            try:
                return Queue(shape.queue)
            except ValueError:
                return None
    return None


class FloorChanges(Interceptor):
    """Tells `floor` after every activity that wrote a task, and with `bus`, the agents
    long-polling a queue (`task-ready`) after one left a task there to claim."""

    def __init__(self, floor: FloorPublisher, bus: LiveBus | None = None) -> None:
        self._floor = floor
        self._bus = bus

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self._floor, self._bus)


class _Inbound(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, floor: FloorPublisher, bus: LiveBus | None
    ) -> None:
        super().__init__(next)
        self._floor = floor
        self._bus = bus

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        if wrote_a_task(result):
            self._floor.changed()
        if self._bus is not None and (queue := ready_queue(result)) is not None:
            await publish_task_ready(self._bus, queue)  # never raises (best effort)
        return result
