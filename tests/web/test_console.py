"""The agent console over HTTP: states, claiming, the claimant's context (cached and
audited), outcomes with callbacks, magic links, release, wrap-up and progressive mode, live
updates, and the access rules (role, CSRF, someone else's claimant)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from adapters.context_cache import ContextCache
from adapters.live import LiveEvent, channel_for_queue
from domain.calling_windows import callback_slots
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.web.conftest import make_staff, sign_in
from tests.web.console_fixtures import (
    HTMX,
    World,
    calls_of,
    claim,
    console_rules,
    holiday,
    latest_state,
    now,
    ready_claimant,
    services_of,
    signed_in_agent,
    task_of,
    w,
    world,
)
from web.blueprints.console import CALLBACK_LEAD
from web.views.console import LONDON
from workflows.outreach_client import OutreachClient

__all__ = ["w", "world"]  # fixtures, imported for pytest

_OPTION = re.compile(r'<option value="(\d{4}-\d\d-\d\dT[^"]+)"')


# --- pages and redirects --------------------------------------------------------------------------


async def test_home_sends_staff_to_the_console_and_others_to_sign_in(w: World) -> None:
    anonymous = await w.app.test_client().get("/")
    assert anonymous.status_code == 302 and anonymous.headers["Location"] == "/login"
    agent = await signed_in_agent(w)
    signed_in = await agent.client.get("/")
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/console"


async def test_console_page_shows_state_queue_and_next_call(w: World) -> None:
    agent = await signed_in_agent(w)
    response = await agent.client.get("/console", headers={"Accept": "text/html"})
    page = await agent.text(response)
    assert response.status_code == 200
    assert 'id="agent-state-label"' in page and ">Paused<" in page  # signing in pauses
    assert 'id="next-call"' in page and "disabled" in page.split('id="next-call"')[1][:80]
    assert 'sse-connect="/events"' in page and 'sse-swap="queue-depth"' in page
    assert 'id="progressive-mode"' in page
    assert "/static/js/console.js" in page and "/vendor/twilio.min.js" not in page
    assert "<script>" not in page and "style=" not in page  # the CSP allows neither


async def test_supervisors_see_the_console_but_cannot_work_a_queue(w: World) -> None:
    supervisor = await signed_in_agent(w, queue=None, role=AgentRole.SUPERVISOR)
    page = await supervisor.text(await supervisor.client.get("/console"))
    assert "The console is for agents" in page
    for path in ("/console/next", "/console/state", "/console/wrap-up/end"):
        refused = await supervisor.post(path, {"state": "ready"})
        assert refused.status_code == 403, path
        assert (await refused.get_json())["error"]["code"] == "forbidden"


async def test_an_agent_without_a_queue_is_told_so(w: World) -> None:
    agent = await signed_in_agent(w, queue=None)
    page = await agent.text(await agent.client.get("/console"))
    assert "You have no queue yet" in page


# --- agent states ---------------------------------------------------------------------------------


async def test_states_are_recorded_with_reasons(w: World) -> None:
    agent = await signed_in_agent(w)
    ready = await agent.post("/console/state", {"state": "ready"})
    assert ready.status_code == 200
    body = await agent.text(ready)
    assert ">Ready<" in body and 'id="next-call"' in body  # the work panel comes out of band
    assert (await latest_state(w, agent.staff.id)).state == "ready"

    no_reason = await agent.post("/console/state", {"state": "paused"})
    assert no_reason.status_code == 422
    assert "Choose a reason for pausing." in await agent.text(no_reason)
    assert (await latest_state(w, agent.staff.id)).state == "ready"

    paused = await agent.post("/console/state", {"state": "paused", "reason": "Lunch"})
    assert paused.status_code == 200
    row = await latest_state(w, agent.staff.id)
    assert (row.state, row.reason) == ("paused", "Lunch")

    bad = await agent.post("/console/state", {"state": "on_call"})
    assert bad.status_code == 422  # agents choose Ready or Paused only

    async with w.dialler.connect() as conn:
        states = (
            (
                await conn.execute(
                    select(db.agent_state_changes.c.state)
                    .where(db.agent_state_changes.c.agent_id == agent.staff.id)
                    .order_by(db.agent_state_changes.c.id)
                )
            )
            .scalars()
            .all()
        )
    assert states == ["paused", "ready", "paused"]  # signed in, Ready, Lunch


async def test_state_changes_need_the_csrf_token(w: World) -> None:
    agent = await signed_in_agent(w)
    missing = await agent.client.post("/console/state", form={"state": "ready"}, headers=HTMX)
    assert missing.status_code == 403
    assert (await missing.get_json())["error"]["code"] == "csrf_failed"
    forged = await agent.client.post(
        "/console/state", form={"state": "ready"}, headers=HTMX | {"X-CSRF-Token": "0" * 64}
    )
    assert forged.status_code == 403
    for path in (
        "/console/next",
        "/console/wrap-up/end",
        "/console/claimants/1/outcome",
        "/console/claimants/1/release",
        "/console/claimants/1/magic-link",
    ):
        refused = await agent.client.post(path, headers=HTMX)
        assert refused.status_code == 403, path  # fmt: skip


async def test_anonymous_requests_are_refused(w: World) -> None:
    client = w.app.test_client()
    page = await client.get("/console", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/console"
    partial = await client.post("/console/next", headers=HTMX)
    assert partial.status_code in (401, 403)


async def test_next_call_is_rate_limited_per_session(w: World) -> None:
    agent = await signed_in_agent(w)
    statuses: list[int] = []
    while 429 not in statuses and len(statuses) < 40:
        statuses.append((await agent.post("/console/next")).status_code)
        await asyncio.sleep(0.06)  # stay under the app-wide per-second limit
    # 30 a minute (the allowance refills as the seconds pass, so a few more get through)
    assert statuses[:30] == [200] * 30 and statuses[-1] == 429
    other = await signed_in_agent(w)  # same address, its own allowance
    assert (await other.post("/console/next")).status_code == 200


async def test_next_call_needs_ready(w: World) -> None:
    agent = await signed_in_agent(w)
    response = await agent.post("/console/next")
    page = await agent.text(response)
    assert response.status_code == 200
    assert "You are paused. Choose Ready to take calls." in page


# --- claiming and the context ---------------------------------------------------------------------


async def test_next_call_claims_and_shows_the_context_before_dialling(w: World) -> None:
    user_id = await ready_claimant(w, vulnerable=True, lender="Barclays")
    async with w.dialler.begin() as conn:
        await conn.execute(
            db.sms_messages.insert().values(
                user_id=user_id, direction="inbound", from_number="+447700900111",
                to_number="+447700900000", body="Please call me after lunch", status="received",
            )
        )  # fmt: skip
        await conn.execute(
            db.claimant_notes.insert().values(user_id=user_id, body="Prefers a female agent")
        )
    agent = await signed_in_agent(w)
    page = await claim(w, agent, user_id)

    assert 'id="claimant-name">Test Claimant' in page
    assert 'id="vulnerability-flag"' in page and "Vulnerable customer" in page
    assert 'id="why-this-call"' in page and "Signature missing" in page
    assert 'id="score-breakdown"' in page and 'id="why-reason"' in page
    assert "Barclays" in page and "Bank statements" in page  # claims and requirements
    assert "Please call me after lunch" in page and "Prefers a female agent" in page
    assert 'id="call-button"' in page and 'id="outcome-form"' in page
    assert ">On call<" not in page and ">Ready<" in page  # state bar out of band
    task = await task_of(w, user_id)
    assert (task.status, task.claimed_by) == ("claimed", agent.staff.id)
    # reloading the page brings the claimant back (another audited view)
    reloaded = await agent.text(await agent.client.get("/console"))
    assert f'data-user-id="{user_id}"' in reloaded and 'id="next-call"' not in reloaded


async def test_every_view_is_audited_and_the_second_is_served_from_redis(w: World) -> None:
    user_id = await ready_claimant(w)
    cache = ContextCache(services_of(w.app).redis, services_of(w.app).replica_db)
    await cache.invalidate([user_id])
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    assert await cache.cached(user_id)
    again = await agent.get(f"/console/claimants/{user_id}")
    assert again.status_code == 200 and 'id="claimant-context"' in await agent.text(again)

    async with w.dialler.connect() as conn:
        rows = (
            await conn.execute(
                select(db.audit_log)
                .where(db.audit_log.c.subject_id == str(user_id),
                       db.audit_log.c.action == "viewed_claimant")
                .order_by(db.audit_log.c.id)
            )
        ).all()  # fmt: skip
    assert len(rows) == 2
    assert all(r.actor_type == "agent" and r.actor_id == str(agent.staff.id) for r in rows)
    assert all(r.subject_type == "user" for r in rows)
    assert [r.detail["from_cache"] for r in rows] == [False, True]


async def test_no_task_ready_says_so(w: World) -> None:
    agent = await signed_in_agent(w, queue=Queue.OUTSTANDING)
    async with w.dialler.begin() as conn:
        await conn.execute(
            db.call_tasks.update()
            .where(db.call_tasks.c.queue == "outstanding", db.call_tasks.c.status == "ready")
            .values(status="withdrawn")
        )
    await agent.post("/console/state", {"state": "ready"})
    response = await agent.post("/console/next")
    page = await agent.text(response)
    assert response.status_code == 200
    assert 'id="no-task"' in page
    assert "No claimant is ready to call in the Outstanding documents queue" in page


async def test_someone_elses_claimant_is_a_404(w: World) -> None:
    user_id = await ready_claimant(w)
    owner = await signed_in_agent(w)
    await claim(w, owner, user_id)
    other = await signed_in_agent(w)
    for method, path, form in [
        ("get", f"/console/claimants/{user_id}", None),
        ("post", f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"}),
        ("post", f"/console/claimants/{user_id}/release", {}),
        ("post", f"/console/claimants/{user_id}/magic-link", {"channel": "sms"}),
        ("post", f"/console/claimants/{user_id}/call", {}),
    ]:
        if method == "get":
            response = await other.get(path)
        else:
            response = await other.post(path, form)
        assert response.status_code == 404, path
        assert (await response.get_json())["error"]["code"] == "not_found"
    unknown = await other.get("/console/claimants/987654321")
    assert unknown.status_code == 404
    assert (await task_of(w, user_id)).claimed_by == owner.staff.id


async def test_pausing_while_holding_a_claimant_is_refused(w: World) -> None:
    agent = await signed_in_agent(w)
    await claim(w, agent)
    response = await agent.post("/console/state", {"state": "paused", "reason": "Break"})
    assert response.status_code == 422
    assert "before pausing" in await agent.text(response)


# --- outcomes, callbacks, wrap-up -----------------------------------------------------------------


async def test_outcome_then_wrap_up_then_ready(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    response = await agent.post(
        f"/console/claimants/{user_id}/outcome",
        {"disposition": "no_answer", "notes": "Rang out twice"},
    )
    page = await agent.text(response)
    assert response.status_code == 200, page
    assert 'id="wrap-up"' in page and "Outcome saved: No answer" in page
    assert 'data-countdown="30"' in page or 'data-countdown="29"' in page
    assert 'hx-trigger="load delay:' in page
    assert (await latest_state(w, agent.staff.id)).state == "wrap_up"
    assert 'id="wrap-up"' in await agent.text(await agent.client.get("/console"))  # on reload
    task = await task_of(w, user_id)
    assert task.status == "ready" and task.claimed_by is None and task.not_before > now()
    [call] = await calls_of(w, user_id)
    assert (call.disposition, call.notes, call.agent_id) == ("no_answer", "Rang out twice",
                                                             agent.staff.id)  # fmt: skip

    ended = await agent.post("/console/wrap-up/end")
    assert ended.status_code == 200
    assert 'id="idle"' in await agent.text(ended)
    assert (await latest_state(w, agent.staff.id)).state == "ready"


async def test_invalid_outcome_forms_re_render_with_the_message(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    path = f"/console/claimants/{user_id}/outcome"
    bank_holiday = holiday()
    on_holiday = f"{bank_holiday.isoformat()}T11:00:00+00:00"
    cases = [
        ({}, "Choose an outcome."),
        ({"disposition": "shouted"}, "Choose an outcome from the list."),
        ({"disposition": "callback_requested"}, "Choose a callback day and time."),
        ({"disposition": "callback_requested", "callback_at": "tomorrow-ish"},
         "could not be read"),
        ({"disposition": "callback_requested",
          "callback_at": (now() - timedelta(hours=1)).isoformat()}, "has passed"),
        ({"disposition": "callback_requested",
          "callback_at": (now() + timedelta(days=30)).isoformat()}, "up to 7 days ahead"),
        ({"disposition": "callback_requested", "callback_at": on_holiday},
         "is outside the calling windows"),
        ({"disposition": "no_answer", "notes": "x" * 4001}, "at most 4,000 characters"),
    ]  # fmt: skip
    for form, message in cases:
        response = await agent.post(path, form)
        page = await agent.text(response)
        assert response.status_code == 422, (form, page)
        assert message in page, (form, page)
        assert 'id="outcome-form"' in page and 'id="outcome-error"' in page
        assert response.headers["HX-Retarget"] == "#outcome-form"
    # nothing was saved, the claimant is still ours
    assert await calls_of(w, user_id) == []
    assert (await task_of(w, user_id)).claimed_by == agent.staff.id
    # what was typed survives the round trip
    kept = await agent.text(await agent.post(path, {"disposition": "callback_requested",
                                                    "notes": "Call after 3"}))  # fmt: skip
    assert "Call after 3</textarea>" in kept
    assert 'value="callback_requested" data-needs-callback="true" selected' in kept


async def test_callback_picker_offers_only_allowed_times_and_books_one(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    page = await claim(w, agent, user_id)
    assert 'id="callback-day"' in page and 'id="callback-time"' in page
    picker = page[page.index('id="callback-day"') :].split("</select>")[0]  # the outcome's
    day_values = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', picker)
    assert holiday().isoformat() not in day_values  # the bank holiday is never offered
    # seven days ahead, less the bank holiday, and less today once its last slot has passed
    today = datetime.now(LONDON).date()
    expected = [today + timedelta(days=n) for n in range(7)]
    expected.remove(holiday())
    windows = console_rules().calling_windows
    if not any(s >= datetime.now(UTC) + CALLBACK_LEAD for s in callback_slots(today, windows)):
        expected.remove(today)
    assert day_values == [day.isoformat() for day in expected]

    slots = await agent.get(f"/console/callback-slots?callback_day={day_values[1]}")
    options = _OPTION.findall(await agent.text(slots))
    assert options and all(o.startswith(day_values[1]) or "T2" in o or "T0" in o for o in options)
    none = await agent.text(await agent.get(f"/console/callback-slots?callback_day={holiday()}"))
    assert "No times left on this day" in none

    chosen = options[len(options) // 2]
    response = await agent.post(
        f"/console/claimants/{user_id}/outcome",
        {"disposition": "callback_requested", "callback_day": day_values[1],
         "callback_at": chosen, "notes": "Wants to talk it through with her son"},
    )  # fmt: skip
    assert response.status_code == 200, await agent.text(response)
    async with w.dialler.connect() as conn:
        callback = (
            await conn.execute(select(db.callbacks).where(db.callbacks.c.user_id == user_id))
        ).one()
    assert callback.status == "pending"
    assert callback.scheduled_for.isoformat() == chosen
    assert callback.notes == "Wants to talk it through with her son"
    assert callback.created_by == agent.staff.id


async def test_progressive_mode_claims_the_next_claimant_when_wrap_up_ends(w: World) -> None:
    first = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, first)
    await agent.post(f"/console/claimants/{first}/outcome", {"disposition": "busy"})
    second = await ready_claimant(w)
    response = await agent.post("/console/wrap-up/end", {"progressive": "on"})
    page = await agent.text(response)
    assert response.status_code == 200
    assert f'data-user-id="{second}"' in page
    assert (await task_of(w, second)).claimed_by == agent.staff.id
    # a second (late) end of the same wrap-up claims nothing more
    again = await agent.post("/console/wrap-up/end", {"progressive": "on"})
    assert f'data-user-id="{second}"' in await agent.text(again)


async def test_without_progressive_mode_wrap_up_ends_in_ready(w: World) -> None:
    first = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, first)
    await agent.post(f"/console/claimants/{first}/outcome", {"disposition": "busy"})
    await ready_claimant(w)
    page = await agent.text(await agent.post("/console/wrap-up/end"))
    assert 'id="idle"' in page and "Ready for your next call" in page


async def test_release_returns_the_claimant_and_tells_the_queue(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    bus = services_of(w.app).live()
    async with bus.subscribe([channel_for_queue(Queue.UNSIGNED)]) as events:
        response = await agent.post(f"/console/claimants/{user_id}/release")
        received = [await events.next(2.0) for _ in range(2)]
    assert response.status_code == 200
    assert "The claimant is back in the queue." in await agent.text(response)
    task = await task_of(w, user_id)
    assert task.status == "ready" and task.claimed_by is None
    assert [e.name if e else None for e in received] == ["task-released", "queue-depth"]
    released, depth = received
    assert released is not None and released.data["task_id"] == task.id
    assert released.data["agent_id"] == agent.staff.id and released.data["queue"] == "unsigned"
    assert depth is not None and depth.data["queue"] == "unsigned" and depth.data["ready"] >= 0


async def test_magic_link_by_sms(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    response = await agent.post(f"/console/claimants/{user_id}/magic-link", {"channel": "sms"})
    page = await agent.text(response)
    assert response.status_code == 200, page
    assert 'id="magic-link-sent"' in page and "Magic link sent by SMS" in page
    async with w.dialler.connect() as conn:
        links = (
            await conn.execute(select(db.magic_links).where(db.magic_links.c.user_id == user_id))
        ).all()
        sms = (
            await conn.execute(select(db.sms_messages).where(db.sms_messages.c.user_id == user_id))
        ).all()
    assert len(links) == 1 and links[0].created_by == agent.staff.id
    assert links[0].purpose == "signature"
    assert len(sms) == 1 and sms[0].direction == "outbound"
    bad = await agent.post(f"/console/claimants/{user_id}/magic-link", {"channel": "pigeon"})
    assert bad.status_code == 422 and "Choose SMS or email." in await agent.text(bad)


# --- live updates ---------------------------------------------------------------------------------


async def test_events_stream_sends_queue_depth_and_published_events(w: World) -> None:
    agent = await signed_in_agent(w)
    async with agent.client.request("/events", headers={"Accept": "text/event-stream"}) as stream:
        await stream.send_complete()
        received = ""
        while "event: queue-depth" not in received:
            received += (await asyncio.wait_for(stream.receive(), 5)).decode()
        assert 'id="queue-ready-count"' in received
        bus = services_of(w.app).live()
        event = LiveEvent(
            "task-released", {"queue": "unsigned", "task_id": 1, "agent_id": 2,
                              "at": now().isoformat()},
        )  # fmt: skip
        for _ in range(50):  # the stream subscribes as it starts; publish until it hears
            if await bus.publish(channel_for_queue(Queue.UNSIGNED), event):
                break
            await asyncio.sleep(0.05)
        while "event: task-released" not in received:
            received += (await asyncio.wait_for(stream.receive(), 5)).decode()
        assert "A claimant was returned to the Unsigned queue" in received
        await stream.disconnect()


async def test_events_stream_needs_a_session(w: World) -> None:
    response = await w.app.test_client().get("/events", headers={"Accept": "text/event-stream"})
    assert response.status_code == 401


# --- misc -----------------------------------------------------------------------------------------


async def test_idle_console_after_login_elsewhere_records_nothing_twice(w: World) -> None:
    staff = await make_staff(w.dialler)
    client = w.app.test_client()
    assert await sign_in(client, staff) == 303
    await client.get("/console")
    await client.get("/console")
    async with w.dialler.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(db.agent_state_changes.c.agent_id == staff.id)
        )
    assert count == 1  # viewing the console changes nothing


async def test_next_call_without_temporal_shows_the_engine_down_panel_and_hands_back(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console catches the outreach client's errors itself: an HTML panel that says what
    happened (not the API's JSON 503), and the reservation is back in the queue."""
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    assert (await agent.post("/console/state", {"state": "ready"})).status_code == 200

    async def no_temporal() -> Client:
        raise RuntimeError("Temporal is away")

    away = OutreachClient(no_temporal, w.settings.temporal_task_queue, timeout=1.0)
    monkeypatch.setattr(services_of(w.app), "outreach", lambda: away)
    response = await agent.post("/console/next")
    page = await agent.text(response)
    assert response.status_code == 200
    assert "The dialler engine is not responding" in page
    task = await task_of(w, user_id)
    assert (task.status, task.claimed_by) == ("ready", None)
