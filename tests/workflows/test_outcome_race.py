"""Handlers interleaving at an await, on the time-skipping test server: an outcome whose
write is slow, the agent's lease ending meanwhile, and another agent's claim. Whatever the
order, no claim the workflow granted is lost to an outcome for an older one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas.enums import Queue
from schemas.outreach import (
    ClaimRequest,
    OutcomeRequest,
    OutcomeStored,
    OutreachInput,
    OutreachResult,
    OutreachState,
    RecordOutcome,
)
from tests.factories import add_claimant
from tests.workflows.conftest import running_harness, scratch_databases
from tests.workflows.helpers import claim_task, ensure_agents, eventually, task_row
from workflows.outreach import OutreachWorkflow, workflow_id_for

# The test server does not skip time while a workflow task or a local activity is in flight
# (the held outcome keeps one open), so this lease ends in real time: short, but long enough
# for the outcome to start inside it on a busy machine.
LEASE = timedelta(seconds=12)
FIRST, SECOND = 1, 2


async def _state(handle: WorkflowHandle[OutreachWorkflow, OutreachResult]) -> OutreachState:
    state: OutreachState | None = await handle.query(OutreachWorkflow.state)
    assert state is not None
    return state


async def _lease_timer_seen(handle: WorkflowHandle[Any, Any]) -> bool:
    """The lease's timer fired and a workflow task after it ran: the workflow has acted on
    the lease's end (or decided to wait for the outcome)."""
    events = (await handle.fetch_history()).events
    fired = [e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    return bool(fired) and any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and e.event_id > fired[0]
        for e in events
    )


async def test_an_outcome_never_ends_a_newer_claim(
    skipping_env: WorkflowEnvironment, settings: Settings
) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()

    def held(activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        real = next(a for a in activities if a.__name__ == "record_outcome")

        @activity.defn(name="record_outcome")
        async def record_outcome(request: RecordOutcome) -> OutcomeStored:
            entered.set()
            await gate.wait()
            stored: OutcomeStored = await real(request)
            return stored

        return [record_outcome if a is real else a for a in activities]

    async with (
        scratch_databases("outcome_race") as (dialler, replica),
        running_harness(skipping_env, settings, dialler, replica, wrap=held) as h,
    ):
        await ensure_agents(h, 2)
        user_id = await add_claimant(replica, signed=False, pending=1)
        handle = await h.client.start_workflow(
            OutreachWorkflow.run,
            OutreachInput(user_id),
            id=workflow_id_for(user_id),
            task_queue=h.task_queue,
            # the held activity's workflow task is heartbeated after 80 % of this, which lets
            # the lease's timer and the second claim in while the outcome is being written
            task_timeout=timedelta(seconds=1),
        )
        lease_seconds = int(LEASE.total_seconds())
        await claim_task(h, user_id, Queue.UNSIGNED, agent_id=FIRST, lease_seconds=lease_seconds)
        outcome = await handle.start_update(
            OutreachWorkflow.record_outcome,
            OutcomeRequest(agent_id=FIRST, disposition="busy"),
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        await asyncio.wait_for(entered.wait(), 10)

        await skipping_env.sleep(LEASE + timedelta(seconds=2))  # the lease ends mid-outcome
        await eventually(lambda: _lease_timer_seen(handle), bool)

        # Give the workflow the chance to hand the task back and list it again.
        async def listed_again() -> bool:
            state, row = await _state(handle), await task_row(h, user_id)
            return state.claim is None and (row.status, row.version) == (
                "ready",
                state.task_version,
            )

        with contextlib.suppress(AssertionError):  # or the first claim stands until its outcome
            await eventually(listed_again, bool, 3)
        state = await _state(handle)
        second = ClaimRequest(
            agent_id=SECOND, queue=Queue.UNSIGNED, task_version=state.task_version,
            lease_seconds=lease_seconds,
        )  # fmt: skip
        try:
            await handle.execute_update(OutreachWorkflow.claim, second)
            granted = True
        except WorkflowUpdateFailedError as refused:
            assert "already claimed by agent 1" in str(refused.cause)
            granted = False

        gate.set()
        recorded = await outcome.result()
        assert recorded.user_id == user_id
        settled = await _state(handle)
        if granted:
            # the outcome ended the first agent's claim only: the second agent keeps theirs
            assert settled.claim is not None and settled.claim.agent_id == SECOND
            row = await eventually(lambda: task_row(h, user_id), lambda r: r.status == "claimed")
            assert row.claimed_by == SECOND
        else:
            assert settled.claim is None  # the outcome ended the first agent's claim
