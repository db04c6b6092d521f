"""Delivering a change event to a claimant's outreach workflow: signal-with-start.

A running workflow (`outreach-<user_id>`) receives the event through its `change` signal;
when none is running (never started, or ended at DONE) one is started with the event as its
first signal (DESIGN.md section 6). Used by the CDC worker, reconcile, the catch-up and
integrity schedules, and dead-letter replay.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from schemas.outreach import ChangeEvent, OutreachInput
from workflows.outreach import OutreachWorkflow, workflow_id_for

# Failures that pass by themselves: wait and try again (the stream waits with them).
TRANSIENT_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
    }
)


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying (Temporal away or overloaded); False for errors the
    same request will always meet (a rejected payload, a bad argument)."""
    if isinstance(error, RPCError):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, ConnectionError | TimeoutError | OSError)


async def signal_with_start(client: Client, task_queue: str, event: ChangeEvent) -> None:
    await client.start_workflow(
        OutreachWorkflow.run,
        OutreachInput(event.user_id),
        id=workflow_id_for(event.user_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        start_signal="change",
        start_signal_args=[event],
        static_summary=f"Outreach for claimant {event.user_id}",
    )
