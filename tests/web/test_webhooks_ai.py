"""The AI's voice webhooks and the inbound-SMS routing to the AI, over HTTP with correctly
signed Twilio requests, against the real AI contact workflow on an AI worker (the real
activities, the scripted fake model behind the real `openai` client, simulated telephony):
forged requests are refused; a person hears the recorded-call notice and the automated
assistant at once (no model call), then each thing they say is answered by the model and
listened to again; an answering machine gets what the rules say; unknown or ended
conversations, Temporal away and hostile input end the call politely, never with a 500."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from quart import Quart
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters import ai_conversations, sms_outbox
from config.settings import Settings
from domain.ai_conversation import GOODBYE, HANDOFF_LINE, MACHINE_MESSAGE, SORRY_LINE
from schemas import dialler_db as db
from schemas.ai import AiChannel, AiContactInput
from schemas.enums import Queue
from tests.factories import add_claimant
from tests.fake_openai import FakeModel, fake_openai
from tests.web.sms_fixtures import Client
from tests.workflows.ai_stack import AiStack, ai_stack
from tests.workflows.conftest import scratch_databases
from tests.workflows.helpers import eventually
from web import create_app
from web.blueprints.webhooks_ai import (
    ANSWER_PATH,
    MAX_SPEECH_CHARS,
    STATUS_PATH,
    TROUBLE_LINE,
    TURN_PATH,
)
from web.services import EXTENSION_KEY, WebServices
from web.twilio_signature import public_url, sign
from workflows.ai_contact import AiContactWorkflow
from workflows.ai_contact_client import triage_workflow_id

VOICE_CONSENTS = ("live_call", "automated_call", "sms")
SMS_INBOUND = "/webhooks/twilio/sms-inbound"
ACCOUNT = "AC" + "0" * 32


@dataclass
class World:
    stack: AiStack
    app: Quart
    settings: Settings  # the app's

    @property
    def model(self) -> FakeModel:
        return self.stack.model

    @property
    def services(self) -> WebServices:
        deps = self.app.extensions[EXTENSION_KEY]
        assert isinstance(deps, WebServices)
        return deps

    async def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        signature: str | None = None,
        app: Quart | None = None,
    ) -> Any:
        """POST as Twilio does, signed for the public URL (or with `signature`; "" sends
        none)."""
        if signature is None:
            signature = sign(self.settings, public_url(self.settings, path), params)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return await Client(app or self.app).post(path, form=params, headers=headers)


def _url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def app_settings(
    stack: AiStack, dialler: AsyncEngine, replica: AsyncEngine, **values: Any
) -> Settings:
    return stack.settings.model_copy(
        update={
            "database_url": _url(dialler),
            "replica_database_url": _url(replica),
            "temporal_task_queue": stack.h.task_queue,
            **values,
        }
    )


@pytest.fixture(scope="module")
async def world(temporal_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[World]:
    with fake_openai() as model:
        async with (
            scratch_databases("webhooks_ai") as (dialler, replica),
            ai_stack(temporal_env, settings, dialler, replica, model) as stack,
        ):
            configured = app_settings(
                stack,
                dialler,
                replica,
                temporal_address=temporal_env.client.service_client.config.target_host,
            )
            app = create_app(configured)
            async with app.test_app():
                yield World(stack, app, configured)


@pytest.fixture(autouse=True)
def _fresh_script(world: World) -> Iterator[None]:
    world.model.requests.clear()
    yield
    assert world.model.remaining == 0, "the test scripted model replies it never used"


# --- helpers ----------------------------------------------------------------------------------


async def ai_contact(
    world: World, channel: AiChannel = AiChannel.VOICE, **claimant: Any
) -> tuple[int, Any]:
    """A claimant (automated-call consent) and an AI contact with them, started as the
    outreach workflow starts one; the conversation once the call is placed (voice) or the
    opening sent (SMS)."""
    claimant.setdefault("consents", VOICE_CONSENTS)
    user_id = await add_claimant(world.stack.h.replica, signed=True, pending=1, **claimant)
    await world.stack.h.client.start_workflow(
        AiContactWorkflow.run,
        AiContactInput(
            user_id=user_id,
            channel=channel,
            queue=Queue.OUTSTANDING.value,
            ai_agent_id=world.stack.ai_agent_id,
            claim_key=f"test-{uuid.uuid4().hex}",
            outreach_task_queue=world.stack.h.task_queue,
        ),
        id=f"ai-contact-test-{uuid.uuid4().hex[:12]}",
        task_queue=world.stack.ai_task_queue,
    )

    async def live() -> Any:
        async with world.stack.h.dialler.connect() as conn:
            return await ai_conversations.active_conversation(conn, user_id, channel.value)

    def ready(row: Any) -> bool:
        return row is not None and (channel is AiChannel.SMS or row.call_id is not None)

    return user_id, await eventually(live, ready)


def contact(world: World, conversation: Any) -> WorkflowHandle[AiContactWorkflow, Any]:
    return world.stack.contact(conversation.workflow_id)


def twiml(body: str) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 (our own TwiML)


def said(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter("Say")]


def voice_params(**values: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "CallSid": "CA" + uuid.uuid4().hex, **values}


async def answer(world: World, conversation: Any, answered_by: str = "human", **extra: str) -> Any:
    path = f"{ANSWER_PATH}?c={conversation.id}"
    return await world.post(
        path, voice_params(AnsweredBy=answered_by, CallStatus="in-progress", **extra)
    )


async def turn(
    world: World,
    conversation: Any,
    speech: str,
    t: int = 1,
    call_sid: str = "CAturns",
    **query: int,
) -> Any:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    path = f"{TURN_PATH}?c={conversation.id}&t={t}{extra}"
    params = voice_params(SpeechResult=speech, Confidence="0.9") | {"CallSid": call_sid}
    return await world.post(path, params)


async def progress_signals(world: World, conversation: Any) -> list[dict[str, Any]]:
    """The `call_progress` signals the workflow received, as sent."""
    history = await contact(world, conversation).fetch_history()
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name == "call_progress":
            found.append(json.loads(attributes.input.payloads[0].data))
    return found


async def conversation_now(world: World, conversation_id: int) -> Any:
    async with world.stack.h.dialler.connect() as conn:
        return await ai_conversations.conversation_by_id(conn, conversation_id)


async def ended(world: World, conversation: Any) -> Any:
    return await eventually(
        lambda: conversation_now(world, conversation.id), lambda row: row.status != "active"
    )


async def call_row(world: World, call_id: int) -> Any:
    async with world.stack.h.dialler.connect() as conn:
        return (await conn.execute(select(db.calls).where(db.calls.c.id == call_id))).one()


# --- signatures -------------------------------------------------------------------------------


async def test_forged_or_unsigned_requests_are_refused(world: World) -> None:
    _, conversation = await ai_contact(world)
    for base in (ANSWER_PATH, TURN_PATH, STATUS_PATH):
        path = f"{base}?c={conversation.id}"
        params = voice_params(AnsweredBy="human", SpeechResult="hello", CallStatus="completed")
        unsigned = await world.post(path, params, signature="")
        assert unsigned.status_code == 403
        assert (await unsigned.get_json())["error"]["code"] == "bad_signature"
        forged = await world.post(path, params, signature="bm90IGEgc2lnbmF0dXJl")
        assert forged.status_code == 403
        tampered_body = sign(world.settings, public_url(world.settings, path), params)
        changed = params | {"SpeechResult": "record an outcome"}
        assert (await world.post(path, changed, signature=tampered_body)).status_code == 403
        # signed for another conversation's URL
        other_url = public_url(world.settings, f"{base}?c={conversation.id + 1000}")
        other = sign(world.settings, other_url, params)
        assert (await world.post(path, params, signature=other)).status_code == 403
    assert await progress_signals(world, conversation) == []
    assert world.model.requests == []
    await contact(world, conversation).terminate("test over")


# --- the call ---------------------------------------------------------------------------------


async def test_a_person_hears_the_notice_and_the_assistant_at_once_then_is_listened_to(
    world: World,
) -> None:
    _, conversation = await ai_contact(world)
    response = await answer(world, conversation)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = twiml(await response.get_data(as_text=True))
    [opening] = said(root)
    assert "automated assistant" in opening and "recorded" in opening
    assert "Am I speaking with Test?" in opening  # the first name only
    [gather] = root.iter("Gather")
    assert gather.get("input") == "speech" and gather.get("speechTimeout") == "auto"
    assert gather.get("actionOnEmptyResult") == "true"
    action = urlsplit(gather.get("action") or "")
    assert f"{action.scheme}://{action.netloc}" == str(world.settings.public_base_url).rstrip("/")
    assert action.path == TURN_PATH
    assert parse_qs(action.query) == {"c": [str(conversation.id)], "t": ["1"]}
    assert list(root)[-1].tag == "Gather"  # nothing after it: the claimant is listened to
    assert world.model.requests == []  # the opening needs no model call
    signals = await eventually(lambda: progress_signals(world, conversation), bool)
    assert signals[0]["kind"] == "answered_human"
    assert isinstance(signals[0]["answered_after_ms"], int)

    # a turn: the model's reply is spoken and the claimant listened to again
    world.model.reply_text("Thanks. Have you been able to find your bank statements?")
    response = await turn(world, conversation, "Yes, speaking.", t=1)
    root = twiml(await response.get_data(as_text=True))
    assert said(root) == ["Thanks. Have you been able to find your bank statements?"]
    [gather] = root.iter("Gather")
    assert parse_qs(urlsplit(gather.get("action") or "").query)["t"] == ["2"]
    assert root.find("Hangup") is None
    # Twilio repeats the request: the same answer, without a second model call
    repeated = await turn(world, conversation, "Yes, speaking.", t=1)
    assert said(twiml(await repeated.get_data(as_text=True))) == said(root)
    assert len(world.model.requests) == 1
    sent = json.dumps(world.model.requests[0]["messages"])
    assert "Yes, speaking." in sent
    door = world.services.ai_contact()
    progress = await door.progress(conversation.workflow_id)
    assert progress is not None and (progress.turns, progress.ended) == (1, False)
    assert await door.progress("ai-contact-no-such-workflow") is None

    # the last turn: the AI records the outcome, says goodbye and hangs up
    world.model.reply_tool(
        "record_outcome",
        {"outcome": "promised_documents", "note": "will upload the statements tonight"},
        say="Thank you, we'll look out for them. Goodbye.",
    )
    response = await turn(world, conversation, "I'll upload them tonight.", t=2)
    root = twiml(await response.get_data(as_text=True))
    assert said(root) == ["Thank you, we'll look out for them. Goodbye."]
    assert list(root)[-1].tag == "Hangup" and root.find("Gather") is None
    # Twilio reports the end: the call's row is kept as an agent's call's is
    status = voice_params(CallStatus="completed", CallDuration="42")
    assert (await world.post(f"{STATUS_PATH}?c={conversation.id}", status)).status_code == 204
    row = await ended(world, conversation)
    assert (row.status, row.disposition) == ("finished", "promised_documents")
    call = await eventually(
        lambda: call_row(world, conversation.call_id), lambda c: c.status == "completed"
    )
    assert call.duration_seconds == 42 and call.ended_at is not None

    # the conversation is over: a late turn ends the call politely, without the model
    late = await turn(world, conversation, "Hello?", t=3)
    assert said(twiml(await late.get_data(as_text=True))) == [GOODBYE]


async def test_silence_is_prompted_again_without_the_model_then_the_call_ends(
    world: World,
) -> None:
    _, conversation = await ai_contact(world)
    await answer(world, conversation)
    first = twiml(await (await turn(world, conversation, "", t=1)).get_data(as_text=True))
    assert said(first) == [SORRY_LINE]
    [gather] = first.iter("Gather")
    assert parse_qs(urlsplit(gather.get("action") or "").query) == {
        "c": [str(conversation.id)],
        "t": ["2"],
        "s": ["1"],
    }
    blank = twiml(await (await turn(world, conversation, "   ", t=2, s=1)).get_data(as_text=True))
    assert said(blank) == [SORRY_LINE]
    last = twiml(await (await turn(world, conversation, "", t=3, s=2)).get_data(as_text=True))
    assert said(last) == [GOODBYE] and list(last)[-1].tag == "Hangup"
    assert world.model.requests == []
    await contact(world, conversation).terminate("test over")


@pytest.mark.parametrize("setting", ["hang_up", "message"])
async def test_an_answering_machine_gets_what_the_rules_say(world: World, setting: str) -> None:
    rules = world.services.rules()
    ai = rules.ai.model_copy(update={"answering_machine": setting})
    world.services.use_rules(rules.model_copy(update={"ai": ai}))
    try:
        _, conversation = await ai_contact(world)
        response = await answer(world, conversation, answered_by="machine_end_beep")
    finally:
        world.services.use_rules(rules)
    root = twiml(await response.get_data(as_text=True))
    assert said(root) == ([MACHINE_MESSAGE] if setting == "message" else [])
    assert [element.tag for element in root] == (
        ["Say", "Hangup"] if setting == "message" else ["Hangup"]
    )
    assert "Test" not in (await response.get_data(as_text=True))  # no name for a machine
    signals = await eventually(lambda: progress_signals(world, conversation), bool)
    assert signals[0]["kind"] == "answered_machine"
    row = await ended(world, conversation)
    assert row.status == "no_contact"
    assert world.model.requests == []


async def test_a_call_not_answered_ends_the_contact(world: World) -> None:
    _, conversation = await ai_contact(world)
    for status in ("ringing", "no-answer"):
        response = await world.post(
            f"{STATUS_PATH}?c={conversation.id}", voice_params(CallStatus=status)
        )
        assert response.status_code == 204
    row = await ended(world, conversation)
    assert (row.status, row.disposition) == ("no_contact", "no_answer")
    call = await call_row(world, conversation.call_id)
    assert call.status == "no-answer"


async def test_unknown_or_ended_conversations_end_the_call_politely(world: World) -> None:
    _, conversation = await ai_contact(world)
    await contact(world, conversation).terminate("test over")
    async with world.stack.h.dialler.begin() as conn:
        await ai_conversations.close_conversation(
            conn, conversation.id, status="cancelled", disposition=None, handoff_reason=None,
            summary="", turns=0,
        )  # fmt: skip
    for query in ("?c=987654321", "?c=abc", "", "?c=" + "9" * 40, f"?c={conversation.id}"):
        for path in (ANSWER_PATH, TURN_PATH):
            response = await world.post(
                path + query, voice_params(AnsweredBy="human", SpeechResult="hi")
            )
            assert response.status_code == 200, (path, query)
            root = twiml(await response.get_data(as_text=True))
            assert said(root) == [GOODBYE] and list(root)[-1].tag == "Hangup"
        status = await world.post(STATUS_PATH + query, voice_params(CallStatus="completed"))
        assert status.status_code == 204
    assert world.model.requests == []


async def test_temporal_away_hands_the_claimant_to_a_person(world: World) -> None:
    _, conversation = await ai_contact(world)
    away = create_app(world.settings.model_copy(update={"temporal_address": "127.0.0.1:9"}))
    async with away.test_app():
        response = await world.post(
            f"{TURN_PATH}?c={conversation.id}&t=1",
            voice_params(SpeechResult="Who is this?"),
            app=away,
        )
        assert response.status_code == 200
        root = twiml(await response.get_data(as_text=True))
        assert said(root) == [TROUBLE_LINE, HANDOFF_LINE] and list(root)[-1].tag == "Hangup"
        # the answer is served all the same; the workflow not hearing of it is only logged
        response = await world.post(
            f"{ANSWER_PATH}?c={conversation.id}", voice_params(AnsweredBy="human"), app=away
        )
        assert (
            response.status_code == 200
            and len(said(twiml(await response.get_data(as_text=True)))) == 1
        )
    assert world.model.requests == []
    await contact(world, conversation).terminate("test over")


async def test_hostile_input_never_gives_a_500(world: World) -> None:
    _, conversation = await ai_contact(world)
    await answer(world, conversation)
    huge = "x" * 100_000  # seven fields of it stay under the 1 MB body limit
    nasty = "\x00\x1b[31m" + "y" * 10_000 + "\x00"
    for path in (ANSWER_PATH, TURN_PATH, STATUS_PATH):
        for value in (nasty, huge, "\x00"):
            params = voice_params(AnsweredBy=value, SpeechResult=value, CallStatus=value) | {
                "CallSid": value,
                "Timestamp": value,
                "CallDuration": value,
                value[:50]: value,
            }
            if path == TURN_PATH:  # each reaches the model, cut and cleaned
                world.model.reply_text("Sorry, could you say that again?")
            response = await world.post(f"{path}?c={conversation.id}&t={'9' * 30}&s=x", params)
            assert response.status_code < 500, (path, value[:10])
            if path == TURN_PATH:
                root = twiml(await response.get_data(as_text=True))
                assert said(root) == ["Sorry, could you say that again?"]
        # control characters in the (signed) URL itself are refused before the view runs
        for query in ("?c=%00", f"?c={conversation.id}&t=%1b"):
            response = await world.post(path + query, voice_params())
            assert response.status_code == 400
    spoken = [
        message["content"]
        for request in world.model.requests
        for message in request["messages"]
        if message["role"] == "user"
    ]
    assert spoken and all(len(text) <= MAX_SPEECH_CHARS for text in spoken)
    assert not any("\x00" in text for text in spoken)
    await contact(world, conversation).terminate("test over")


# --- inbound texts ----------------------------------------------------------------------------


def sms_params(number: str, body: str, sid: str) -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": ACCOUNT, "From": number, "To": "+447700900000",
            "Body": body, "NumMedia": "0"}  # fmt: skip


async def test_a_text_in_a_live_ai_sms_conversation_reaches_it(world: World) -> None:
    number = "+447700941001"
    user_id, conversation = await ai_contact(world, AiChannel.SMS, phone=number)
    world.model.reply_text("Thanks! I've noted that.")
    sid = "SM" + uuid.uuid4().hex
    response = await world.post(SMS_INBOUND, sms_params(number, "I'll send them tomorrow", sid))
    assert response.status_code == 200

    async def replies() -> list[Any]:
        async with world.stack.h.dialler.connect() as conn:
            rows = await conn.execute(
                select(db.sms_messages.c.body).where(
                    db.sms_messages.c.user_id == user_id, db.sms_messages.c.direction == "outbound"
                )
            )
            return [r.body for r in rows]

    bodies = await eventually(replies, lambda found: "Thanks! I've noted that." in found)
    assert len(bodies) == 2  # the opening and the reply
    # Twilio repeats the webhook: the conversation answers the message once
    again = await world.post(SMS_INBOUND, sms_params(number, "I'll send them tomorrow", sid))
    assert again.status_code == 200
    async with world.stack.h.dialler.connect() as conn:
        message_id = (await sms_outbox.inbound_by_sid(conn, sid)).message_id
    assert len(world.model.requests) == 1 and len(await replies()) == 2
    # it went to the conversation, not to the triage
    found = [w.id async for w in world.stack.h.client.list_workflows(
        f"WorkflowId = '{triage_workflow_id(message_id)}'")]  # fmt: skip
    assert found == []
    await contact(world, conversation).terminate("test over")


async def test_a_stop_never_reaches_the_ai(world: World) -> None:
    number = "+447700941002"
    user_id, conversation = await ai_contact(world, AiChannel.SMS, phone=number)
    response = await world.post(SMS_INBOUND, sms_params(number, "STOP", "SM" + uuid.uuid4().hex))
    assert response.status_code == 200
    async with world.stack.h.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.suppressions.c.reason).where(db.suppressions.c.user_id == user_id)
        )
        assert [r.reason for r in rows] == ["sms_stop"]
    history = await contact(world, conversation).fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert "claimant_texted" not in signals
    assert world.model.requests == []
    await contact(world, conversation).terminate("test over")


async def test_temporal_away_the_text_is_kept_and_twilio_answered(world: World) -> None:
    number = "+447700941003"
    user_id = await add_claimant(world.stack.h.replica, signed=True, pending=1, phone=number)
    away = create_app(world.settings.model_copy(update={"temporal_address": "127.0.0.1:9"}))
    async with away.test_app():
        sid = "SM" + uuid.uuid4().hex
        response = await world.post(SMS_INBOUND, sms_params(number, "call me at 4", sid), app=away)
    assert response.status_code == 200
    async with world.stack.h.dialler.connect() as conn:
        kept = await sms_outbox.inbound_by_sid(conn, sid)
    assert kept.user_id == user_id and kept.body == "call me at 4"
    assert world.model.requests == []
