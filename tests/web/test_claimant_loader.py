"""One loader of a claimant (`services.claimant_loader`): the Redis context cache holds the
main app's data only, and what the dialler itself changes (a STOP, a booked callback) shows
in the console and the API at once, not when a cached copy expires."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters import call_log
from adapters.context_cache import context_key
from schemas.enums import AgentRole, Queue
from schemas.outreach import SaveCallback
from services.claimant_loader import ClaimantLoader
from services.sms_conversations import outstanding_types
from tests.factories import add_claimant, set_requirements
from tests.web.sms_fixtures import Caller, World, caller, claimant_in_queue, suppress, world

__all__ = ["world"]  # the module's fixture

DIALLER_FIELDS = {"opted_out", "next_callback_at", "last_call_at", "last_disposition"}
STOP_BANNER = "flag-stop"


def phone(n: int) -> str:
    return f"+4477008{n % 100000:05d}"


async def claim(c: Caller, user_id: int) -> None:
    response = await c.post("/api/queue/next", {})
    body = await response.get_json()
    assert response.status_code == 200, body
    assert body["task"] is not None and body["task"]["user_id"] == user_id, body


async def api_claimant(c: Caller, user_id: int) -> dict[str, Any]:
    response = await c.get(f"/api/claimants/{user_id}")
    body = await response.get_json()
    assert response.status_code == 200, body
    return dict(body["claimant"])


async def console_panel(c: Caller, user_id: int) -> str:
    response = await c.client.get(f"/console/claimants/{user_id}", headers={"Accept": "text/html"})
    page = await response.get_data(as_text=True)
    assert response.status_code == 200, page
    return str(page)


async def book_callback(w: World, user_id: int, at: datetime, by: int) -> None:
    """What the workflow's callback activity writes (the web app is not involved, so
    nothing there could drop a cached copy)."""
    async with w.dialler.begin() as conn:
        await call_log.replace_pending_callback(
            conn, SaveCallback(user_id=user_id, at=at, notes="", created_by=by, owner_agent_id=by)
        )


async def test_a_stop_and_a_callback_after_the_context_was_cached_show_at_once(
    world: World,
) -> None:
    number = phone(41001)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    agent = await caller(world, "cookie")
    await claim(agent, user_id)

    assert STOP_BANNER not in await console_panel(agent, user_id)
    before = await api_claimant(agent, user_id)
    assert before["opted_out"] is False and before["next_callback_at"] is None
    assert await world.services.redis.exists(context_key(user_id))  # cached by those views

    # the claimant texts STOP (the row the SMS webhook appends) and a callback is booked
    await suppress(world, "sms_stop", phone_number=number)
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    await book_callback(world, user_id, at, agent.staff.id)

    assert STOP_BANNER in await console_panel(agent, user_id)
    after = await api_claimant(agent, user_id)
    assert after["opted_out"] is True
    assert after["next_callback_at"] is not None
    assert datetime.fromisoformat(after["next_callback_at"]) == at

    # START lifts an SMS STOP: the latest event on the channel wins, at once too
    await suppress(world, "sms_start", user_id=user_id, phone_number=number)
    assert STOP_BANNER not in await console_panel(agent, user_id)
    assert (await api_claimant(agent, user_id))["opted_out"] is False


async def test_the_cached_value_holds_the_main_apps_data_only(world: World) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(41002))
    supervisor = await caller(world, "bearer", role=AgentRole.SUPERVISOR, queue=None)
    await api_claimant(supervisor, user_id)

    raw = await world.services.redis.get(context_key(user_id))
    assert raw is not None, "the API view caches the replica part"
    cached = json.loads(raw)
    assert not DIALLER_FIELDS & set(cached), sorted(DIALLER_FIELDS & set(cached))
    assert {"user_id", "first_name", "phone_number", "signed", "claims"} <= set(cached)
    assert cached["user_id"] == user_id and cached["claims"][0]["requirements"]


async def test_load_many_reads_the_cache_once_and_the_dialler_state_for_everyone(
    world: World,
) -> None:
    cached_one = await add_claimant(world.replica, phone=phone(41003))
    stopped = await add_claimant(world.replica, phone=phone(41004))
    unknown = 10**9 + 7
    cache = world.services.context_cache()
    await cache.invalidate([cached_one, stopped])
    assert await cache.get(cached_one) is not None  # now cached
    await suppress(world, "do_not_call", user_id=stopped)

    loader = ClaimantLoader(cache, world.dialler)
    loaded = await loader.load_many([stopped, cached_one, unknown, cached_one])

    assert sorted(loaded) == sorted([cached_one, stopped])
    assert loaded[cached_one].from_cache and not loaded[stopped].from_cache
    assert loaded[stopped].context.opted_out and not loaded[cached_one].context.opted_out
    assert loaded[stopped].context.phone_number == phone(41004)
    assert await cache.cached(stopped)  # the miss is cached for the next view
    assert await loader.load_many([]) == {}


async def test_outstanding_types_are_the_pending_requirements_of_the_replica_part(
    world: World,
) -> None:
    user_id = await add_claimant(world.replica, signed=True, pending=2)
    cache = world.services.context_cache()
    loaded = await cache.load_many([user_id])
    assert outstanding_types(loaded[user_id]) == ["bank_statements"] * 2

    await set_requirements(world.replica, user_id, "RECEIVED")
    assert outstanding_types((await cache.load_many([user_id]))[user_id]) == []
