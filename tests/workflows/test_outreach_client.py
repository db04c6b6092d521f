"""The one door to OutreachWorkflow maps every way a call can go wrong to one of two errors:
refused (the workflow said no, or no run is going) or unavailable (no answer in time, or no
Temporal at all). Against a real dev server; the workflows run on the harness's worker."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowHandle

from adapters.temporal import connect_temporal
from config.settings import Settings
from schemas.enums import Queue
from schemas.outreach import (
    ChangeKind,
    NoteRequest,
    OutcomeRequest,
    OutreachInput,
    OutreachResult,
    ReleaseRequest,
)
from tests.conftest import free_port
from tests.factories import add_claimant
from tests.workflows.conftest import Harness
from tests.workflows.helpers import (
    assessment,
    claim_task,
    ensure_agents,
    event,
    eventually,
    start,
    task_in,
)
from workflows.outreach import OutreachWorkflow, workflow_id_for
from workflows.outreach_client import (
    OutreachClient,
    OutreachNotRunning,
    OutreachRefused,
    OutreachUnavailable,
    is_transient,
)


def door(h: Harness, *, timeout: float = 15.0) -> OutreachClient:
    async def connect() -> Client:
        return h.client

    return OutreachClient(connect, h.task_queue, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
async def agents(harness: Harness) -> None:
    await ensure_agents(harness)


async def test_a_refusal_carries_the_workflows_reason(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await task_in(harness, user_id, Queue.UNSIGNED.value)
    with pytest.raises(OutreachRefused, match="not claimed by you"):
        await door(harness).release(user_id, ReleaseRequest(agent_id=1))


async def test_no_running_workflow_is_a_refusal_reads_as_none_and_nudges_nobody(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=0)
    client = door(harness)
    with pytest.raises(OutreachNotRunning):
        await client.add_note(user_id, NoteRequest(agent_id=1, text="rang back"))
    assert await client.assessment(user_id) is None
    assert await client.nudge(event(ChangeKind.REFRESH, user_id)) is False


async def test_deliver_starts_the_claimants_workflow(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    client = door(harness)
    await client.deliver(event(ChangeKind.REFRESH, user_id))
    found = await eventually(lambda: client.assessment(user_id), lambda a: a is not None)
    assert found is not None and found.stage.queue is Queue.UNSIGNED
    assert await client.nudge(event(ChangeKind.REFRESH, user_id)) is True
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = (
        harness.client.get_workflow_handle_for(OutreachWorkflow.run, workflow_id_for(user_id))
    )
    assert await assessment(handle) is not None


async def test_current_claim_names_the_holder_until_the_claim_ends(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await task_in(harness, user_id, Queue.UNSIGNED.value)
    client = door(harness)
    assert await client.current_claim(user_id) is None

    granted = await claim_task(harness, user_id, Queue.UNSIGNED, agent_id=4)
    held = await client.current_claim(user_id)
    assert held is not None
    assert (held.agent_id, held.lease_expires_at) == (4, granted.lease_expires_at)

    await client.record_outcome(user_id, OutcomeRequest(agent_id=4, disposition="no_answer"))
    assert await client.current_claim(user_id) is None
    assert await client.current_claim(900_000_000 + uuid.uuid4().int % 1_000_000) is None


async def test_an_update_nobody_answers_is_unavailable_not_a_hang(harness: Harness) -> None:
    """A workflow whose task queue has no worker never answers: the caller learns so after
    the one timeout instead of waiting for ever."""
    user_id = 900_000_000 + uuid.uuid4().int % 1_000_000
    orphan_queue = f"nobody-listens-{uuid.uuid4().hex[:8]}"
    handle = await harness.client.start_workflow(
        OutreachWorkflow.run,
        OutreachInput(user_id),
        id=workflow_id_for(user_id),
        task_queue=orphan_queue,
    )
    try:
        with pytest.raises(OutreachUnavailable) as raised:
            await door(harness, timeout=0.5).add_note(user_id, NoteRequest(1, "hello"))
        assert is_transient(raised.value)
    finally:
        await handle.terminate("test finished")


async def test_no_temporal_at_all_is_unavailable(settings: Settings) -> None:
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})

    async def connect() -> Client:
        return await connect_temporal(down)

    client = OutreachClient(connect, "any", timeout=5.0)
    with pytest.raises(OutreachUnavailable):
        await client.add_note(1, NoteRequest(agent_id=1, text="hello"))
    with pytest.raises(OutreachUnavailable):
        await client.deliver(event(ChangeKind.REFRESH, 1))
