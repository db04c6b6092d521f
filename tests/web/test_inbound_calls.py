"""Claimants ringing back (issue 14), through signed webhooks against the real app, databases,
Redis and an outreach worker: a known caller rings the agent who last called them, else the
free agent of their queue; out of hours or with no one free they hear a message and a shared
callback is booked for the next calling time; an unknown caller hears a neutral message; an
opted-out claimant is answered and stays suppressed. Forged requests are 403 and hostile
values never a 500. The agent's leg, the missed call, the simulated provider and the
console's panel are covered too."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import insert, select

from adapters import call_log
from adapters.live import INBOUND_CALL, LiveBus, channel_for_agent
from adapters.rules_file import load_rules_file
from domain.calling_windows import is_open
from domain.inbound_calls import CALLBACK_LEAD, UNKNOWN_CALLER_MESSAGE
from domain.phones import phone_key
from schemas import dialler_db as db
from schemas import replica
from schemas.enums import AgentState, Queue
from schemas.outreach import ChangeKind
from tests.web.conftest import make_staff, sign_in
from tests.web.console_fixtures import (
    HTMX,
    LONDON,
    Agent,
    World,
    console_rules,
    csrf,
    latest_state,
    ready_claimant,
    services_of,
    signed_in_agent,
    w,
    world,
)
from tests.workflows.helpers import event, task_in
from web import create_app
from web.inbound_voice import (
    INBOUND_DIAL_PATH,
    INBOUND_PATH,
    INBOUND_STATUS_PATH,
    SimulatedInbound,
)
from web.twilio_signature import public_url, sign
from web.voice import RECORDING_NOTICE, RECORDING_PATH, child_sid

__all__ = ["w", "world"]  # fixtures, imported for pytest

OUR_NUMBER = "+447700900000"


# --- helpers ----------------------------------------------------------------------------------


def _sid() -> str:
    return "CA" + secrets.token_hex(16)


async def _post(w: World, path: str, params: dict[str, str], *, signed: bool = True) -> Any:
    headers = {"X-Twilio-Signature": sign(w.settings, public_url(w.settings, path), params)}
    return await w.app.test_client().post(path, form=params, headers=headers if signed else {})


async def _ring(w: World, number: str, sid: str | None = None) -> tuple[Any, ET.Element]:
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": sid or _sid(),
        "From": number,
        "To": OUR_NUMBER,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    response = await _post(w, INBOUND_PATH, params)
    assert response.status_code == 200, await response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    return response, ET.fromstring(await response.get_data(as_text=True))  # noqa: S314


def _said(twiml: ET.Element) -> list[str]:
    return [(say.text or "").strip() for say in twiml.iter("Say")]


def _client(twiml: ET.Element) -> str | None:
    client = twiml.find("Dial/Client")
    return None if client is None else (client.text or "").strip()


async def _phone_of(w: World, user_id: int) -> str:
    async with w.replica.connect() as conn:
        number = await conn.scalar(
            select(replica.users.c.phone_number).where(replica.users.c.id == user_id)
        )
    return str(number)


async def _called_before(w: World, user_id: int, agent_id: int | None, number: str) -> None:
    """A call of ours to the claimant's number, made by `agent_id`, a while ago."""
    async with w.dialler.begin() as conn:
        await conn.execute(
            insert(db.calls).values(
                user_id=user_id, agent_id=agent_id, provider="simulated", to_number=number,
                phone_key=phone_key(number), status="completed", disposition="no_answer",
                started_at=datetime.now(UTC) - timedelta(hours=3),
            )
        )  # fmt: skip


async def _set_state(w: World, agent_id: int, state: AgentState, reason: str | None = None) -> None:
    await services_of(w.app).agent_states().record(agent_id, state, reason)


async def _only_these_ready(w: World, *agent_ids: int) -> None:
    """Every other agent of the module's world Offline, these Ready in this order (the
    first has been Ready the longest)."""
    async with w.dialler.connect() as conn:
        everyone = [int(r) for r in await conn.scalars(select(db.agents.c.id))]
    for agent_id in everyone:
        if agent_id not in agent_ids:
            await _set_state(w, agent_id, AgentState.OFFLINE)
    for agent_id in agent_ids:
        await _set_state(w, agent_id, AgentState.READY)


async def _inbound_rows(w: World, user_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        return list(
            await conn.execute(
                select(db.calls)
                .where(db.calls.c.user_id == user_id, db.calls.c.direction == "inbound")
                .order_by(db.calls.c.id)
            )
        )


async def _callbacks(w: World, user_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        return list(
            await conn.execute(
                select(db.callbacks)
                .where(db.callbacks.c.user_id == user_id)
                .order_by(db.callbacks.c.id)
            )
        )


async def _suppressions(w: World) -> list[tuple[Any, ...]]:
    async with w.dialler.connect() as conn:
        rows = await conn.execute(select(db.suppressions).order_by(db.suppressions.c.id))
        return [tuple(r) for r in rows]


async def _known_caller(w: World, *, queue: Queue = Queue.UNSIGNED) -> tuple[int, str, Agent]:
    """A claimant in the unsigned queue, last called by an agent of `queue` (signed in)."""
    user_id = await ready_claimant(w)
    number = await _phone_of(w, user_id)
    last = await signed_in_agent(w, queue=queue)
    await _called_before(w, user_id, last.staff.id, number)
    return user_id, number, last


@contextmanager
def _rules_closed_today_and_tomorrow(w: World) -> Iterator[datetime]:
    """The lines closed all of today and tomorrow (bank holidays); yields the next opening
    (midnight after tomorrow, London: the test rules' windows are open all day)."""
    deps = services_of(w.app)
    rules = console_rules()
    today = datetime.now(LONDON).date()
    windows = rules.calling_windows.model_copy(
        update={"bank_holidays": [today, today + timedelta(days=1)]}
    )
    deps.use_rules(rules.model_copy(update={"calling_windows": windows}))
    try:
        yield datetime.combine(today + timedelta(days=2), time(0, 0), LONDON).astimezone(UTC)
    finally:
        deps.use_rules(console_rules())


# --- known callers ----------------------------------------------------------------------------


async def test_a_known_caller_rings_the_agent_who_last_called_them(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    longer = await signed_in_agent(w, queue=Queue.UNSIGNED)  # Ready longer, same queue
    await _only_these_ready(w, longer.staff.id, last.staff.id)
    bus = services_of(w.app).live()
    async with bus.subscribe([channel_for_agent(last.staff.id)]) as events:
        sid = _sid()
        _, twiml = await _ring(w, number, sid)
        heard = await events.next(2.0)

    # the recording notice first, then the agent's browser, recorded from answer
    assert _said(twiml) == [RECORDING_NOTICE]
    dial = twiml.find("Dial")
    assert dial is not None and dial.get("record") == "record-from-answer-dual"
    assert _client(twiml) == f"agent-{last.staff.id}"
    [call] = await _inbound_rows(w, user_id)
    assert (call.agent_id, call.user_id, call.direction) == (last.staff.id, user_id, "inbound")
    assert call.phone_key == phone_key(number) and call.to_number == number
    assert call.provider_call_sid == sid and call.status == "ringing"
    assert call.recording_notice_played and call.from_number == OUR_NUMBER
    client = twiml.find("Dial/Client")
    assert client is not None
    assert client.get("statusCallback", "").endswith(f"{INBOUND_STATUS_PATH}?call_id={call.id}")
    assert dial.get("action", "").endswith(f"{INBOUND_DIAL_PATH}?call_id={call.id}")
    assert dial.get("recordingStatusCallback", "").endswith(f"{RECORDING_PATH}?call_id={call.id}")
    state = await latest_state(w, last.staff.id)
    assert (state.state, state.reason) == ("on_call", f"inbound call {call.id}")
    assert heard is not None and heard.name == INBOUND_CALL
    assert heard.data == {"call_id": call.id, "user_id": user_id}  # ids only on the channel

    # Twilio asking again for the same call: the same answer, one row, one agent rung
    _, again = await _ring(w, number, sid)
    assert _client(again) == f"agent-{last.staff.id}"
    assert len(await _inbound_rows(w, user_id)) == 1
    assert (await latest_state(w, longer.staff.id)).state == "ready"

    # the console's panel names the caller and shows their context (an audited view)
    panel = await last.get(f"/console/calls/{call.id}/context")
    page = await last.text(panel)
    assert panel.status_code == 200, page
    assert f"Incoming call from Test Claimant{user_id}" in page
    assert 'id="claims"' in page and 'id="why-this-call"' in page
    assert 'id="sim-inbound-answer"' in page
    # and the console itself shows it while the call goes on
    console = await last.client.get("/console", headers={"Accept": "text/html"})
    assert 'id="inbound-call"' in await console.get_data(as_text=True)
    # an agent who may not see the claimant may not open it
    other = await longer.get(f"/console/calls/{call.id}/context")
    assert other.status_code == 404
    # nor simulate their side of it
    simulated = await longer.post(f"/console/inbound/{call.id}/simulate", {"action": "answer"})
    assert simulated.status_code == 404


async def test_a_known_caller_rings_their_queues_agent_when_the_last_agent_is_not_ready(
    w: World,
) -> None:
    user_id, number, last = await _known_caller(w)
    other_queue = await make_staff(w.dialler, queue=Queue.OUTSTANDING)
    first = await make_staff(w.dialler, queue=Queue.UNSIGNED)
    second = await make_staff(w.dialler, queue=Queue.UNSIGNED)
    await _only_these_ready(w, other_queue.id, first.id, second.id)
    await _set_state(w, last.staff.id, AgentState.PAUSED, "Lunch")

    _, twiml = await _ring(w, number)

    assert _said(twiml) == [RECORDING_NOTICE]
    assert _client(twiml) == f"agent-{first.id}"  # the queue's agent Ready the longest
    [call] = await _inbound_rows(w, user_id)
    assert call.agent_id == first.id and call.queue == "unsigned"
    assert (await latest_state(w, first.id)).state == "on_call"
    assert (await latest_state(w, last.staff.id)).state == "paused"
    assert (await latest_state(w, second.id)).state == "ready"


async def test_two_claimants_ringing_at_once_ring_two_agents(w: World) -> None:
    _, a_number, last = await _known_caller(w)
    b_user = await ready_claimant(w)
    b_number = await _phone_of(w, b_user)
    await _called_before(w, b_user, last.staff.id, b_number)
    spare = await make_staff(w.dialler, queue=Queue.UNSIGNED)
    await _only_these_ready(w, last.staff.id, spare.id)

    (_, one), (_, two) = await asyncio.gather(_ring(w, a_number), _ring(w, b_number))

    rung = {_client(one), _client(two)}
    assert rung == {f"agent-{last.staff.id}", f"agent-{spare.id}"}


# --- no one to take it ------------------------------------------------------------------------


async def test_out_of_hours_a_message_and_a_shared_callback_for_the_next_window(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)  # free, but the lines are closed
    with _rules_closed_today_and_tomorrow(w) as opening:
        _, twiml = await _ring(w, number)

    assert twiml.find("Dial") is None and twiml.find("Hangup") is not None
    [message] = _said(twiml)
    assert "Our lines are closed" in message and "We will call you back from 00:00" in message
    assert "Test" not in message and f"Claimant{user_id}" not in message  # no name
    [callback] = await _callbacks(w, user_id)
    assert callback.status == "pending" and callback.scheduled_for == opening
    assert callback.owner_agent_id is None and callback.created_by is None  # shared, by us
    assert "rang us back" in callback.notes and "lines closed" in callback.notes
    assert await _inbound_rows(w, user_id) == []
    assert (await latest_state(w, last.staff.id)).state == "ready"  # nobody rung


async def test_in_hours_with_no_one_free_a_callback_shortly(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w)  # everyone Offline
    await _set_state(w, last.staff.id, AgentState.PAUSED, "Break")
    before = datetime.now(UTC)
    _, twiml = await _ring(w, number)
    after = datetime.now(UTC)

    assert twiml.find("Dial") is None
    [message] = _said(twiml)
    assert "All our advisers are busy" in message and "We will call you back from" in message
    [callback] = await _callbacks(w, user_id)
    assert callback.owner_agent_id is None
    assert before + CALLBACK_LEAD <= callback.scheduled_for <= after + CALLBACK_LEAD
    assert "no one free" in callback.notes


async def test_an_unknown_caller_hears_a_neutral_message(w: World) -> None:
    agent = await make_staff(w.dialler, queue=Queue.UNSIGNED)
    await _only_these_ready(w, agent.id)
    async with w.dialler.connect() as conn:
        calls_before = await conn.scalar(select(db.calls.c.id).order_by(db.calls.c.id.desc()))
        callbacks_before = await conn.scalar(
            select(db.callbacks.c.id).order_by(db.callbacks.c.id.desc())
        )
    for caller in ("+447700900999", "07700 900999", "Anonymous", ""):
        _, twiml = await _ring(w, caller)
        assert _said(twiml) == [UNKNOWN_CALLER_MESSAGE]
        assert twiml.find("Dial") is None and twiml.find("Hangup") is not None
    assert "Resolve My Claim" in UNKNOWN_CALLER_MESSAGE
    async with w.dialler.connect() as conn:
        calls_after = await conn.scalar(select(db.calls.c.id).order_by(db.calls.c.id.desc()))
        callbacks_after = await conn.scalar(
            select(db.callbacks.c.id).order_by(db.callbacks.c.id.desc())
        )
    assert (calls_after, callbacks_after) == (calls_before, callbacks_before)
    assert (await latest_state(w, agent.id)).state == "ready"


async def test_a_caller_matched_by_another_spelling_of_their_number(w: World) -> None:
    """We called 07700 900xxx as the replica spelled it; Twilio sends +447700900xxx."""
    user_id = await ready_claimant(w)
    number = await _phone_of(w, user_id)
    national = "0" + number.removeprefix("+44")
    last = await make_staff(w.dialler, queue=Queue.UNSIGNED)
    await _called_before(w, user_id, last.id, national)
    await _only_these_ready(w, last.id)
    _, twiml = await _ring(w, number)
    assert _client(twiml) == f"agent-{last.id}"


# --- opted out --------------------------------------------------------------------------------


async def test_an_opted_out_caller_is_answered_and_stays_suppressed(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    async with w.dialler.begin() as conn:
        await conn.execute(
            insert(db.suppressions).values(
                user_id=user_id, phone_number=number, reason="do_not_call", source="test"
            )
        )
    handle = w.harness.client.get_workflow_handle(f"outreach-{user_id}")
    await handle.signal("change", event(ChangeKind.REFRESH, user_id))
    await task_in(w.harness, user_id, None)  # outreach stopped: the task is withdrawn
    await _only_these_ready(w, last.staff.id)
    suppressions = await _suppressions(w)

    # in hours: a person takes the call, with the flag in front of them
    _, twiml = await _ring(w, number)
    assert _said(twiml) == [RECORDING_NOTICE]
    assert _client(twiml) == f"agent-{last.staff.id}"
    [call] = await _inbound_rows(w, user_id)
    page = await last.text(await last.get(f"/console/calls/{call.id}/context"))
    assert 'id="opted-out-flag"' in page

    # out of hours: a message, no promise of a call (outreach has stopped: none is booked)
    await _only_these_ready(w, last.staff.id)
    with _rules_closed_today_and_tomorrow(w):
        _, closed = await _ring(w, number)
    [message] = _said(closed)
    assert "Please call again when our lines are open" in message
    assert "call you back" not in message
    assert await _callbacks(w, user_id) == []

    # nothing reversed: the same suppression rows, and the workflow still stopped
    assert await _suppressions(w) == suppressions
    row = await task_in(w.harness, user_id, None)
    assert row.status == "withdrawn"


# --- the agent's leg --------------------------------------------------------------------------


async def _status(w: World, call: Any, status: str, **extra: str) -> Any:
    params = {
        "CallSid": child_sid(call.provider_call_sid),
        "ParentCallSid": call.provider_call_sid,
        "CallStatus": status,
        "Timestamp": "Mon, 02 Mar 2026 10:00:00 +0000",
    } | extra
    return await _post(w, f"{INBOUND_STATUS_PATH}?call_id={call.id}", params)


async def _dial_ended(w: World, call: Any, dial_status: str, seconds: int = 0) -> ET.Element:
    params = {
        "CallSid": call.provider_call_sid,
        "DialCallSid": child_sid(call.provider_call_sid),
        "DialCallStatus": dial_status,
        "DialCallDuration": str(seconds),
    }
    response = await _post(w, f"{INBOUND_DIAL_PATH}?call_id={call.id}", params)
    assert response.status_code == 200
    return ET.fromstring(await response.get_data(as_text=True))  # noqa: S314


async def test_the_agent_answers_talks_and_is_ready_again(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    live_before = (await call_log.daily_abandon_rate(w.dialler)).live_calls
    await _ring(w, number)
    [call] = await _inbound_rows(w, user_id)

    bus = services_of(w.app).live()
    async with bus.subscribe([channel_for_agent(last.staff.id)]) as events:
        assert (await _status(w, call, "in-progress")).status_code == 204
        assert (await _status(w, call, "completed", CallDuration="75")).status_code == 204
        assert (await _status(w, call, "completed", CallDuration="99")).status_code == 204
        heard = [await events.next(2.0) for _ in range(2)]
    assert [e.data["status"] for e in heard if e is not None] == ["in-progress", "completed"]
    hangup = await _dial_ended(w, call, "completed", 75)
    assert _said(hangup) == [] and hangup.find("Hangup") is not None
    recording = {"CallSid": call.provider_call_sid, "RecordingSid": "RE" + "7" * 32,
                 "RecordingUrl": "https://api.twilio.test/r", "RecordingStatus": "completed",
                 "RecordingDuration": "75"}  # fmt: skip
    assert (await _post(w, f"{RECORDING_PATH}?call_id={call.id}", recording)).status_code == 204

    [row] = await _inbound_rows(w, user_id)
    assert row.status == "completed" and row.duration_seconds == 75  # applied once
    assert row.answered_at is not None and row.recording_sid == "RE" + "7" * 32
    assert not row.abandoned
    state = await latest_state(w, last.staff.id)
    assert (state.state, state.reason) == ("ready", "inbound call ended")
    assert await _callbacks(w, user_id) == []
    # the claimant's call is no attempt of ours: no contact cap and no abandon rate counts it
    now = datetime.now(UTC)
    async with w.dialler.connect() as conn:
        summary = await call_log.contact_summary(
            conn, user_id=user_id, phone_key=phone_key(number),
            day_start=now - timedelta(days=1), week_ago=now - timedelta(days=7),
        )  # fmt: skip
    assert (summary.attempts_today, summary.number_attempts_today) == (1, 1)  # ours, earlier
    assert (await call_log.daily_abandon_rate(w.dialler)).live_calls == live_before


async def test_a_call_the_agent_lets_ring_out_books_a_callback_and_pauses_them(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    await _ring(w, number)
    [call] = await _inbound_rows(w, user_id)

    twiml = await _dial_ended(w, call, "no-answer")  # before (or without) the leg's callback
    assert (await _status(w, call, "no-answer")).status_code == 204

    [message] = _said(twiml)
    assert "We will call you back from" in message and twiml.find("Hangup") is not None
    [callback] = await _callbacks(w, user_id)
    assert callback.owner_agent_id is None and "did not answer" in callback.notes
    [row] = await _inbound_rows(w, user_id)
    assert row.status == "no-answer" and row.answered_at is None
    state = await latest_state(w, last.staff.id)
    assert (state.state, state.reason) == ("paused", "missed an inbound call")


async def test_callbacks_for_another_call_or_leg_change_nothing(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    await _ring(w, number)
    [call] = await _inbound_rows(w, user_id)
    params = {"CallSid": _sid(), "ParentCallSid": _sid(), "CallStatus": "completed"}
    response = await _post(w, f"{INBOUND_STATUS_PATH}?call_id={call.id}", params)
    assert response.status_code == 204
    ended = await _post(w, f"{INBOUND_DIAL_PATH}?call_id={call.id}",
                        {"CallSid": _sid(), "DialCallStatus": "no-answer"})  # fmt: skip
    assert ended.status_code == 200
    [row] = await _inbound_rows(w, user_id)
    assert row.status == "ringing"
    assert (await latest_state(w, last.staff.id)).state == "on_call"
    assert await _callbacks(w, user_id) == []


# --- the simulated provider -------------------------------------------------------------------


async def test_the_simulated_provider_rings_and_the_agent_answers_in_the_console(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    ring = await SimulatedInbound(w.app, w.settings).ring(number)
    assert ring.plan.said == [RECORDING_NOTICE]
    assert ring.plan.client == f"agent-{last.staff.id}"
    [call] = await _inbound_rows(w, user_id)
    assert call.provider == "simulated" and call.provider_call_sid == ring.call_sid

    answered = await last.post(f"/console/inbound/{call.id}/simulate", {"action": "answer"})
    assert "Connected" in await last.text(answered)
    hung_up = await last.post(f"/console/inbound/{call.id}/simulate", {"action": "hangup"})
    page = await last.text(hung_up)
    assert "Call ended" in page and 'id="inbound-done"' in page
    [row] = await _inbound_rows(w, user_id)
    assert row.status == "completed" and row.recording_sid is not None
    assert row.recording_store == "local"
    assert (await latest_state(w, last.staff.id)).state == "ready"


async def test_the_simulated_agent_declines_and_a_callback_is_booked(w: World) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    await SimulatedInbound(w.app, w.settings).ring(number)
    [call] = await _inbound_rows(w, user_id)
    declined = await last.post(f"/console/inbound/{call.id}/simulate", {"action": "decline"})
    assert declined.status_code == 200
    assert len(await _callbacks(w, user_id)) == 1
    state = await latest_state(w, last.staff.id)
    assert (state.state, state.reason) == ("paused", "declined an inbound call")
    bad = await last.post(f"/console/inbound/{call.id}/simulate", {"action": "explode"})
    assert bad.status_code == 422


# --- signatures and hostile input -------------------------------------------------------------


@pytest.mark.parametrize("path", [INBOUND_PATH, INBOUND_STATUS_PATH, INBOUND_DIAL_PATH])
async def test_unsigned_or_forged_webhooks_are_403(w: World, path: str) -> None:
    params = {"CallSid": _sid(), "From": "+447700900001", "CallStatus": "ringing"}
    unsigned = await _post(w, path, params, signed=False)
    forged = await w.app.test_client().post(
        path, form=params, headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}
    )
    other_url = sign(w.settings, public_url(w.settings, "/webhooks/twilio/voice"), params)
    elsewhere = await w.app.test_client().post(
        path, form=params, headers={"X-Twilio-Signature": other_url}
    )
    assert unsigned.status_code == forged.status_code == elsewhere.status_code == 403


FIELDS = ("CallSid", "From", "To", "CallStatus", "ParentCallSid", "DialCallStatus",
          "DialCallDuration", "CallDuration", "Timestamp", "AccountSid", "Direction")  # fmt: skip
HOSTILE = ("\x00", "ab\x00cd", "x" * 200_000, "9" * 5_000, "<Say>hi</Say>", "+44" * 300)


@pytest.mark.parametrize("path", [INBOUND_PATH, INBOUND_STATUS_PATH, INBOUND_DIAL_PATH])
async def test_hostile_values_in_every_field_never_give_a_500(w: World, path: str) -> None:
    user_id, number, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    await _ring(w, number)
    [call] = await _inbound_rows(w, user_id)
    base = {
        "CallSid": call.provider_call_sid,
        "ParentCallSid": call.provider_call_sid,
        "From": number,
        "To": OUR_NUMBER,
        "CallStatus": "in-progress",
        "DialCallStatus": "no-answer",
    }
    queries = [""] if path == INBOUND_PATH else [f"?call_id={call.id}", "?call_id=" + "9" * 40]
    for query in queries:
        for field in FIELDS:
            for value in HOSTILE:
                params = base | {field: value}
                if path == INBOUND_PATH and field != "CallSid":
                    params["CallSid"] = _sid()  # a new call each time: routed, not repeated
                target = path + query
                signature = sign(w.settings, public_url(w.settings, target), params)
                response = await w.app.test_client().post(
                    target, form=params, headers={"X-Twilio-Signature": signature}
                )
                assert response.status_code < 500, (path, query, field, value[:20])


# --- the Voice SDK token ----------------------------------------------------------------------


async def test_with_twilio_the_token_lets_the_agents_browser_be_rung(w: World) -> None:
    settings = w.settings.model_copy(
        update={
            "twilio_account_sid": "AC" + "1" * 32,
            "twilio_auth_token": SecretStr("twilio-auth-token-for-tests"),
            "twilio_api_key_sid": "SK" + "2" * 32,
            "twilio_api_key_secret": SecretStr("api-key-secret-for-tests"),
            "twilio_twiml_app_sid": "AP" + "3" * 32,
        }
    )
    app = create_app(settings)
    services_of(app).use_rules(console_rules())
    async with app.test_app():
        staff = await make_staff(w.dialler)
        client = app.test_client()
        assert await sign_in(client, staff) == 303
        page = await (await client.get("/console")).get_data(as_text=True)
        assert 'data-incoming="true"' in page and 'id="inbound-call-notice"' in page
        body = await (await client.get("/console/calls/token")).get_json()
        claims = jwt.decode(body["token"], "api-key-secret-for-tests", algorithms=["HS256"],
                            options={"verify_aud": False})  # fmt: skip
        assert claims["grants"]["voice"]["incoming"]["allow"] is True
        assert claims["grants"]["identity"] == f"agent-{staff.id}"
        # the simulator's key is no Twilio signature
        params = {"CallSid": _sid(), "From": "+447700900001"}
        headers = {"X-Twilio-Signature": sign(w.settings, public_url(settings, INBOUND_PATH),
                                              params)}  # fmt: skip
        response = await app.test_client().post(INBOUND_PATH, form=params, headers=headers)
        assert response.status_code == 403
        # there is no simulator with Twilio
        token = await csrf(client)
        simulate = await client.post("/console/inbound/1/simulate", form={"action": "answer"},
                                     headers=HTMX | {"X-CSRF-Token": token})  # fmt: skip
        assert simulate.status_code == 404


# --- dialler dev ring-back ---------------------------------------------------------------------


DIALLER = str(Path(sys.executable).parent / "dialler")


async def _dialler(w: World, *args: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
    """The command in its own process (as from a shell), against the world's databases,
    Redis and outreach worker; no Twilio unless `extra` sets it."""
    env = (extra or {}) | {
        "PATH": os.environ.get("PATH", ""),
        "ENVIRONMENT": "test",
        "DATABASE_URL": w.settings.database_url,
        "REPLICA_DATABASE_URL": w.settings.replica_database_url,
        "REDIS_URL": w.settings.redis_url,
        "TEMPORAL_ADDRESS": w.settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": w.settings.temporal_task_queue,
        "SECRET_KEY": w.settings.secret_key.get_secret_value(),
    }
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        # a generous limit: the command imports the whole app, on a machine that may be busy
        output, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"dialler {' '.join(args)} did not finish") from None
    return int(process.returncode or 0), output.decode()


async def test_dev_ring_back_drives_the_same_signed_webhook(w: World) -> None:
    user_id, _, last = await _known_caller(w)
    await _only_these_ready(w, last.staff.id)
    # the command reads the rules file (Mon-Fri 08:00-21:00...): in hours it rings the agent
    windows = load_rules_file(w.settings.rules_file).calling_windows
    in_hours = is_open(datetime.now(UTC), windows)
    redis = Redis.from_url(w.settings.redis_url)
    try:
        bus = LiveBus(redis)  # the command's namespace: its Redis database's
        async with bus.subscribe([channel_for_agent(last.staff.id)]) as events:
            code, output = await _dialler(w, "dev", "ring-back", str(user_id))
            heard = await events.next(2.0) if in_hours else None
    finally:
        await redis.aclose()
    assert code == 0, output
    if in_hours:
        assert f"Ringing agent-{last.staff.id}" in output
        [call] = await _inbound_rows(w, user_id)
        assert call.provider == "simulated" and call.agent_id == last.staff.id
        assert heard is not None and heard.data == {"call_id": call.id, "user_id": user_id}
    else:
        assert "No agent was rung. The caller heard:" in output and "call you back" in output
        assert len(await _callbacks(w, user_id)) == 1

    credentials = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32}
    refused, why = await _dialler(w, "dev", "ring-back", str(user_id), extra=credentials)
    assert refused != 0 and "Twilio is configured" in why
