"""The previous successful agent over HTTP, two unsigned-queue agents: a claimant whose latest
positive outcome was agent X's is offered to X first while the hold lasts (and the workflow
refuses anyone else), then to anyone; at once to anyone when X signs out; never held for an
AI agent; and X is offered their held claimant before a better-scored task, but not once the
hold is over (domain.agent_preference, adapters.task_store's claim query)."""

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

PROMISED_COOLDOWN = timedelta(hours=48)  # the rules' cooldown after promised_to_sign


async def _promised(w: World, agent_id: int, callable_for: timedelta) -> int:
    """A claimant in the unsigned queue who promised `agent_id` to sign, whose cooldown ended
    `callable_for` ago, and the only ready task in the queue."""
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    ended = datetime.now(UTC) - PROMISED_COOLDOWN - callable_for
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.status == "ready")
            .values(status="withdrawn")
        )
        await conn.execute(
            insert(db.calls).values(
                user_id=user_id,
                agent_id=agent_id,
                queue=Queue.UNSIGNED.value,
                provider="simulated",
                to_number="+447700900123",
                status="completed",
                started_at=ended - timedelta(minutes=5),
                answered_at=ended - timedelta(minutes=5),
                ended_at=ended,
                disposition="promised_to_sign",
            )
        )
    await start(w.harness, user_id)
    await task_in(w.harness, user_id, Queue.UNSIGNED.value)
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
    return await caller(w, "cookie"), await caller(w, "cookie")


async def test_the_previous_successful_agent_is_offered_the_claimant_first(world: World) -> None:
    previous, other = await _agents(world)
    user_id = await _promised(world, previous.staff.id, timedelta(minutes=1))
    row = await task_in(world.harness, user_id, Queue.UNSIGNED.value)
    assert row.owner_agent_id == previous.staff.id
    hold = world.harness.rules.scoring.preferred_agent_hold
    assert row.held_until is not None
    assert row.held_until - datetime.now(UTC) <= hold - timedelta(seconds=50)
    factor = next(f for f in row.score_breakdown if f["name"] == "preferred_agent")
    assert factor["detail"].startswith(f"offered first to agent {previous.staff.id}")

    assert await _next(other) is None  # held for the previous agent
    handle = world.harness.client.get_workflow_handle(workflow_id_for(user_id))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            OutreachWorkflow.claim,
            ClaimRequest(agent_id=other.staff.id, queue=Queue.UNSIGNED, task_version=row.version),
        )
    assert f"held for agent {previous.staff.id} (their previous successful agent)" in str(
        refused.value.cause
    )

    task = await _next(previous)
    assert task is not None and task["user_id"] == user_id
    await _release(world, previous, user_id)


async def test_after_the_hold_another_agent_gets_the_claimant(world: World) -> None:
    previous, other = await _agents(world)
    hold = world.harness.rules.scoring.preferred_agent_hold
    user_id = await _promised(world, previous.staff.id, hold + timedelta(minutes=5))
    row = await task_in(world.harness, user_id, Queue.UNSIGNED.value)
    assert (row.owner_agent_id, row.held_until) == (None, None)

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


async def test_when_the_previous_agent_signs_out_anyone_gets_it_at_once(world: World) -> None:
    previous, other = await _agents(world)
    user_id = await _promised(world, previous.staff.id, timedelta(minutes=1))
    assert await _next(other) is None

    response = await previous.client.post("/logout", form={"csrf_token": previous.token})
    assert response.status_code == 303

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


async def test_an_ai_agents_success_holds_the_claimant_for_no_one(world: World) -> None:
    ai = await caller(world, "bearer", is_ai=True)
    other = await caller(world, "cookie")
    user_id = await _promised(world, ai.staff.id, timedelta(minutes=1))
    row = await task_in(world.harness, user_id, Queue.UNSIGNED.value)
    assert (row.owner_agent_id, row.held_until) == (None, None)
    factor = next(f for f in row.score_breakdown if f["name"] == "preferred_agent")
    assert factor["detail"] == "no previous successful agent +0"

    task = await _next(other)
    assert task is not None and task["user_id"] == user_id
    await _release(world, other, user_id)


async def test_held_first_before_a_better_task_but_by_score_once_the_hold_is_over(
    world: World,
) -> None:
    previous, _ = await _agents(world)
    mine = await _promised(world, previous.staff.id, timedelta(minutes=1))
    async with world.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks).where(db.call_tasks.c.user_id == mine).values(score=1)
        )
    better = await add_claimant(world.replica, signed=False, pending=1)
    await start(world.harness, better)
    await task_in(world.harness, better, Queue.UNSIGNED.value)

    task = await _next(previous)
    assert task is not None and task["user_id"] == mine
    await _release(world, previous, mine)

    # the hold has passed (as the row says): the owner gets the better-scored task first
    async with world.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id == mine)
            .values(score=1, held_until=datetime.now(UTC) - timedelta(minutes=1))
        )
    task = await _next(previous)
    assert task is not None and task["user_id"] == better
    await _release(world, previous, better)
