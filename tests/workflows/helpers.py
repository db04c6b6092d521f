"""Helpers for driving outreach workflows in tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.outreach import (
    Assessment,
    ChangeEvent,
    ChangeKind,
    ClaimGranted,
    ClaimRequest,
    OutreachInput,
    OutreachResult,
)
from tests.workflows.conftest import Harness
from workflows.outreach import OutreachWorkflow, workflow_id_for

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], seconds: float = 20
) -> T:
    """Poll until `accept(probe())`; the last value is returned or the test fails."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await probe()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {seconds}s; last value: {value!r}")
        await asyncio.sleep(0.1)


async def start(h: Harness, user_id: int) -> WorkflowHandle[OutreachWorkflow, OutreachResult]:
    return await h.client.start_workflow(
        OutreachWorkflow.run,
        OutreachInput(user_id),
        id=workflow_id_for(user_id),
        task_queue=h.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


def event(kind: ChangeKind, user_id: int, **fields: Any) -> ChangeEvent:
    occurred = fields.pop("occurred_at", datetime.now(UTC))
    return ChangeEvent(
        event_id=fields.pop("event_id", uuid.uuid4().hex),
        kind=kind,
        user_id=user_id,
        occurred_at=occurred,
        **fields,
    )


async def task_row(h: Harness, user_id: int) -> Any:
    async with h.dialler.connect() as conn:
        return (
            await conn.execute(select(db.call_tasks).where(db.call_tasks.c.user_id == user_id))
        ).one_or_none()


async def task_in(h: Harness, user_id: int, queue: str | None, status: str = "ready") -> Any:
    """Wait until the claimant's task is in `queue` with `status` (None: withdrawn)."""

    def ok(row: Any) -> bool:
        if queue is None:
            return row is not None and row.status == "withdrawn"
        return row is not None and row.queue == queue and row.status == status

    return await eventually(lambda: task_row(h, user_id), ok)


async def assessment(handle: WorkflowHandle[Any, Any]) -> Assessment | None:
    result: Assessment | None = await handle.query(OutreachWorkflow.assessment)
    return result


async def claim_task(
    h: Harness, user_id: int, queue: Queue, *, agent_id: int = 1, lease_seconds: int = 600
) -> ClaimGranted:
    """Claim exactly this claimant's task as `ClaimService` does (other tests' tasks share
    the queues): reserve its row, then confirm with the workflow's `claim` Update."""
    row = await task_in(h, user_id, queue.value)
    async with h.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.id == row.id, db.call_tasks.c.status == "ready")
            .values(status="claimed", claimed_by=agent_id, claimed_at=func.now())
        )
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = h.client.get_workflow_handle_for(
        OutreachWorkflow.run, row.workflow_id
    )
    return await handle.execute_update(
        OutreachWorkflow.claim,
        ClaimRequest(
            agent_id=agent_id, queue=queue, task_version=row.version, lease_seconds=lease_seconds
        ),
    )


async def ensure_agents(h: Harness, count: int = 40) -> None:
    """Agents 1..count (claims reference them); the harness is shared by the session."""
    async with h.dialler.begin() as conn:
        if await conn.scalar(select(db.agents.c.id).where(db.agents.c.id == 1)) is None:
            await conn.execute(
                insert(db.agents),
                [
                    {"id": n, "email": f"a{n}@t", "display_name": f"A{n}", "role": "agent"}
                    for n in range(1, count + 1)
                ],
            )
