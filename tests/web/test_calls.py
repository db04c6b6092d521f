"""Browser calling over HTTP: the simulated provider end to end, the TwiML (recording notice,
dual-channel recording, the number from the server), signed and idempotent webhooks, the
Voice SDK token, and who may do what."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from quart import Quart
from sqlalchemy import insert, select

from adapters.live import channel_for_agent
from config.settings import Settings
from domain.phones import phone_key
from schemas import dialler_db as db
from schemas import replica
from schemas.enums import AgentRole
from tests.factories import add_claimant
from tests.web.conftest import make_staff, sign_in
from tests.web.console_fixtures import (
    HTMX,
    World,
    calls_of,
    claim,
    csrf,
    latest_state,
    ready_claimant,
    services_of,
    signed_in_agent,
    task_of,
    w,
    world,
)
from tests.workflows.conftest import open_rules
from tests.workflows.helpers import eventually, start, task_in
from web import create_app
from web.twilio_signature import public_url, sign
from web.voice import RECORDING_NOTICE, SimulatedVoice, child_sid

__all__ = ["w", "world"]  # fixtures, imported for pytest

TWILIO = {
    "twilio_account_sid": "AC" + "1" * 32,
    "twilio_auth_token": SecretStr("twilio-auth-token-for-tests"),
    "twilio_api_key_sid": "SK" + "2" * 32,
    "twilio_api_key_secret": SecretStr("api-key-secret-for-tests"),
    "twilio_twiml_app_sid": "AP" + "3" * 32,
}


async def _phone_of(w: World, user_id: int) -> str:
    async with w.replica.connect() as conn:
        number = await conn.scalar(
            select(replica.users.c.phone_number).where(replica.users.c.id == user_id)
        )
    return str(number)


async def _call_row(w: World, call_id: int) -> Any:
    async with w.dialler.connect() as conn:
        return (await conn.execute(select(db.calls).where(db.calls.c.id == call_id))).one()


async def _webhook(
    app: Quart, settings: Settings, path: str, params: dict[str, str], *, signed: bool = True
) -> Any:
    url = public_url(settings, path)
    headers = {"X-Twilio-Signature": sign(settings, url, params)} if signed else {}
    return await app.test_client().post(path, form=params, headers=headers)


async def _placed_call(w: World) -> tuple[Any, int, Any]:
    """An agent holding a claimant, with a simulated call to them ringing."""
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    response = await agent.post(f"/console/claimants/{user_id}/call")
    assert response.status_code == 200, await agent.text(response)
    [call] = await calls_of(w, user_id)
    return agent, user_id, call


# --- the simulated provider, end to end -----------------------------------------------------------


async def test_simulated_call_answered_recorded_and_dispositioned(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    number = await _phone_of(w, user_id)
    assert call.provider == "simulated"
    assert (call.to_number, call.phone_key) == (number, phone_key(number))
    assert (call.agent_id, call.queue, call.status) == (agent.staff.id, "unsigned", "ringing")
    assert call.task_id is not None and call.provider_call_sid.startswith("CA")
    assert (await latest_state(w, agent.staff.id)).state == "on_call"

    answered = await agent.post(f"/console/calls/{call.id}/simulate", {"action": "answer"})
    page = await agent.text(answered)
    assert answered.status_code == 200 and 'id="softphone-status"' in page
    assert "Connected" in page and 'id="sim-hangup"' in page
    row = await _call_row(w, call.id)
    assert row.status == "in-progress" and row.answered_at is not None
    assert row.recording_notice_played  # the claimant heard the notice on answering

    hung_up = await agent.post(f"/console/calls/{call.id}/simulate", {"action": "hangup"})
    assert "Call ended" in await agent.text(hung_up)
    row = await _call_row(w, call.id)
    assert row.status == "completed" and row.ended_at is not None
    assert row.duration_seconds is not None and row.duration_seconds >= 0
    assert row.recording_sid.startswith("RE") and row.recording_url
    assert not row.abandoned and row.agent_seconds  # an agent talked to the claimant

    saved = await agent.post(
        f"/console/claimants/{user_id}/outcome", {"disposition": "promised_to_sign"}
    )
    assert saved.status_code == 200, await agent.text(saved)
    [only] = await calls_of(w, user_id)  # the outcome lands on the call, not a new row
    assert only.id == call.id and only.disposition == "promised_to_sign"
    assert (await latest_state(w, agent.staff.id)).state == "wrap_up"


async def test_simulated_no_answer_and_busy(w: World) -> None:
    for action, status in (("no-answer", "no-answer"), ("busy", "busy")):
        agent, user_id, call = await _placed_call(w)
        response = await agent.post(f"/console/calls/{call.id}/simulate", {"action": action})
        assert response.status_code == 200
        row = await _call_row(w, call.id)
        assert row.status == status and row.answered_at is None and row.ended_at is not None
        assert not row.recording_notice_played and row.recording_sid is None
        await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"})


async def test_calling_twice_gives_the_same_call(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    again = await agent.post(f"/console/claimants/{user_id}/call")
    assert again.status_code == 200
    assert f'data-call-id="{call.id}"' in await agent.text(again)
    assert len(await calls_of(w, user_id)) == 1


async def test_no_call_outside_the_calling_window(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    deps = services_of(w.app)
    rules = deps.rules()
    closed = open_rules()
    windows = closed.calling_windows
    from datetime import UTC, datetime

    today = datetime.now(UTC).astimezone(windows.zone).date()
    tomorrow = today + timedelta(days=1)
    deps.use_rules(closed.model_copy(update={
        "calling_windows": windows.model_copy(update={"bank_holidays": [today, tomorrow]})
    }))  # fmt: skip
    try:
        response = await agent.post(f"/console/claimants/{user_id}/call")
    finally:
        deps.use_rules(rules)
    page = await agent.text(response)
    assert response.status_code == 422
    assert "No calls now: calling window closed" in page and 'id="call-button"' in page
    assert await calls_of(w, user_id) == []


# --- TwiML and webhooks ---------------------------------------------------------------------------


async def _bare_call(w: World, agent_id: int, number: str = "+447700900555") -> int:
    async with w.dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=4242, agent_id=agent_id, provider="twilio", to_number=number,
                    phone_key=phone_key(number), status="initiated")
            .returning(db.calls.c.id)
        )  # fmt: skip
    return int(call_id or 0)


async def test_voice_twiml_dials_the_number_on_record_with_recording_and_notice(w: World) -> None:
    staff = await make_staff(w.dialler)
    call_id = await _bare_call(w, staff.id)
    params = {"CallSid": "CA" + "a" * 32, "From": f"client:agent-{staff.id}", "To": "",
              "callId": str(call_id), "AccountSid": "AC" + "0" * 32}  # fmt: skip
    response = await _webhook(w.app, w.settings, "/webhooks/twilio/voice", params)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    twiml = ET.fromstring(await response.get_data(as_text=True))  # noqa: S314
    dial = twiml.find("Dial")
    assert dial is not None and dial.get("record") == "record-from-answer-dual"
    assert dial.get("recordingStatusCallback", "").endswith(
        f"/webhooks/twilio/recording?call_id={call_id}"
    )
    number = dial.find("Number")
    assert number is not None and number.text == "+447700900555"  # from the row, not the browser
    assert number.get("url", "").endswith(f"/webhooks/twilio/voice/notice?call_id={call_id}")
    assert number.get("statusCallback", "").endswith(
        f"/webhooks/twilio/call-status?call_id={call_id}"
    )
    assert "answered" in number.get("statusCallbackEvent", "")

    notice = await _webhook(
        w.app, w.settings, f"/webhooks/twilio/voice/notice?call_id={call_id}",
        {"CallSid": child_sid(params["CallSid"]), "ParentCallSid": params["CallSid"]},
    )  # fmt: skip
    said = ET.fromstring(await notice.get_data(as_text=True))  # noqa: S314
    say = said.find("Say")
    assert say is not None and say.text == RECORDING_NOTICE
    assert "This call is recorded" in RECORDING_NOTICE
    row = await _call_row(w, call_id)
    assert row.recording_notice_played and row.provider_call_sid == params["CallSid"]

    # Twilio retrying the same request gets the same TwiML; another connection is refused
    retried = await _webhook(w.app, w.settings, "/webhooks/twilio/voice", params)
    assert b"<Dial" in await retried.get_data()
    other = await _webhook(w.app, w.settings, "/webhooks/twilio/voice",
                           params | {"CallSid": "CA" + "b" * 32})  # fmt: skip
    refused = await other.get_data(as_text=True)
    assert "<Hangup" in refused and "<Dial" not in refused


async def test_voice_webhook_refuses_another_agents_call(w: World) -> None:
    staff = await make_staff(w.dialler)
    call_id = await _bare_call(w, staff.id)
    params = {"CallSid": "CA" + "c" * 32, "From": "client:agent-999999", "callId": str(call_id)}
    body = await (await _webhook(w.app, w.settings, "/webhooks/twilio/voice", params)).get_data(
        as_text=True
    )
    assert "<Hangup" in body and "<Dial" not in body
    assert (await _call_row(w, call_id)).provider_call_sid is None

    async with w.dialler.begin() as conn:
        await conn.execute(
            db.calls.update().where(db.calls.c.id == call_id).values(status="completed")
        )
    mine = params | {"From": f"client:agent-{staff.id}"}
    ended = await _webhook(w.app, w.settings, "/webhooks/twilio/voice", mine)
    assert "<Dial" not in await ended.get_data(as_text=True)  # an ended call is never redialled


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/twilio/voice",
        "/webhooks/twilio/voice/notice?call_id=1",
        "/webhooks/twilio/call-status?call_id=1",
        "/webhooks/twilio/recording?call_id=1",
    ],
)
async def test_unsigned_or_forged_webhooks_are_403(w: World, path: str) -> None:
    params = {"CallSid": "CA" + "d" * 32, "CallStatus": "completed", "callId": "1"}
    unsigned = await _webhook(w.app, w.settings, path, params, signed=False)
    assert unsigned.status_code == 403
    assert (await unsigned.get_json())["error"]["code"] == "bad_signature"
    url = public_url(w.settings, path)
    forged = await w.app.test_client().post(
        path, form=params | {"CallStatus": "in-progress"},
        headers={"X-Twilio-Signature": sign(w.settings, url, params)},
    )  # fmt: skip
    assert forged.status_code == 403
    other_url = await w.app.test_client().post(
        path, form=params,
        headers={"X-Twilio-Signature": sign(w.settings, url + "&call_id=2", params)},
    )  # fmt: skip
    assert other_url.status_code == 403


async def test_a_duplicate_status_callback_is_applied_once(w: World) -> None:
    agent, _, call = await _placed_call(w)
    parent = call.provider_call_sid
    path = f"/webhooks/twilio/call-status?call_id={call.id}"
    base = {"CallSid": child_sid(parent), "ParentCallSid": parent}
    await _webhook(w.app, w.settings, path, base | {"CallStatus": "in-progress",
                   "Timestamp": "Mon, 02 Mar 2026 10:00:00 +0000"})  # fmt: skip
    bus = services_of(w.app).live()
    async with bus.subscribe([channel_for_agent(agent.staff.id)]) as events:
        completed = base | {"CallStatus": "completed", "CallDuration": "95",
                            "Timestamp": "Mon, 02 Mar 2026 10:01:35 +0000"}  # fmt: skip
        first = await _webhook(w.app, w.settings, path, completed)
        second = await _webhook(w.app, w.settings, path, completed | {
            "CallDuration": "300", "Timestamp": "Mon, 02 Mar 2026 10:05:00 +0000"})  # fmt: skip
        late = await _webhook(w.app, w.settings, path, base | {"CallStatus": "ringing"})
        heard = [await events.next(1.0) for _ in range(2)]
    assert first.status_code == second.status_code == late.status_code == 204
    row = await _call_row(w, call.id)
    assert row.status == "completed" and row.duration_seconds == 95
    assert row.answered_at.isoformat() == "2026-03-02T10:00:00+00:00"
    assert row.ended_at.isoformat() == "2026-03-02T10:01:35+00:00"
    events_heard = [e for e in heard if e is not None]
    assert len(events_heard) == 1  # one call-status event: the duplicate changed nothing
    assert events_heard[0].name == "call-status" and events_heard[0].data["status"] == "completed"


async def test_a_recording_is_stored_once(w: World) -> None:
    staff = await make_staff(w.dialler)
    call_id = await _bare_call(w, staff.id)
    path = f"/webhooks/twilio/recording?call_id={call_id}"
    first = {"CallSid": "CA" + "e" * 32, "RecordingSid": "RE" + "1" * 32,
             "RecordingUrl": "https://api.twilio.com/rec/1", "RecordingStatus": "completed",
             "RecordingDuration": "61"}  # fmt: skip
    assert (await _webhook(w.app, w.settings, path, first)).status_code == 204
    assert (await _webhook(w.app, w.settings, path, first)).status_code == 204
    other = first | {"RecordingSid": "RE" + "2" * 32, "RecordingUrl": "https://x/2"}
    assert (await _webhook(w.app, w.settings, path, other)).status_code == 204
    row = await _call_row(w, call_id)
    assert (row.recording_sid, row.recording_duration_seconds) == (first["RecordingSid"], 61)


# --- access ---------------------------------------------------------------------------------------


async def test_calls_need_the_agent_role_csrf_and_ownership(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    missing = await agent.client.post(f"/console/claimants/{user_id}/call", headers=HTMX)
    assert missing.status_code == 403
    no_csrf = await agent.client.post(
        f"/console/calls/{call.id}/simulate", form={"action": "answer"}, headers=HTMX
    )
    assert no_csrf.status_code == 403
    supervisor = await signed_in_agent(w, queue=None, role=AgentRole.SUPERVISOR)
    assert (await supervisor.post(f"/console/claimants/{user_id}/call")).status_code == 403
    assert (await supervisor.get("/console/calls/token")).status_code == 403
    other = await signed_in_agent(w)
    stolen = await other.post(f"/console/calls/{call.id}/simulate", {"action": "answer"})
    assert stolen.status_code == 404
    assert (await _call_row(w, call.id)).status == "ringing"
    bad = await agent.post(f"/console/calls/{call.id}/simulate", {"action": "explode"})
    assert bad.status_code == 422


async def test_no_token_without_twilio(w: World) -> None:
    agent = await signed_in_agent(w)
    response = await agent.get("/console/calls/token")
    assert response.status_code == 404
    assert (await response.get_json())["error"]["code"] == "simulated_provider"


@pytest.fixture
async def twilio_app(w: World) -> AsyncIterator[Quart]:
    app = create_app(w.settings.model_copy(update=TWILIO))
    services_of(app).use_rules(open_rules())
    async with app.test_app():
        yield app


async def test_with_twilio_the_page_loads_the_sdk_and_gets_a_voice_token(
    w: World, twilio_app: Quart
) -> None:
    staff = await make_staff(w.dialler)
    client = twilio_app.test_client()
    assert await sign_in(client, staff) == 303
    page = await (await client.get("/console")).get_data(as_text=True)
    assert '<script src="/vendor/twilio.min.js" defer></script>' in page
    response = await client.get("/console/calls/token")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["identity"] == f"agent-{staff.id}"
    claims = jwt.decode(body["token"], "api-key-secret-for-tests", algorithms=["HS256"],
                        options={"verify_aud": False})  # fmt: skip
    assert claims["iss"] == TWILIO["twilio_api_key_sid"] and claims["sub"] == TWILIO[
        "twilio_account_sid"]  # fmt: skip
    voice = claims["grants"]["voice"]
    assert voice["outgoing"]["application_sid"] == TWILIO["twilio_twiml_app_sid"]
    assert claims["grants"]["identity"] == f"agent-{staff.id}"
    # with Twilio, webhooks are checked against the auth token, and there is no simulator
    token = await csrf(client)
    simulate = await client.post("/console/calls/1/simulate", form={"action": "answer"},
                                 headers=HTMX | {"X-CSRF-Token": token})  # fmt: skip
    assert simulate.status_code == 404
    settings = services_of(twilio_app).settings
    call_id = await _bare_call(w, staff.id)
    params = {
        "CallSid": "CA" + "f" * 32,
        "From": f"client:agent-{staff.id}",
        "callId": str(call_id),
    }
    signed = await _webhook(twilio_app, settings, "/webhooks/twilio/voice", params)
    assert b"<Dial" in await signed.get_data()
    by_simulator_key = await _webhook(twilio_app, w.settings, "/webhooks/twilio/voice", params)
    assert by_simulator_key.status_code == 403


async def test_twilio_call_creates_the_row_and_lets_the_browser_connect(
    w: World, twilio_app: Quart
) -> None:
    user_id = await ready_claimant(w)
    staff = await make_staff(w.dialler)
    client = twilio_app.test_client()
    assert await sign_in(client, staff) == 303
    token = await csrf(client)
    headers = HTMX | {"X-CSRF-Token": token}
    await client.post("/console/state", form={"state": "ready"}, headers=headers)
    claimed = await client.post("/console/next", headers=headers)
    assert f'data-user-id="{user_id}"' in await claimed.get_data(as_text=True)
    response = await client.post(f"/console/claimants/{user_id}/call", headers=headers)
    page = await response.get_data(as_text=True)
    [call] = await calls_of(w, user_id)
    assert call.provider == "twilio" and call.status == "initiated"
    assert f'data-call-id="{call.id}"' in page and 'data-autoconnect="true"' in page
    assert 'id="twilio-hangup"' in page and "sim-answer" not in page
    # the browser never connected (say the microphone was refused): Call again retries it
    again = await client.post(f"/console/claimants/{user_id}/call", headers=headers)
    retried = await again.get_data(as_text=True)
    assert f'data-call-id="{call.id}"' in retried and 'data-autoconnect="true"' in retried
    assert len(await calls_of(w, user_id)) == 1
    release = await client.post(f"/console/claimants/{user_id}/release", headers=headers)
    assert release.status_code == 200
    await asyncio.sleep(0)


# --- abandoned calls (domain.abandoned_calls), from signed call-status callbacks ---------------


def _at(seconds: int) -> str:
    return format_datetime(datetime(2026, 3, 2, 10, 0, tzinfo=UTC) + timedelta(seconds=seconds))


async def _claimant_leg(w: World, call: Any, status: str, at: int, **extra: str) -> None:
    params = {
        "CallSid": child_sid(call.provider_call_sid),
        "ParentCallSid": call.provider_call_sid,
        "CallStatus": status,
        "Direction": "outbound-dial",
        "Timestamp": _at(at),
    } | extra
    path = f"/webhooks/twilio/call-status?call_id={call.id}"
    assert (await _webhook(w.app, w.settings, path, params)).status_code == 204  # fmt: skip


async def _agent_leg_ends(w: World, call: Any, at: int, bridged: int) -> None:
    """The agent's leg's final callback, as the TwiML App's status callback sends it: no
    call id in the URL, the leg's own CallSid, no parent."""
    params = {"CallSid": call.provider_call_sid, "CallStatus": "completed", "Direction": "inbound",
              "CallDuration": str(bridged), "Timestamp": _at(at)}  # fmt: skip
    response = await _webhook(w.app, w.settings, "/webhooks/twilio/call-status", params)
    assert response.status_code == 204


async def test_a_call_the_dialler_hangs_up_on_is_abandoned_and_locks_the_number(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    await _claimant_leg(w, call, "in-progress", 0, AnsweredBy="human")
    # the agent's browser drops during the recording notice: never bridged, and Twilio
    # hangs up on the claimant, who had answered
    await _agent_leg_ends(w, call, 5, bridged=0)
    await _claimant_leg(w, call, "completed", 5, CallDuration="5")

    row = await _call_row(w, call.id)
    assert row.abandoned and row.agent_seconds == 0 and row.answered_by == "human"
    async with w.dialler.connect() as conn:
        audit = (
            await conn.execute(
                select(db.audit_log.c.detail).where(
                    db.audit_log.c.action == "call_abandoned",
                    db.audit_log.c.subject_id == str(call.id),
                )
            )
        ).one()
    assert audit.detail["reason"] == "the dialler hung up on the answered call"

    saved = await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"})
    assert saved.status_code == 200, await agent.text(saved)
    assert (await _call_row(w, call.id)).abandoned  # the outcome keeps the mark
    task = await eventually(
        lambda: task_of(w, user_id), lambda t: "abandoned" in t.not_before_reason
    )
    assert "72-hour lock" in task.not_before_reason
    assert task.not_before > datetime.now(UTC) + timedelta(hours=71)

    # the lock is on the number: another claimant sharing it waits too
    housemate = await add_claimant(w.replica, signed=False, pending=1, phone=call.to_number)
    await start(w.harness, housemate)
    shared = await task_in(w.harness, housemate, "unsigned")
    assert shared.not_before_reason.startswith("abandoned call: 72-hour lock"), shared


async def test_no_agent_on_the_line_within_two_seconds_is_abandoned(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    await _claimant_leg(w, call, "in-progress", 0)
    await _agent_leg_ends(w, call, 1, bridged=0)
    assert (await _call_row(w, call.id)).abandoned
    await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"})


@pytest.mark.parametrize(
    "story", ["claimant hangs up during the notice", "answered by a machine", "talked"]
)
async def test_calls_that_are_not_abandoned(w: World, story: str) -> None:
    agent, user_id, call = await _placed_call(w)
    if story == "claimant hangs up during the notice":
        await _claimant_leg(w, call, "in-progress", 0)
        await _claimant_leg(w, call, "completed", 4, CallDuration="4")
        await _agent_leg_ends(w, call, 4, bridged=0)
    elif story == "answered by a machine":
        await _claimant_leg(w, call, "in-progress", 0, AnsweredBy="machine_start")
        await _agent_leg_ends(w, call, 5, bridged=0)
        await _claimant_leg(w, call, "completed", 5, CallDuration="5")
    else:
        await _claimant_leg(w, call, "in-progress", 0)
        await _agent_leg_ends(w, call, 95, bridged=88)
        await _claimant_leg(w, call, "completed", 95, CallDuration="95")
    assert not (await _call_row(w, call.id)).abandoned
    await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"})


async def test_a_simulated_call_dropped_by_the_dialler_is_abandoned(w: World) -> None:
    agent, user_id, call = await _placed_call(w)
    await agent.post(f"/console/calls/{call.id}/simulate", {"action": "answer"})
    await SimulatedVoice(w.app, w.settings).drop(call.id, call.provider_call_sid)
    assert (await _call_row(w, call.id)).abandoned
    await agent.post(f"/console/claimants/{user_id}/outcome", {"disposition": "no_answer"})
