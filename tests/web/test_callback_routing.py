"""Personal callbacks over HTTP, two callback agents: a callback booked for one agent is
offered only to them while it is held; after the grace period, or at once when its owner
signs out or is disabled, any callback agent gets it; a shared callback goes to anyone.
The workflow refuses a claim by another agent while the hold lasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from temporalio.client import WorkflowUpdateFailedError

from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.outreach import ClaimRequest, ReleaseRequest
from tests.factories import add_claimant
from tests.web.sms_fixtures import Caller, World, caller, world
from tests.workflows.helpers import start, task_in
from workflows.outreach import OutreachWorkflow, workflow_id_for

__all__ = ["world"]  # the module's fixture


async def _callback_due(w: World, owner: int | None, due_ago: timedelta) -> int:
    """A claimant whose callback (personal to `owner`, or shared) fell due `due_ago` ago,
    and the only ready task in the callback queue."""
    user_id = await add_claimant(w.replica, signed=True)
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.status == "ready")
            .values(status="withdrawn")
        )
        await conn.execute(
            insert(db.callbacks).values(
                user_id=user_id,
                owner_agent_id=owner,
                scheduled_for=datetime.now(UTC) - due_ago,
                created_by=owner,
            )
        )
    await start(w.harness, user_id)
    await task_in(w.harness, user_id, "callback")
    return user_id


async def _next(agent: Caller) -> dict[str, Any] | None:
    response = await agent.post("/api/queue/next", {})
    body = await response.get_json()
    assert response.status_code == 200, body
    task: dict[str, Any] | None = body["task"]
    return task


async def _release(w: World, agent: Caller, user_id: int) -> None:
    await w.harness.claims.release(user_id, ReleaseRequest(agent_id=agent.staff.id))


async def _agents(w: World) -> tuple[Caller, Caller]:
    owner = await caller(w, "cookie", queue=Queue.CALLBACK)
    other = await caller(w, "cookie", queue=Queue.CALLBACK)
    return owner, other


async def test_a_personal_callback_goes_only_to_its_owner_while_held(world: World) -> None:
    owner, other = await _agents(world)
    user_id = await _callback_due(world, owner.staff.id, timedelta(minutes=1))
    row = await task_in(world.harness, user_id, "callback")
    assert row.owner_agent_id == owner.staff.id
    assert row.held_until is not None

    assert await _next(other) is None  # held for its owner
    # and the workflow refuses the other agent too, should anything reserve it for them
    handle = world.harness.client.get_workflow_handle(workflow_id_for(user_id))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OutreachWorkflow.claim,
            ClaimRequest(agent_id=other.staff.id, queue=Queue.CALLBACK, task_version=row.version),
        )
    assert "personal callback held for agent" in str(refused.value.cause)

    task = await _next(owner)
    assert task is not None and task["user_id"] == user_id
    await _release(world, owner, user_id)


async def test_after_the_grace_period_any_callback_agent_gets_it(world: World) -> None:
    owner, other = await _agents(world)
    grace = world.harness.rules.contact.personal_callback_grace
    user_id = await _callback_due(world, owner.staff.id, grace + timedelta(minutes=1))

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


@pytest.mark.parametrize("away", ["signed out", "disabled"])
async def test_when_the_owner_is_away_it_falls_to_the_pool_at_once(world: World, away: str) -> None:
    owner, other = await _agents(world)
    user_id = await _callback_due(world, owner.staff.id, timedelta(minutes=1))
    assert await _next(other) is None

    if away == "signed out":
        response = await owner.client.post("/logout", form={"csrf_token": owner.token})
        assert response.status_code == 303
    else:
        async with world.dialler.begin() as conn:
            await conn.execute(
                update(db.agents).where(db.agents.c.id == owner.staff.id).values(is_active=False)
            )

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


async def test_a_shared_callback_goes_to_any_callback_agent(world: World) -> None:
    _, other = await _agents(world)
    user_id = await _callback_due(world, None, timedelta(minutes=1))

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


async def test_the_owner_gets_their_callback_before_a_better_scored_task(world: World) -> None:
    owner, _ = await _agents(world)
    mine = await _callback_due(world, owner.staff.id, timedelta(minutes=1))
    # a shared callback overdue for hours scores higher, and is listed too
    async with world.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks).where(db.call_tasks.c.user_id == mine).values(score=1)
        )
    shared = await add_claimant(world.replica, signed=True)
    async with world.dialler.begin() as conn:
        await conn.execute(
            insert(db.callbacks).values(
                user_id=shared, scheduled_for=datetime.now(UTC) - timedelta(hours=5)
            )
        )
    await start(world.harness, shared)
    await task_in(world.harness, shared, "callback")

    task = await _next(owner)
    assert task is not None and task["user_id"] == mine
    await _release(world, owner, mine)
