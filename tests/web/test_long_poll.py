"""Long-poll for work: `POST /api/queue/next` with `wait` holds a request that finds nothing
until a task in its queue is ready (a `task-ready` event on the queue's work channel), the
agent who has waited longest claiming first, and each task claimed once.

The periodic re-check is set longer than any wait here (except where a test says), so a
waiter is woken by the event the test publishes and by nothing else."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from schemas.enums import Queue
from services.work_waiters import WorkWaiters, task_ready_event, work_channel_for
from tests.factories import add_claimant
from tests.web.sms_fixtures import Caller, World, caller, claimant_in_queue, world
from tests.workflows.helpers import start, task_in

__all__ = ["world"]  # the module's fixture

_phones = itertools.count(1)


def phone() -> str:
    return f"+4477008{next(_phones) % 100000:05d}"


def waiters_of(w: World, recheck_seconds: float = 120.0) -> WorkWaiters:
    waiters = w.services.work_waiters()
    waiters.recheck_seconds = recheck_seconds
    return waiters


async def ready_task(w: World) -> int:
    """One more ready task in the unsigned queue (the others stay)."""
    user_id = await add_claimant(w.replica, signed=False, pending=1, phone=phone())
    await start(w.harness, user_id)
    await task_in(w.harness, user_id, Queue.UNSIGNED.value)
    return user_id


async def announce(w: World, queue: Queue = Queue.UNSIGNED) -> None:
    """Publish `task-ready` until the web process's subscriber has heard one."""
    bus = w.services.live()
    for _ in range(400):
        if await bus.publish(work_channel_for(queue), task_ready_event(queue)) > 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the web process never subscribed to the work channel")


async def until(condition: Any) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never came true")


def long_poll(c: Caller, wait: int) -> asyncio.Task[Any]:
    async def go() -> Any:
        response = await c.post("/api/queue/next", {"wait": wait})
        assert response.status_code == 200, await response.get_data(as_text=True)
        return await response.get_json()

    return asyncio.get_running_loop().create_task(go())


async def parked(waiters: WorkWaiters, count: int, attempts: int) -> None:
    """Until `count` requests wait in the unsigned line and `attempts` claims were tried."""
    await until(
        lambda: waiters.waiting(Queue.UNSIGNED, False) == count and waiters.attempts >= attempts
    )


def user_of(answer: Any) -> int | None:
    task = answer["task"]
    return None if task is None else int(task["user_id"])


async def test_a_waiting_request_is_woken_by_a_new_task(world: World) -> None:
    await claimant_in_queue(world)  # then claimed: the queue has nothing ready
    first = await caller(world, "bearer")
    assert user_of(await (await first.post("/api/queue/next", {})).get_json()) is not None
    waiters = waiters_of(world)
    agent = await caller(world, "bearer")
    request = long_poll(agent, 25)
    await parked(waiters, 1, 1)  # it found nothing and waits
    user_id = await ready_task(world)
    await asyncio.sleep(0.2)
    assert not request.done()  # the task alone (no event yet) does not wake it
    await announce(world)
    answer = await request
    assert user_of(answer) == user_id and answer["message"] == "Claimed."
    assert waiters.waiting(Queue.UNSIGNED, False) == 0


async def test_it_answers_no_task_at_the_end_of_the_wait(world: World) -> None:
    await claimant_in_queue(world)
    await (await caller(world, "bearer")).post("/api/queue/next", {})  # the only task, taken
    waiters = waiters_of(world, recheck_seconds=0.2)  # re-checks find nothing either
    agent = await caller(world, "cookie")
    answer = await long_poll(agent, 1)
    assert answer["task"] is None and "unsigned" in answer["message"]
    assert waiters.attempts >= 2  # it tried again before giving up
    assert waiters.waiting(Queue.UNSIGNED, False) == 0


async def test_the_agent_waiting_longest_gets_the_next_task(world: World) -> None:
    await claimant_in_queue(world)
    await (await caller(world, "bearer")).post("/api/queue/next", {})
    waiters = waiters_of(world)
    early, late = await caller(world, "bearer"), await caller(world, "bearer")
    first = long_poll(early, 25)
    await parked(waiters, 1, 1)
    second = long_poll(late, 25)
    await parked(waiters, 2, 1)  # behind the first: it has not even tried
    one = await ready_task(world)
    await announce(world)
    assert user_of(await first) == one
    await asyncio.sleep(0.2)
    assert not second.done()  # one task, one claim
    two = await ready_task(world)
    await announce(world)
    assert user_of(await second) == two


async def test_several_waiters_claim_each_task_once(world: World) -> None:
    await claimant_in_queue(world)
    await (await caller(world, "bearer")).post("/api/queue/next", {})
    waiters = waiters_of(world)
    agents = [await caller(world, "bearer") for _ in range(4)]
    requests = []
    for n, agent in enumerate(agents):
        requests.append(long_poll(agent, 25 if n < 3 else 2))
        await parked(waiters, n + 1, 1)
    users = {await ready_task(world) for _ in range(3)}
    await announce(world)
    answers = [user_of(a) for a in await asyncio.gather(*requests)]
    claimed = [u for u in answers if u is not None]
    assert sorted(claimed) == sorted(users)  # every task once, nobody twice
    assert answers[:3] == [u for u in answers if u is not None]  # the first three in line
    assert answers[3] is None


async def test_wait_zero_is_the_plain_claim(world: World) -> None:
    waiters = waiters_of(world)
    user_id = await claimant_in_queue(world)
    agent = await caller(world, "bearer")
    before = waiters.attempts
    assert user_of(await (await agent.post("/api/queue/next", {"wait": 0})).get_json()) == user_id
    other = await caller(world, "bearer")  # (the first would be given its claim again)
    empty = await other.post("/api/queue/next", {"wait": 0})
    answer = await empty.get_json()
    assert empty.status_code == 200 and answer["task"] is None
    assert waiters.attempts == before and waiters.waiting(Queue.UNSIGNED, False) == 0


@pytest.mark.parametrize("wait", [-1, 26, "abc", "5", 10**30, 1.5, True, "\x00", None, [1]])
async def test_a_bad_wait_is_refused(world: World, wait: Any) -> None:
    agent = await caller(world, "bearer")
    before = world.services.work_waiters().attempts
    response = await agent.post("/api/queue/next", {"wait": wait})
    assert 400 <= response.status_code < 500, (wait, response.status_code)
    error = (await response.get_json())["error"]
    assert "wait" in str(error)
    assert world.services.work_waiters().attempts == before
