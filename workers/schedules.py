"""Temporal Schedules of the dialler, provisioned idempotently at worker start."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from schemas.reconcile import ReconcileInput
from workflows.reconcile import ReconcileWorkflow

RECONCILE_SCHEDULE_ID = "reconcile-queues"
RECONCILE_EVERY = timedelta(minutes=5)


async def ensure_schedules(client: Client, task_queue: str) -> list[str]:
    """Create the schedules that do not exist yet; return the ids created."""
    created = []
    try:
        await client.create_schedule(
            RECONCILE_SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ReconcileWorkflow.run,
                    ReconcileInput(),
                    id="reconcile-queues",
                    task_queue=task_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=RECONCILE_EVERY)]),
                # a slow run is never doubled up: the next one waits for its slot
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
            ),
        )
        created.append(RECONCILE_SCHEDULE_ID)
    except ScheduleAlreadyRunningError:
        pass
    return created
