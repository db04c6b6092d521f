"""The claim protocol's own guarantees: a claim is answered without any activity running
(so its reply is not held up by database work), a retried claim gets the same grant, and a
claim the workflow does not answer hands its reservation back at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.outreach import (
    ChangeKind,
    ClaimRequest,
    OutcomeRequest,
    OutreachInput,
    OutreachResult,
    RefreshTask,
    TaskRefreshed,
)
from services.claims import ClaimService
from tests.factories import add_claimant, set_user
from tests.workflows.conftest import Harness, running_harness
from tests.workflows.helpers import (
    claim_task,
    ensure_agents,
    event,
    eventually,
    start,
    task_in,
    task_row,
)
from workflows.outreach import OutreachWorkflow, workflow_id_for
from workflows.outreach_client import OutreachClient, OutreachUnavailable

AGENT = 3


@pytest.fixture(scope="module", autouse=True)
async def agents(harness: Harness) -> None:
    await ensure_agents(harness)


async def _history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


def _local_activities(events: list[HistoryEvent]) -> int:
    return sum(
        e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for e in events
    )


async def test_a_claim_runs_no_activity_and_a_retry_gets_the_same_grant(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = await start(harness, user_id)
    row = await task_in(harness, user_id, "unsigned")
    # loading, assessing and publishing the task; the row is written by the local activity
    # before its workflow task completes and records it in the history
    before = await eventually(lambda: _history(handle), lambda h: _local_activities(h) > 0)

    granted = await claim_task(harness, user_id, Queue.UNSIGNED, agent_id=AGENT)
    added = (await _history(handle))[len(before) :]
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED in [e.event_type for e in added]
    assert _local_activities(added) == 0

    again = await handle.execute_update(
        OutreachWorkflow.claim,
        ClaimRequest(agent_id=AGENT, queue=Queue.UNSIGNED, task_version=row.version),
    )
    assert again == granted
    state = await handle.query(OutreachWorkflow.state)
    assert state is not None and state.claim is not None
    assert state.claim.agent_id == AGENT
    claimed = await task_in(harness, user_id, "unsigned", status="claimed")
    assert claimed.claimed_by == AGENT
    await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="no_answer")
    )


class _Unanswered:
    """A Temporal client whose workflows never answer an update: it times out, or hangs
    until the caller gives up."""

    def __init__(self, hang: bool) -> None:
        self._hang = hang

    def get_workflow_handle_for(self, *_: object) -> _Unanswered:
        return self

    async def execute_update(self, *_: object) -> None:
        if self._hang:
            await asyncio.Event().wait()
        raise WorkflowUpdateRPCTimeoutOrCancelledError()


@pytest.mark.parametrize("hang", [False, True], ids=["rpc-timeout", "caller-gave-up"])
async def test_an_unanswered_claim_hands_its_reservation_back(harness: Harness, hang: bool) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    agent = 30 + int(hang)
    # it asks again to learn whether the claim was granted, then gives up and hands back
    unanswered = OutreachClient.over(_Unanswered(hang), harness.task_queue)  # type: ignore[arg-type]
    service = ClaimService(harness.dialler, unanswered, settle_seconds=0.2)

    expected = TimeoutError if hang else OutreachUnavailable
    with pytest.raises(expected):
        async with asyncio.timeout(1):
            await service.claim_next(agent, Queue.UNSIGNED)

    async def held() -> list[int]:
        async with harness.dialler.connect() as conn:
            rows = await conn.scalars(
                select(db.call_tasks.c.id).where(db.call_tasks.c.claimed_by == agent)
            )
            return list(rows)

    for _ in range(50):  # the hand-back is shielded from the cancellation: it finishes soon
        if not await held():
            break
        await asyncio.sleep(0.05)
    assert await held() == []


async def test_a_claim_granted_while_the_task_is_written_is_written_too(
    temporal_env: WorkflowEnvironment, settings: Settings, harness: Harness
) -> None:
    """A local activity slower than a workflow task lets a claim in while it writes: the
    write, which did not know of the claim, lists the task as ready again, and the workflow
    goes round once more to write it claimed (else another agent could reserve it)."""
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    entered, gate = asyncio.Event(), asyncio.Event()

    def gated(activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        real = next(a for a in activities if a.__name__ == "refresh_task")

        @activity.defn(name="refresh_task")
        async def refresh_task(request: RefreshTask) -> TaskRefreshed:
            if request.user_id == user_id and request.facts.is_vulnerable:
                entered.set()
                await gate.wait()
            result: TaskRefreshed = await real(request)
            return result

        return [refresh_task if a is real else a for a in activities]

    async with running_harness(
        temporal_env, settings, harness.dialler, harness.replica, wrap=gated
    ) as h:
        handle = await h.client.start_workflow(
            OutreachWorkflow.run,
            OutreachInput(user_id),
            id=workflow_id_for(user_id),
            task_queue=h.task_queue,
            # the slow activity's workflow task is heartbeated after 80 % of this, which
            # lets the claim's Update in while the activity still runs
            task_timeout=timedelta(seconds=1),
        )
        listed = await task_in(h, user_id, "unsigned")
        await set_user(h.replica, user_id, is_vulnerable=True)
        await handle.signal(
            OutreachWorkflow.change,
            event(ChangeKind.VULNERABILITY_CHANGED, user_id, is_vulnerable=True),
        )
        await asyncio.wait_for(entered.wait(), 10)
        granted = await claim_task(h, user_id, Queue.UNSIGNED, agent_id=AGENT)
        assert granted.task_version == listed.version
        gate.set()

        # the late write lands (people only), then the workflow writes the claim back
        row = await eventually(
            lambda: task_row(h, user_id),
            lambda row: row.route_to_people_only and row.status == "claimed",
        )
        assert row.claimed_by == AGENT and row.version > listed.version
        await h.claims.record_outcome(user_id, OutcomeRequest(agent_id=AGENT, disposition="busy"))


class _LosesTheFirstAnswer:
    """A Temporal client whose first claim Update reaches the workflow, but whose answer
    never comes back (a dropped connection): the caller gives up once it was sent."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.sent = asyncio.Event()
        self.workflow_id = ""  # the claimant whose answer was lost

    def get_workflow_handle_for(self, run: Any, workflow_id: str) -> _LosesTheFirstAnswer:
        self._handle = self._client.get_workflow_handle_for(run, workflow_id)
        self.workflow_id = self.workflow_id if self.sent.is_set() else workflow_id
        return self

    async def execute_update(self, *args: Any) -> Any:
        granted = await self._handle.execute_update(*args)
        if not self.sent.is_set():
            self.sent.set()
            await asyncio.Event().wait()  # the answer is lost: the caller gives up
        return granted


async def test_a_claim_whose_answer_is_lost_leaves_row_and_workflow_agreeing(
    harness: Harness,
) -> None:
    listed = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, listed)
    await task_in(harness, listed, "unsigned")
    agent = 36
    lossy = _LosesTheFirstAnswer(harness.client)
    service = ClaimService(harness.dialler, OutreachClient.over(lossy, harness.task_queue))  # type: ignore[arg-type]

    request = asyncio.create_task(service.claim_next(agent, Queue.UNSIGNED))
    await asyncio.wait_for(lossy.sent.wait(), 10)  # the workflow has granted the claim
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    user_id = int(lossy.workflow_id.removeprefix("outreach-"))  # the best task, maybe not ours
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = (
        harness.client.get_workflow_handle_for(OutreachWorkflow.run, lossy.workflow_id)
    )
    state = await handle.query(OutreachWorkflow.state)
    assert state is not None and state.claim is not None and state.claim.agent_id == agent
    row = await task_row(harness, user_id)
    assert (row.status, row.claimed_by) == ("claimed", agent)
    assert row.lease_expires_at == state.claim.lease_expires_at

    retry = await harness.claims.claim_next(agent, Queue.UNSIGNED)
    assert retry is not None and retry.user_id == user_id
    assert retry.lease_expires_at == state.claim.lease_expires_at
    await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=agent, disposition="no_answer")
    )


async def test_claim_next_returns_the_claim_the_agent_already_holds(harness: Harness) -> None:
    for _ in range(2):
        user_id = await add_claimant(harness.replica, signed=False, pending=1)
        await start(harness, user_id)
        await task_in(harness, user_id, "unsigned")
    agent = 37

    first = await harness.claims.claim_next(agent, Queue.UNSIGNED)
    again = await harness.claims.claim_next(agent, Queue.UNSIGNED)
    assert first is not None and again is not None
    assert again.task_id == first.task_id
    assert await harness.claims.claimed_by(agent) == [first.user_id]
    await harness.claims.record_outcome(
        first.user_id, OutcomeRequest(agent_id=agent, disposition="no_answer")
    )


async def test_a_retry_after_the_workflow_rewrote_the_claimed_task_keeps_the_claim(
    harness: Harness,
) -> None:
    """The workflow rewrites a claimed task when the claimant changes (a new version): the
    agent's retry still gets their claim, and the row is not handed back under it."""
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    agent = 38
    first = await harness.claims.claim_next(agent, Queue.UNSIGNED)
    assert first is not None
    claimed = await task_row(harness, first.user_id)
    await set_user(harness.replica, first.user_id, is_vulnerable=True)
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = (
        harness.client.get_workflow_handle_for(OutreachWorkflow.run, workflow_id_for(first.user_id))
    )
    await handle.signal(
        OutreachWorkflow.change,
        event(ChangeKind.VULNERABILITY_CHANGED, first.user_id, is_vulnerable=True),
    )
    await eventually(
        lambda: task_row(harness, first.user_id), lambda row: row.version > claimed.version
    )

    again = await harness.claims.claim_next(agent, Queue.UNSIGNED)
    assert again is not None and again.task_id == first.task_id
    assert again.lease_expires_at == first.lease_expires_at
    row = await task_row(harness, first.user_id)
    assert (row.status, row.claimed_by) == ("claimed", agent)
    await harness.claims.record_outcome(
        first.user_id, OutcomeRequest(agent_id=agent, disposition="no_answer")
    )
