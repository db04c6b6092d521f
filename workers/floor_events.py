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

from schemas.outreach import TaskRefreshed
from schemas.reconcile import RefreshDone
from services.live_updates import FloorPublisher


def wrote_a_task(result: Any) -> bool:
    """Whether an activity's result says it changed the queues' tasks."""
    if isinstance(result, TaskRefreshed):
        return result.wrote
    if isinstance(result, RefreshDone):
        return result.withdrawn_directly > 0
    return False


class FloorChanges(Interceptor):
    """Tells `floor` after every activity that wrote a task."""

    def __init__(self, floor: FloorPublisher) -> None:
        self._floor = floor

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self._floor)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, floor: FloorPublisher) -> None:
        super().__init__(next)
        self._floor = floor

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        if wrote_a_task(result):
            self._floor.changed()
        return result
