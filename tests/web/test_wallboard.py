"""The supervisor's wallboard over HTTP: the exact figures of a fixed floor (tasks in every
state with their reasons, agents in states, the day's calls by people and AI with an
abandoned one, callbacks, dead letters), the systems panel, supervisors only, and the live
updates: `floor-changed` reaches a supervisor's stream (not an agent's) after a state
change and a claim, and the outreach worker tells the wallboards when a workflow writes a
task."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from adapters.live import (
    FLOOR_CHANGED,
    SUPERVISORS_CHANNEL,
    LiveBus,
    LiveEvent,
    channel_for_queue,
)
from adapters.passwords import hash_password
from config.settings import Settings
from domain.consent import NO_LIVE_CALL_CONSENT, TPS_LISTED
from domain.facts import WRONG_NUMBER_REASON
from domain.floor import day_start
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from schemas.outreach import OutreachInput
from services.live_updates import FloorPublisher
from tests.conftest import REDIS_URL
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff, sign_in
from tests.web.console_fixtures import (
    HTMX,
    World,
    claim,
    ready_claimant,
    services_of,
    signed_in_agent,
    w,
    world,
)
from tests.workflows.conftest import open_rules, scratch_databases, terminate_running, typed_client
from workers.floor_events import FloorChanges
from workers.outreach import build_worker, outreach_activities
from workflows.outreach import OutreachWorkflow, workflow_id_for

__all__ = ["w", "world"]  # fixtures, imported for pytest

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def signed_in_supervisor(w: World, role: AgentRole = AgentRole.SUPERVISOR) -> Any:
    staff = await make_staff(w.dialler, role, None)
    client = w.app.test_client()
    assert await sign_in(client, staff) == 303
    return client


async def text_of(response: Any) -> str:
    return str(await response.get_data(as_text=True))


def figure(page: str, element_id: str) -> str:
    """The text of the element with this id (figures are plain text inside one tag)."""
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found, f"no #{element_id} on the page"
    return found.group(1).strip()


# --- a fixed floor ----------------------------------------------------------------------------


async def _wipe(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in (
            db.calls,
            db.callbacks,
            db.call_tasks,
            db.agent_state_changes,
            db.cdc_dead_letters,
            db.agents,
        ):
            await conn.execute(delete(table))


async def _agent(
    conn: Any, name: str, queue: str | None, *, ai: bool = False, active: bool = True
) -> int:
    agent_id = await conn.scalar(
        insert(db.agents)
        .values(
            email=f"{name.lower()}-{uuid.uuid4().hex[:6]}@floor.test",
            display_name=name,
            role=AgentRole.AGENT.value,
            queue=queue,
            password_hash=None if ai else hash_password(PASSWORD),
            is_ai=ai,
            is_active=active,
        )
        .returning(db.agents.c.id)
    )
    return int(agent_id)


_user_ids = iter(range(900_001, 999_999))


def _task(
    queue: str,
    status: str,
    not_before: datetime,
    reason: str = "",
    **more: Any,
) -> dict[str, Any]:
    user_id = next(_user_ids)
    return {
        "user_id": user_id,
        "workflow_id": f"outreach-{user_id}",
        "queue": queue,
        "score": 50,
        "not_before": not_before,
        "not_before_reason": reason,
        "status": status,
        "version": 1,
        "claimed_by": None,
        "claimed_at": None,
        "owner_agent_id": None,
        "held_until": None,
        **more,
    }


def _call(agent_id: int | None, started_at: datetime, disposition: str | None, **more: Any) -> Any:
    return {
        "user_id": next(_user_ids),
        "agent_id": agent_id,
        "provider": "simulated",
        "to_number": "+447700900001",
        "started_at": started_at,
        "disposition": disposition,
        # every row names every column: an executemany takes its columns from the first row
        "answered_at": None,
        "answered_by": None,
        "abandoned": False,
        **more,
    }


async def fixed_floor(engine: AsyncEngine) -> dict[str, int]:
    """The floor the figures below are worked out from, by hand."""
    await _wipe(engine)
    now = datetime.now(UTC)
    today = day_start(now) + (now - day_start(now)) / 2  # earlier today, at any hour
    async with engine.begin() as conn:
        ann = await _agent(conn, "Ann", "unsigned")
        bob = await _agent(conn, "Bob", "outstanding")
        cy = await _agent(conn, "Cy", "unsigned")
        dee = await _agent(conn, "Dee", "callback")
        eve = await _agent(conn, "Eve", "callback")  # never signed in
        robo = await _agent(conn, "Robo", "outstanding", ai=True)
        gone = await _agent(conn, "Gone", "unsigned", active=False)
        changes = [
            (ann, "paused", "signed in", now - HOUR),
            (ann, "on_call", "call 1", now - timedelta(seconds=90)),
            (bob, "paused", "Lunch", now - 20 * MINUTE),
            (cy, "ready", None, now - 5 * MINUTE),
            (dee, "offline", "signed out", now - 2 * HOUR),
            (robo, "ready", None, now - MINUTE),
            (gone, "ready", None, now - MINUTE),
        ]
        await conn.execute(
            insert(db.agent_state_changes),
            [{"agent_id": a, "state": s, "reason": r, "at": at} for a, s, r, at in changes],
        )
        cooldown = "cooldown after no_answer until 18:00"
        lock = "72-hour lock until 10:00 Fri 3 Jul"
        consent = NO_LIVE_CALL_CONSENT
        tasks = [
            _task("unsigned", "ready", now - HOUR),
            _task("unsigned", "ready", now - 2 * HOUR - 30 * MINUTE, "can call now"),
            _task("unsigned", "ready", now - 10 * MINUTE),
            _task("unsigned", "ready", now - 5 * HOUR, owner_agent_id=cy, held_until=now + MINUTE),
            _task("unsigned", "ready", now + HOUR, cooldown),
            _task("unsigned", "ready", now + 2 * HOUR, cooldown),
            _task("unsigned", "ready", now + 9 * HOUR, "calling window closed until 08:00"),
            _task("unsigned", "claimed", now - HOUR, claimed_by=ann, claimed_at=now - MINUTE),
            _task("unsigned", "withdrawn", now, consent),
            _task("unsigned", "withdrawn", now, f"{consent}; {TPS_LISTED}"),
            _task("unsigned", "withdrawn", now, "nothing left to chase"),
            _task("outstanding", "ready", now - 3 * MINUTE),
            _task("outstanding", "ready", now + 50 * HOUR, f"abandoned call: {lock}"),
            _task("outstanding", "withdrawn", now, WRONG_NUMBER_REASON),
            _task("callback", "ready", now - MINUTE),
        ]  # fmt: skip
        await conn.execute(insert(db.call_tasks), tasks)
        held_by_ann = tasks[7]["user_id"]
        await conn.execute(
            insert(db.callbacks),
            [
                {"user_id": 1, "scheduled_for": now - 24 * HOUR, "status": "pending"},
                {"user_id": 2, "scheduled_for": now - 5 * MINUTE, "status": "pending"},
                {"user_id": 3, "scheduled_for": now + 30 * MINUTE, "status": "pending"},
                {"user_id": 4, "scheduled_for": now + 3 * HOUR, "status": "pending"},
                {"user_id": 5, "scheduled_for": now - MINUTE, "status": "completed"},
            ],
        )
        person = {"answered_at": today, "answered_by": "human"}
        await conn.execute(
            insert(db.calls),
            [
                _call(ann, today, "no_answer"),
                _call(ann, today, "no_answer"),
                _call(ann, today, "promised_to_sign", **person),
                _call(ann, today, None, abandoned=True, **person),
                _call(cy, today, "callback_requested", **person),
                _call(robo, today, "magic_link_sent", **person),
                _call(robo, today, "magic_link_sent", **person),
                _call(robo, today, "voicemail_left", answered_at=today,
                      answered_by="machine_end_beep"),
                _call(gone, today, "no_answer"),
                _call(None, today, "busy"),
                _call(ann, now - 72 * HOUR, "completed", **person),  # before the window
            ],
        )  # fmt: skip
        await conn.execute(
            insert(db.cdc_dead_letters),
            [
                {
                    "source": "binlog",
                    "raw_payload": "{}",
                    "reason": "no claim",
                    "replayed_at": None,
                },
                {
                    "source": "binlog",
                    "raw_payload": "{}",
                    "reason": "no claim",
                    "replayed_at": None,
                },
                {"source": "binlog", "raw_payload": "{}", "reason": "replayed", "replayed_at": now},
            ],
        )
    return {"ann": ann, "bob": bob, "cy": cy, "dee": dee, "eve": eve, "robo": robo,
            "held_by_ann": held_by_ann}  # fmt: skip


async def test_the_wallboard_shows_the_floor_figures_worked_out_by_hand(w: World) -> None:
    ids = await fixed_floor(w.dialler)
    supervisor = await signed_in_supervisor(w)  # (a supervisor is not on the floor)
    response = await supervisor.get("/supervisor/wallboard", headers=HTMX)
    page = await text_of(response)
    assert response.status_code == 200, page

    # queues: callable now, claimed, waiting by reason
    expected = {
        "queue-unsigned-callable": "3",
        "queue-unsigned-claimed": "1",
        "queue-unsigned-waiting": "6",
        "queue-unsigned-waiting-cooldown": "2",
        "queue-unsigned-waiting-outside_window": "1",
        "queue-unsigned-waiting-held": "1",
        "queue-unsigned-waiting-no_consent": "1",
        "queue-unsigned-waiting-tps": "1",
        "queue-unsigned-oldest": "2 h 30 min",
        "queue-outstanding-callable": "1",
        "queue-outstanding-claimed": "0",
        "queue-outstanding-waiting": "2",
        "queue-outstanding-waiting-locked": "1",
        "queue-outstanding-waiting-no_number": "1",
        "queue-outstanding-oldest": "3 min",
        "queue-callback-callable": "1",
        "queue-callback-waiting": "0",
        "queue-callback-callbacks-due": "2",
        "queue-callback-callbacks-next-hour": "1",
        # the day's calls: 10 (7 by people, of them one by a disabled agent and one whose
        # agent is gone, 3 by the AI agent); 9 with an outcome, 4 of them contacts
        "calls-today": "10",
        "calls-people": "7",
        "calls-ai": "3",
        "contacts": "4",
        "calls-with-outcome": "9",
        "contact-rate": "44.4 %",
        "ai-share": "30.0 %",
        # live calls: answered by a person (not the answering machine), abandoned included
        "abandoned": "1",
        "live-calls": "5",
        "abandon-rate": "20.0 %",
        "ai-agents": "1",
        # agents: Ann on a call; Cy and Robo ready; Bob paused; Dee and Eve offline
        "agents-on_call": "1",
        "agents-wrap_up": "0",
        "agents-ready": "2",
        "agents-paused": "1",
        "agents-offline": "2",
        "outcome-no_answer-people": "3",
        "outcome-no_answer-ai": "0",
        "outcome-magic_link_sent-ai": "2",
        "outcome-magic_link_sent-total": "2",
        "outcome-busy-total": "1",
        "outcome-promised_to_sign-people": "1",
        "outcome-callback_requested-people": "1",
        "outcome-voicemail_left-ai": "1",
        "outcome-none-people": "1",
    }
    assert {key: figure(page, key) for key in expected} == expected
    assert "outcome-completed" not in page  # three days ago
    assert 'class="wb-tile wb-alarm" id="abandon-tile"' in page  # 20 % is over the line

    # the agents signed in: busiest state first, then the longest in it
    rows = re.findall(r'<tr id="agent-(\d+)" data-state="([a-z_]+)"', page)
    assert rows == [
        (str(ids["ann"]), "on_call"),
        (str(ids["cy"]), "ready"),
        (str(ids["robo"]), "ready"),
        (str(ids["bob"]), "paused"),
    ]
    ann = page.split(f'id="agent-{ids["ann"]}"')[1].split("</tr>")[0]
    assert "1 min" in ann and f"#{ids['held_by_ann']}" in ann and "Unsigned" in ann and ">4<" in ann
    bob = page.split(f'id="agent-{ids["bob"]}"')[1].split("</tr>")[0]
    assert "(Lunch)" in bob and "20 min" in bob
    robo = page.split(f'id="agent-{ids["robo"]}"')[1].split("</tr>")[0]
    assert '<span class="badge">AI</span>' in robo and ">3<" in robo
    assert "Gone" not in page and f'id="agent-{ids["eve"]}"' not in page


async def test_the_page_holds_the_floor_and_listens_for_floor_changes(w: World) -> None:
    await fixed_floor(w.dialler)
    supervisor = await signed_in_supervisor(w, AgentRole.ADMIN)
    response = await supervisor.get("/supervisor", headers={"Accept": "text/html"})
    page = await text_of(response)
    assert response.status_code == 200, page
    assert 'hx-trigger="sse:floor-changed, every 15s"' in page
    assert 'hx-get="/supervisor/wallboard"' in page and 'sse-connect="/events"' in page
    assert figure(page, "queue-unsigned-callable") == "3"  # the first figures come with it
    assert 'aria-current="page"' in page.split(">Wallboard<")[0][-200:]
    assert "<script>" not in page and "style=" not in page  # the CSP allows neither


async def test_the_systems_panel_reports_the_worker_temporal_and_cdc(w: World) -> None:
    await fixed_floor(w.dialler)
    supervisor = await signed_in_supervisor(w)
    response = await supervisor.get("/supervisor/wallboard/health", headers=HTMX)
    page = await text_of(response)
    assert response.status_code == 200, page
    for check in ("postgres", "replica", "redis", "temporal", "outreach-worker"):
        assert f'id="health-{check}" class="ok"' in page, check
    # no CDC worker runs in this test: its heartbeat is missing; two letters wait
    assert 'id="health-cdc" class="down"' in page and "no heartbeat" in page
    assert re.search(r'id="dead-letters"><span class="badge warn">2</span>', page)


async def test_an_idle_task_queue_is_a_worker_down(w: World) -> None:
    """A task queue no worker polls reports the worker down (the check is real)."""
    deps = services_of(w.app)
    unpolled = deps.settings.model_copy(update={"temporal_task_queue": "nobody-polls-this"})
    deps.settings = unpolled
    try:
        supervisor = await signed_in_supervisor(w)
        page = await text_of(await supervisor.get("/supervisor/wallboard/health", headers=HTMX))
    finally:
        deps.settings = w.settings
    assert 'id="health-outreach-worker" class="down"' in page
    assert "no worker has polled task queue" in page


async def test_agents_are_refused_every_wallboard_route(w: World) -> None:
    agent = await signed_in_agent(w)
    for path in ("/supervisor", "/supervisor/wallboard", "/supervisor/wallboard/health"):
        response = await agent.client.get(path, headers=HTMX)
        assert response.status_code == 403, path
    anonymous = await w.app.test_client().get("/supervisor/wallboard", headers=HTMX)
    assert anonymous.status_code == 401


# --- live updates -----------------------------------------------------------------------------


async def _read_until(stream: Any, marker: str, received: str = "", within: float = 5) -> str:
    while marker not in received:
        received += (await asyncio.wait_for(stream.receive(), within)).decode()
    return received


async def _drain(stream: Any, received: str, quiet: float = 0.8) -> str:
    """Read until the stream has been quiet for `quiet` seconds (longer than the floor
    publisher's pause, so no coalesced event of an earlier change is still to come)."""
    while True:
        try:
            received += (await asyncio.wait_for(stream.receive(), quiet)).decode()
        except TimeoutError:
            return received


async def _next_floor_change(stream: Any, received: str) -> str:
    seen = received.count(f"event: {FLOOR_CHANGED}")
    while received.count(f"event: {FLOOR_CHANGED}") == seen:
        received += (await asyncio.wait_for(stream.receive(), 5)).decode()
    return received


async def _listening(bus: LiveBus, channel: str) -> None:
    """Publish a ping until the stream has subscribed (it does as it starts)."""
    for _ in range(100):
        if await bus.publish(channel, LiveEvent("test-ping")):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no stream subscribed to {channel}")


async def test_a_supervisors_stream_hears_floor_changed_after_a_state_change_and_a_claim(
    w: World,
) -> None:
    await _wipe(w.dialler)
    supervisor = await signed_in_supervisor(w)
    agent = await signed_in_agent(w)
    user_id = await ready_claimant(w)
    bus = services_of(w.app).live()
    async with supervisor.request("/events", headers={"Accept": "text/event-stream"}) as stream:
        await stream.send_complete()
        await _listening(bus, SUPERVISORS_CHANNEL)
        received = await _drain(stream, await _read_until(stream, "event: test-ping"))

        ready = await agent.post("/console/state", {"state": "ready"})
        assert ready.status_code == 200
        received = await _drain(stream, await _next_floor_change(stream, received))

        await claim(w, agent, user_id)  # (already Ready: the claim is the only change)
        received = await _next_floor_change(stream, received)
        await stream.disconnect()
    frames = [f for f in received.split("\n\n") if f.startswith(f"event: {FLOOR_CHANGED}")]
    # no figures and no personal data: when it changed, and nothing else
    assert all(re.fullmatch(r'event: floor-changed\ndata: \{"at": "[0-9T:.+-]+"\}', f)
               for f in frames), frames  # fmt: skip
    page = await text_of(await supervisor.get("/supervisor/wallboard", headers=HTMX))
    assert figure(page, "queue-unsigned-claimed") == "1"
    assert f"#{user_id}" in page


async def test_an_agents_stream_does_not_listen_to_the_supervisors_channel(w: World) -> None:
    agent = await signed_in_agent(w)
    bus = services_of(w.app).live()
    async with agent.client.request("/events", headers={"Accept": "text/event-stream"}) as stream:
        await stream.send_complete()
        await _listening(bus, channel_for_queue(Queue.UNSIGNED))
        assert await bus.publish(SUPERVISORS_CHANNEL, LiveEvent(FLOOR_CHANGED)) == 0
        await stream.disconnect()


async def test_the_outreach_worker_tells_the_wallboards_when_a_workflow_writes_a_task(
    settings: Settings, temporal_env: WorkflowEnvironment
) -> None:
    """A task written by a workflow (here the first publish of a claimant's task, as after a
    CDC change) reaches the supervisors' channel from the worker process's publisher."""
    redis = Redis.from_url(REDIS_URL)
    bus = LiveBus(redis, namespace=f"floor-{uuid.uuid4().hex[:6]}:")
    floor = FloorPublisher(bus, every=0.1)
    client = typed_client(temporal_env)
    task_queue = f"outreach-floor-{uuid.uuid4().hex[:8]}"
    worker_settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    try:
        async with scratch_databases("floorworker") as (dialler, replica):
            activities = outreach_activities(
                worker_settings, client, dialler, replica, open_rules()
            )
            worker = build_worker(
                client, task_queue, activities, interceptors=[FloorChanges(floor)]
            )
            async with worker, bus.subscribe([SUPERVISORS_CHANNEL]) as events:
                user_id = await add_claimant(replica, signed=False, pending=1)
                await client.start_workflow(
                    OutreachWorkflow.run,
                    OutreachInput(user_id),
                    id=workflow_id_for(user_id),
                    task_queue=task_queue,
                )
                heard = await events.next(10.0)
                assert heard is not None and heard.name == FLOOR_CHANGED
                assert set(heard.data) == {"at"}
            await terminate_running(client, task_queue)
    finally:
        await floor.close()
        await redis.aclose()
