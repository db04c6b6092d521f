"""The claimant rule's permitted cases over HTTP, besides the claim's holder (tested over the
whole route table in test_route_table.py): the owner of a personal callback, the agent the
SMS conversation is assigned to (who last called or texted the claimant), and supervisors
and admins. Each permission ends when its reason does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.sms_fixtures import Caller, World, caller, claimant_in_queue, world

__all__ = ["world"]  # the module's fixture


def phone(n: int) -> str:
    return f"+4477009{n % 100000:05d}"


async def sees(c: Caller, user_id: int) -> bool:
    """Whether `c` may open the claimant's context (API) and SMS thread (page)."""
    context = await c.get(f"/api/claimants/{user_id}")
    thread = await c.get(f"/sms/{user_id}")
    assert context.status_code in (200, 404) and thread.status_code in (200, 404)
    assert (context.status_code == 200) == (thread.status_code == 200), user_id
    if context.status_code == 404:
        body = await thread.get_data(as_text=True)
        assert f"Claimant{user_id}" not in body
    return bool(context.status_code == 200)


async def inbox_lists(c: Caller, user_id: int) -> bool:
    page = await (await c.get("/sms")).get_data(as_text=True)
    return f'id="thread-{user_id}"' in page


async def add_callback(w: World, user_id: int, owner: int | None, status: str = "pending") -> int:
    async with w.dialler.begin() as conn:
        callback_id = await conn.scalar(
            insert(db.callbacks)
            .values(
                user_id=user_id,
                owner_agent_id=owner,
                status=status,
                scheduled_for=datetime.now(UTC) + timedelta(days=1),
            )
            .returning(db.callbacks.c.id)
        )
    return int(callback_id or 0)


async def test_the_owner_of_a_personal_callback_may_see_the_claimant(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(41001))
    owner = await caller(world, "cookie", queue=Queue.CALLBACK)
    other = await caller(world, "cookie", queue=Queue.CALLBACK)
    assert not await sees(owner, user_id)
    await add_callback(world, user_id, None)  # a shared callback makes it nobody's
    assert not await sees(owner, user_id)
    callback_id = await add_callback(world, user_id, owner.staff.id)
    assert await sees(owner, user_id) and not await sees(other, user_id)
    async with world.dialler.begin() as conn:  # the callback is done: so is the permission
        await conn.execute(
            update(db.callbacks).where(db.callbacks.c.id == callback_id).values(status="completed")
        )
    assert not await sees(owner, user_id)


async def test_the_sms_conversation_follows_the_agent_who_last_worked_the_claimant(
    world: World,
) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(41002))
    first = await caller(world, "cookie")
    second = await caller(world, "cookie")
    claimed = await first.post("/api/queue/next", {})
    assert (await claimed.get_json())["task"]["user_id"] == user_id
    sent = await first.post(f"/api/claimants/{user_id}/sms", {"body": "We will ring you."})
    assert sent.status_code == 201, await sent.get_json()
    released = await first.post(f"/api/claimants/{user_id}/release", {"reason": "later"})
    assert released.status_code == 200, await released.get_json()
    # no claim any more, but the claimant's replies are the first agent's to answer
    assert await sees(first, user_id) and await inbox_lists(first, user_id)
    assert not await sees(second, user_id) and not await inbox_lists(second, user_id)

    async with world.dialler.begin() as conn:  # the claimant is ready again for the next agent
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id != user_id, db.call_tasks.c.status == "ready")
            .values(status="withdrawn")
        )
    claimed = await second.post("/api/queue/next", {})
    task = (await claimed.get_json())["task"]
    assert task is not None and task["user_id"] == user_id
    texted = await second.post(f"/api/claimants/{user_id}/sms", {"body": "Calling now."})
    assert texted.status_code == 201
    await second.post(f"/api/claimants/{user_id}/release", {"reason": "later"})
    # the second agent worked the claimant last: the conversation moved to them
    assert await sees(second, user_id) and await inbox_lists(second, user_id)
    assert not await sees(first, user_id) and not await inbox_lists(first, user_id)


async def test_supervisors_and_admins_see_every_claimant(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(41003))
    async with world.dialler.begin() as conn:
        await conn.execute(
            insert(db.sms_messages).values(
                user_id=user_id,
                direction="inbound",
                provider_sid="SM" + f"{user_id:032d}",
                from_number=phone(41003),
                to_number="+447700900000",
                body="Hello?",
                status="received",
            )
        )
    seen: dict[AgentRole, Any] = {}
    for role in (AgentRole.SUPERVISOR, AgentRole.ADMIN):
        person = await caller(world, "cookie", role, None)
        seen[role] = await sees(person, user_id) and await inbox_lists(person, user_id)
    agent = await caller(world, "cookie", AgentRole.AGENT, Queue.UNSIGNED)
    seen[AgentRole.AGENT] = await sees(agent, user_id) or await inbox_lists(agent, user_id)
    assert seen == {AgentRole.SUPERVISOR: True, AgentRole.ADMIN: True, AgentRole.AGENT: False}
