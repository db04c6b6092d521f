"""Input at the edge: every input that once reached a 500 is now a 4xx with the one error
shape (`{"error": {"code", "message", "fields"?}}`), or for Twilio's webhooks the 2xx Twilio
expects. Identifiers too large for the database's integer (paths, `page=`, a webhook's
`call_id`), NUL and other control characters in form and JSON fields, deeply nested and
oversized JSON bodies, and JSON that is not UTF-8."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import insert, select

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.web.conftest import make_staff
from tests.web.sms_fixtures import (
    Client,
    World,
    caller,
    inbound_params,
    page_csrf,
    post_signed,
    signed_in,
    world,
)
from web.input_guard import MAX_JSON_DEPTH, json_depth

__all__ = ["world"]  # the module's fixture

TOO_BIG = str(2**63)  # one more than PostgreSQL's bigint holds
HUGE = "9" * 40
JSON = {"Content-Type": "application/json"}


async def error_of(response: Any) -> dict[str, Any]:
    body = await response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), error
    assert set(error) <= {"code", "message", "fields"}, error
    return dict(error)


# --- identifiers bounded to the database's integer -------------------------------------------


@pytest.mark.parametrize("raw", [TOO_BIG, HUGE])
@pytest.mark.parametrize("role", [AgentRole.AGENT, AgentRole.SUPERVISOR])
async def test_api_ids_too_large_for_the_database_are_404(
    world: World, raw: str, role: AgentRole
) -> None:
    c = await caller(world, "bearer", role, Queue.UNSIGNED if role is AgentRole.AGENT else None)
    for response in (
        await c.get(f"/api/claimants/{raw}"),
        await c.post(f"/api/claimants/{raw}/release", {}),
        await c.post(f"/api/claimants/{raw}/sms", {"body": "Hello"}),
        await c.post(f"/api/claimants/{raw}/magic-link", {"purpose": "signature"}),
        await c.post(f"/api/claimants/{raw}/outcome", {"disposition": "no_answer"}),
        await c.post(f"/api/claimants/{raw}/consents", {"channel": "sms"}),
        await c.get(f"/calls/{raw}/recording"),
    ):
        assert response.status_code == 404, await response.get_data(as_text=True)
        assert (await error_of(response))["code"] == "not_found"


async def test_the_largest_id_the_database_holds_is_still_looked_up(world: World) -> None:
    c = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    response = await c.get(f"/api/claimants/{2**63 - 1}")
    assert response.status_code == 404
    assert (await error_of(response))["message"] == "No such claimant."


@pytest.mark.parametrize("raw", [TOO_BIG, HUGE])
async def test_page_ids_too_large_for_the_database_are_404(world: World, raw: str) -> None:
    person = await signed_in(world, AgentRole.SUPERVISOR, None)
    for path in (f"/sms/{raw}", f"/console/claimants/{raw}"):
        response = await person.get(path)
        assert response.status_code == 404, (path, await response.get_data(as_text=True))
    for path in (f"/sms/{raw}/reply", f"/sms/{raw}/magic-link"):
        response = await person.post(path, {"body": "Hi", "purpose": "signature"})
        assert response.status_code == 404, (path, await response.get_data(as_text=True))


async def test_a_page_number_past_the_database_is_404(world: World) -> None:
    person = await signed_in(world, AgentRole.SUPERVISOR, None)
    assert (await person.get("/sms?page=2")).status_code == 200
    for raw in (TOO_BIG, HUGE, str(2**62)):
        response = await person.get(f"/sms?page={raw}")
        assert response.status_code == 404, (raw, await response.get_data(as_text=True))
        assert response.mimetype == "text/html"  # a page for the browser, in the one wording
        assert "Nothing was saved" in await response.get_data(as_text=True)


# --- control characters -----------------------------------------------------------------------


async def test_a_nul_in_the_sign_in_email_is_a_400_naming_the_field(world: World) -> None:
    staff = await make_staff(world.dialler)
    client = Client(world.app)
    token = await page_csrf(client, "/login")
    response = await client.post(
        "/login",
        form={"email": staff.email + "\x00", "password": "whatever", "csrf_token": token},
    )
    assert response.status_code == 400
    assert set((await error_of(response))["fields"]) == {"email"}


async def test_a_browser_posting_the_sign_in_form_gets_a_page_not_json(world: World) -> None:
    """A person's browser is shown what went wrong, which field, and a way back to the form:
    never a raw JSON body."""
    staff = await make_staff(world.dialler)
    client = Client(world.app)
    token = await page_csrf(client, "/login")
    response = await client.raw.post(
        "/login",
        form={"email": staff.email + "\x00", "password": "whatever", "csrf_token": token},
        headers={
            "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
            "Referer": "http://localhost/login?next=/sms",
        },
    )
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    page = await response.get_data(as_text=True)
    assert 'id="error-fields"' in page and "<strong>email</strong>" in page
    assert 'href="/login?next=/sms"' in page  # back to the form it came from


async def test_a_browser_is_never_sent_back_off_site(world: World) -> None:
    client = Client(world.app)
    response = await client.raw.get(
        "/sms/" + "9" * 30,
        headers={"Accept": "text/html", "Referer": "https://evil.example/phish"},
    )
    assert response.status_code in (302, 303, 404)
    if response.status_code == 404:
        assert "evil.example" not in await response.get_data(as_text=True)


async def test_a_nul_in_the_token_request_is_a_400_naming_the_field(world: World) -> None:
    client = Client(world.app)
    response = await client.post(
        "/api/auth/token", json={"email": "a\x00@b.example", "password": "x"}
    )
    assert response.status_code == 400
    assert set((await error_of(response))["fields"]) == {"email"}


@pytest.mark.parametrize("reason", ["coffee\x00", "coffee\x1b[2J", "\x7f", "ok\ud800"])
async def test_control_characters_in_a_json_pause_reason_are_a_400(
    world: World, reason: str
) -> None:
    c = await caller(world, "bearer")
    response = await c.put("/api/agents/me/state", {"state": "paused", "reason": reason})
    assert response.status_code == 400, await response.get_data(as_text=True)
    assert set((await error_of(response))["fields"]) == {"reason"}


async def test_a_nul_in_the_console_pause_reason_is_a_400(world: World) -> None:
    person = await signed_in(world)
    response = await person.post("/console/state", {"state": "paused", "reason": "tea\x00"})
    assert response.status_code == 400
    assert set((await error_of(response))["fields"]) == {"reason"}


async def test_tabs_and_new_lines_are_free_text(world: World) -> None:
    c = await caller(world, "bearer")
    response = await c.put(
        "/api/agents/me/state", {"state": "paused", "reason": "tea\tbreak\r\nback soon"}
    )
    assert response.status_code == 200, await response.get_data(as_text=True)


async def test_control_characters_in_a_query_or_a_json_key_are_a_400(world: World) -> None:
    person = await signed_in(world, AgentRole.SUPERVISOR, None)
    response = await person.get("/sms?template=%00")
    assert response.status_code == 400
    assert "<strong>template</strong>" in await response.get_data(as_text=True)
    response = await person.client.get("/sms?template=%00", headers={"Accept": "application/json"})
    assert set((await error_of(response))["fields"]) == {"template"}
    c = await caller(world, "bearer")
    response = await c.put("/api/agents/me/state", {"state": "paused", "reason": "x", "a\x00": 1})
    assert response.status_code == 400


# --- JSON bodies ------------------------------------------------------------------------------


async def test_a_deeply_nested_json_body_is_a_400(world: World) -> None:
    c = await caller(world, "bearer")
    for path in ("/api/queue/next", "/api/claimants/1/release", "/api/claimants/1/consents"):
        # deep enough to exhaust Python's parser, small enough to pass the size limit
        for raw in ("[" * 20_000 + "]" * 20_000, '{"a":' * 5_000 + "1" + "}" * 5_000):
            response = await c.client.post(path, data=raw, headers=JSON | c.headers())
            assert response.status_code == 400, (path, await response.get_data(as_text=True))
            assert (await error_of(response))["code"] == "invalid_json"


async def test_json_that_is_not_utf8_is_a_400(world: World) -> None:
    c = await caller(world, "bearer")
    for path, raw in (
        ("/api/queue/next", b'{"queue": "unsigned\xff"}'),
        ("/api/claimants/1/release", b'{"reason": "\xc3\x28"}'),
        ("/api/claimants/1/sms", b'{"body": "caf\xe9"}'),
        ("/api/agents/me/state", b"\xff\xfe{}"),
    ):
        kwargs = {"data": raw, "headers": JSON | c.headers()}
        send = c.client.put if path.endswith("state") else c.client.post
        response = await send(path, **kwargs)
        assert response.status_code == 400, (path, await response.get_data(as_text=True))
        assert (await error_of(response))["code"] == "invalid_json"


async def test_a_json_body_over_the_limit_is_a_413(world: World) -> None:
    c = await caller(world, "bearer")
    response = await c.post("/api/claimants/1/sms", {"body": "x" * 100_000})
    assert response.status_code == 413
    assert (await error_of(response))["code"] == "payload_too_large"


async def test_malformed_json_is_a_400_in_the_one_shape(world: World) -> None:
    c = await caller(world, "bearer")
    response = await c.client.post(
        "/api/claimants/1/release", data="{not json", headers=JSON | c.headers()
    )
    assert response.status_code == 400
    assert (await error_of(response))["code"] == "invalid_json"
    number = await c.client.post(
        "/api/claimants/1/release",
        data='{"reason": ' + "9" * 5000 + "}",
        headers=JSON | c.headers(),
    )
    assert number.status_code == 400


async def test_an_outcome_call_id_too_large_for_the_database_is_a_400(world: World) -> None:
    c = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    response = await c.post(
        "/api/claimants/1/outcome", {"disposition": "no_answer", "call_id": 2**63}
    )
    assert response.status_code == 400
    assert set((await error_of(response))["fields"]) == {"call_id"}


# --- signed webhooks --------------------------------------------------------------------------


async def _a_call(world: World) -> int:
    agent = await make_staff(world.dialler)
    async with world.dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(
                user_id=1,
                agent_id=agent.id,
                provider="simulated",
                provider_call_sid="CA" + "7" * 32,
                to_number="+447700900123",
                status="ringing",
            )
            .returning(db.calls.c.id)
        )
    return int(call_id or 0)


@pytest.mark.parametrize("raw", [TOO_BIG, HUGE, "\u00b2", "-1"])
async def test_call_webhooks_with_an_unusable_call_id_answer_as_twilio_expects(
    world: World, raw: str
) -> None:
    query = f"?call_id={quote(raw)}"
    status = await post_signed(
        world,
        "/webhooks/twilio/call-status" + query,
        {"CallSid": "CA" + "1" * 32, "CallStatus": "completed", "CallDuration": "3"},
    )
    assert status.status_code == 204
    recording = await post_signed(
        world,
        "/webhooks/twilio/recording" + query,
        {"CallSid": "CA" + "1" * 32, "RecordingSid": "RE" + "1" * 32},
    )
    assert recording.status_code == 204
    notice = await post_signed(world, "/webhooks/twilio/voice/notice" + query, {"CallSid": "x"})
    assert notice.status_code == 200
    voice = await post_signed(
        world, "/webhooks/twilio/voice", {"CallSid": "CA" + "1" * 32, "callId": raw}
    )
    assert voice.status_code == 200
    assert "<Hangup" in await voice.get_data(as_text=True)


async def test_a_call_duration_too_large_for_the_database_is_capped(world: World) -> None:
    call_id = await _a_call(world)
    for field, value in (("CallDuration", HUGE), ("RecordingDuration", HUGE)):
        path = (
            "/webhooks/twilio/call-status"
            if field == "CallDuration"
            else ("/webhooks/twilio/recording")
        )
        params = {
            "CallSid": "CA" + "8" * 32,
            "ParentCallSid": "CA" + "7" * 32,
            "CallStatus": "completed",
            "RecordingSid": "RE" + "8" * 32,
            field: value,
        }
        response = await post_signed(world, f"{path}?call_id={call_id}", params)
        assert response.status_code == 204, await response.get_data(as_text=True)
    async with world.dialler.connect() as conn:
        row = (await conn.execute(select(db.calls).where(db.calls.c.id == call_id))).one()
    assert row.status == "completed"
    assert row.duration_seconds is None or row.duration_seconds < 2**31
    assert row.recording_sid == "RE" + "8" * 32


async def test_control_characters_in_a_signed_inbound_sms_are_kept_not_refused(
    world: World,
) -> None:
    """Twilio expects a 200; the claimant's message is stored with U+FFFD in their place."""
    number = "+447700911777"
    response = await post_signed(
        world, "/webhooks/twilio/sms-inbound", inbound_params(number, "hi\x00 there\x1b")
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    async with world.dialler.connect() as conn:
        bodies = (
            await conn.scalars(
                select(db.sms_messages.c.body).where(db.sms_messages.c.from_number == number)
            )
        ).all()
    assert bodies == ["hi\ufffd there\ufffd"]
    unsigned = await post_signed(
        world, "/webhooks/twilio/sms-inbound", inbound_params(number, "x\x00"), signature=""
    )
    assert unsigned.status_code == 403


async def test_a_missing_webhook_field_is_named_in_the_one_shape(world: World) -> None:
    params = {"From": "+447700911006", "Body": "no sid"}
    response = await post_signed(world, "/webhooks/twilio/sms-inbound", params)
    assert response.status_code == 400
    assert set((await error_of(response))["fields"]) == {"MessageSid"}


# --- the depth measure itself -------------------------------------------------------------------


def test_json_depth_ignores_brackets_inside_strings() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert json_depth(deep) > MAX_JSON_DEPTH
    in_string = '{"a": "' + "[{" * 100 + '", "b": "\\"' + "[" * 100 + '"}'
    assert json_depth(in_string) <= MAX_JSON_DEPTH
    escaped_quote = '["\\"' + "[" * 100 + '"]'  # \" does not end the string
    assert json_depth(escaped_quote) <= MAX_JSON_DEPTH


async def test_a_nul_or_an_unknown_channel_in_a_consent_is_a_400(world: World) -> None:
    c = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    for payload in ({"channel": "sms\x00"}, {"channel": "x" * 100_000}, {"channel": 10**40}, {}):
        response = await c.post("/api/claimants/1/consents", payload)
        assert response.status_code in (400, 413), await response.get_data(as_text=True)
