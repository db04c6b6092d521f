"""The AI contact's activities against the real databases, the real `openai` client talking
to the scripted fake model, and the real Twilio client talking to a small fake of Twilio's
Calls resource: model turns recorded with their latency and tokens (and no words in the
logs), malformed output, refusals and outages, a call dialled once with the AI webhooks,
texts sent once per key through the SMS path agents see, and the close writing the
transcript onto the call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.ai_agent import AiAgentActivities
from adapters import ai_conversations
from adapters.ai_model import ChatModel, ModelConfig
from adapters.ai_telephony import SimulatedCalls, TwilioCalls, call_placer, call_urls
from adapters.messaging import SimulatedSms
from adapters.rules_file import load_rules_file
from adapters.suppressions import append_suppression
from config.settings import Settings
from schemas import dialler_db as db
from schemas.ai import (
    AiChannel,
    CloseConversation,
    ContactEnd,
    ContextQuestion,
    ConversationStep,
    EndAiCall,
    HandoffReason,
    ModelTurn,
    OpenConversation,
    PlaceAiCall,
    SendAiSms,
    StepKind,
    ToolStep,
)
from tests.factories import add_claimant, set_user
from tests.fake_openai import FakeModel, fake_openai
from tests.fake_twilio_calls import (
    PUBLIC,
    TWILIO_SID,
    FakeCalls,
    fake_twilio_calls,
    twilio_settings,
)

# a Wednesday, 11:00 in London: inside the calling windows, not a bank holiday
NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
BOTH = ("live_call", "automated_call", "sms")


@pytest.fixture
def twilio() -> Iterator[FakeCalls]:
    with fake_twilio_calls() as fake:
        yield fake


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with fake_openai() as fake:
        yield fake


@pytest.fixture
def ai_settings(settings: Settings, twilio: FakeCalls) -> Settings:
    return twilio_settings(settings, twilio)


@dataclass
class Rig:
    acts: AiAgentActivities
    chat: ChatModel
    sms: SimulatedSms
    agent_id: int
    dialler: AsyncEngine
    replica: AsyncEngine


@pytest.fixture
async def rig(
    ai_settings: Settings, dialler_db: AsyncEngine, replica: AsyncEngine, model: FakeModel
) -> AsyncIterator[Rig]:
    chat = ChatModel(ModelConfig("fake-model", model.base_url, "sk-test", 2.0))
    sms = SimulatedSms(from_number="+447700900002")
    calls = call_placer(ai_settings)
    assert isinstance(calls, TwilioCalls)
    acts = AiAgentActivities(
        dialler_db,
        replica,
        chat,
        sms,
        calls,
        ai_settings,
        load_rules_file(ai_settings.rules_file),
        clock=lambda: NOW,
    )
    yield Rig(acts, chat, sms, await _ai_agent(dialler_db), dialler_db, replica)
    await chat.close()


async def _ai_agent(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=f"{uuid.uuid4().hex}@ai.test",
                display_name="AI agent",
                role="agent",
                is_ai=True,
            )
            .returning(db.agents.c.id)
        )
    assert agent_id is not None
    return int(agent_id)


async def _open(rig: Rig, user_id: int, channel: AiChannel = AiChannel.SMS) -> int:
    opened = await ActivityEnvironment().run(
        rig.acts.open_conversation,
        OpenConversation(user_id, channel, "outstanding", rig.agent_id, f"ai-{uuid.uuid4().hex}"),
    )
    return opened.conversation_id


async def _steps(engine: AsyncEngine, conversation_id: int) -> list[ai_conversations.StepRow]:
    async with engine.connect() as conn:
        return (await ai_conversations.steps_of(conn, [conversation_id]))[conversation_id]


def _turn(conversation_id: int, user_id: int, steps: list[ConversationStep]) -> ModelTurn:
    return ModelTurn(conversation_id, user_id, AiChannel.SMS, "outstanding", steps)


OPENING = ConversationStep(StepKind.ASSISTANT, "Hi, this is the automated assistant.")


# --- conversations -----------------------------------------------------------------------------


async def test_a_conversation_opens_once_per_workflow(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    request = OpenConversation(user_id, AiChannel.VOICE, "outstanding", rig.agent_id, "ai-once")
    env = ActivityEnvironment()
    first = await env.run(rig.acts.open_conversation, request)
    again = await env.run(rig.acts.open_conversation, request)
    assert first == again


# --- model turns -------------------------------------------------------------------------------


async def test_a_model_turn_sees_only_the_brief_and_is_recorded(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(
        rig.replica, signed=True, pending=2, lender="Black Horse", phone="+447700900555"
    )
    await set_user(rig.replica, user_id, first_name="Priya")
    conversation_id = await _open(rig, user_id)
    model.reply_text("You still need to send your bank statements.")
    steps = [OPENING, ConversationStep(StepKind.CLAIMANT, "what do you need from me?")]

    with capture_logs() as logs:
        reply = await ActivityEnvironment().run(
            rig.acts.model_turn, _turn(conversation_id, user_id, steps)
        )

    assert reply.say == "You still need to send your bank statements."
    assert reply.tool_calls == [] and reply.malformed is None and not reply.refused
    assert (reply.prompt_tokens, reply.completion_tokens) == (120, 30)
    [request] = model.requests
    system = request["messages"][0]
    assert system["role"] == "system"
    assert "Priya" in system["content"] and "Black Horse" in system["content"]
    assert "bank statements" in system["content"]
    sent = json.dumps(request)
    for private in ("+447700900555", "7700900555", f"Claimant{user_id}", "M1 4AB", "@example"):
        assert private not in sent
    assert [m["role"] for m in request["messages"]] == ["system", "assistant", "user"]
    assert {t["function"]["name"] for t in request["tools"]} >= {"send_magic_link", "hand_off"}

    recorded = await _steps(rig.dialler, conversation_id)
    assert [(s.kind, s.text) for s in recorded] == [
        ("assistant", OPENING.text),
        ("claimant", "what do you need from me?"),
        ("model", None),
        ("assistant", "You still need to send your bank statements."),
    ]
    model_step = recorded[2]
    assert model_step.latency_ms is not None and model_step.latency_ms >= 0
    assert (model_step.prompt_tokens, model_step.completion_tokens) == (120, 30)

    [turn_log] = [e for e in logs if e["event"] == "AI model turn"]
    assert turn_log["prompt_tokens"] == 120 and turn_log["latency_ms"] >= 0
    everything_logged = json.dumps(logs, default=str)
    for words in ("bank statements", "what do you need", "Priya", "Black Horse"):
        assert words not in everything_logged


async def test_the_next_turn_does_not_record_a_line_twice(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    steps = [OPENING, ConversationStep(StepKind.CLAIMANT, "hello")]
    model.reply_text("Hello!").reply_text("Bye!")
    env = ActivityEnvironment()
    first = await env.run(rig.acts.model_turn, _turn(conversation_id, user_id, steps))
    steps += [
        ConversationStep(StepKind.ASSISTANT, first.say),
        ConversationStep(StepKind.CLAIMANT, "bye"),
    ]
    await env.run(rig.acts.model_turn, _turn(conversation_id, user_id, steps))
    said = [(s.kind, s.text) for s in await _steps(rig.dialler, conversation_id)]
    assert said == [
        ("assistant", OPENING.text),
        ("claimant", "hello"),
        ("model", None),
        ("assistant", "Hello!"),
        ("claimant", "bye"),
        ("model", None),
        ("assistant", "Bye!"),
    ]


async def test_tool_calls_are_parsed(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.reply_tools(
        [("send_magic_link", {"purpose": "documents", "channel": "sms"}), ("claim_context", {})],
        say="I'll send you a link.",
    )
    steps = [OPENING, ConversationStep(StepKind.CLAIMANT, "send me the link please")]
    reply = await ActivityEnvironment().run(
        rig.acts.model_turn, _turn(conversation_id, user_id, steps)
    )
    assert reply.say == "I'll send you a link."
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("send_magic_link", {"purpose": "documents", "channel": "sms"}),
        ("claim_context", {}),
    ]
    assistant = (await _steps(rig.dialler, conversation_id))[-1]
    assert assistant.kind == "assistant" and assistant.detail is not None
    assert [c["name"] for c in assistant.detail["tool_calls"]] == [
        "send_magic_link",
        "claim_context",
    ]


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (lambda m: m.reply_tool_raw("send_magic_link", '{"purpose": "documents", '), "JSON"),
        (
            lambda m: m.reply_tool("send_magic_link", {"purpose": "cash", "channel": "sms"}),
            "one of",
        ),
        (lambda m: m.reply_tool("transfer_money", {}), "unknown tool"),
        (lambda m: m.reply_text(""), "empty"),
    ],
)
async def test_malformed_output_is_flagged_not_raised(
    rig: Rig, model: FakeModel, script: Any, says: str
) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    script(model)
    reply = await ActivityEnvironment().run(
        rig.acts.model_turn,
        _turn(conversation_id, user_id, [OPENING, ConversationStep(StepKind.CLAIMANT, "ok")]),
    )
    assert reply.malformed is not None and says in reply.malformed
    assert reply.say == "" and reply.tool_calls == []
    recorded = await _steps(rig.dialler, conversation_id)
    assert recorded[-1].kind == "model" and recorded[-1].text is not None
    assert recorded[-1].text.startswith("malformed:")


async def test_a_correction_reaches_the_model(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.reply_text("Sorry about that.")
    turn = _turn(conversation_id, user_id, [OPENING, ConversationStep(StepKind.CLAIMANT, "hm")])
    turn.correction = "Your last answer was invalid: bad JSON. Try again."
    await ActivityEnvironment().run(rig.acts.model_turn, turn)
    last = model.requests[0]["messages"][-1]
    assert last == {"role": "system", "content": turn.correction}


async def test_a_refusal_is_flagged(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.refuse("I can't help with that.")
    reply = await ActivityEnvironment().run(
        rig.acts.model_turn,
        _turn(conversation_id, user_id, [OPENING, ConversationStep(StepKind.CLAIMANT, "?")]),
    )
    assert reply.refused and reply.say == ""


async def test_an_outage_raises_for_temporal_to_retry(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.fail(503)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            rig.acts.model_turn,
            _turn(conversation_id, user_id, [OPENING, ConversationStep(StepKind.CLAIMANT, "?")]),
        )
    assert raised.value.type == "ModelUnavailable" and not raised.value.non_retryable
    recorded = await _steps(rig.dialler, conversation_id)
    assert [s.kind for s in recorded] == ["assistant", "claimant", "model"]
    assert recorded[-1].text is not None and "503" in recorded[-1].text


async def test_a_bad_request_is_not_retried(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.fail(400)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            rig.acts.model_turn, _turn(conversation_id, user_id, [OPENING])
        )
    assert raised.value.type == "ModelRejected" and raised.value.non_retryable


async def test_a_slow_model_heartbeats_and_honours_cancellation(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    model.hang(4.0)
    env = ActivityEnvironment()
    beats: list[Any] = []
    heartbeat = asyncio.Event()

    def on_heartbeat(*details: Any) -> None:
        beats.append(details)
        heartbeat.set()

    env.on_heartbeat = on_heartbeat
    running = asyncio.create_task(
        env.run(rig.acts.model_turn, _turn(conversation_id, user_id, [OPENING]))
    )
    await asyncio.wait_for(heartbeat.wait(), timeout=8)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, timeout=5)
    assert beats


# --- tools -------------------------------------------------------------------------------------


async def test_claim_context_is_this_claimants_own(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=2, lender="Moneybarn")
    await add_claimant(rig.replica, signed=False, pending=3, lender="Close Brothers")
    answer = await ActivityEnvironment().run(rig.acts.claim_context, ContextQuestion(user_id, 1))
    assert answer.lenders == ["Moneybarn"]
    assert answer.missing_documents == ["bank statements"]
    assert answer.signed is True


async def test_a_tool_step_is_recorded(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    recorded = await ActivityEnvironment().run(
        rig.acts.record_tool_step,
        ToolStep(
            conversation_id,
            "send_magic_link",
            {"purpose": "documents", "channel": "sms"},
            "A link was already sent in this conversation.",
            refused=True,
        ),
    )
    [step] = await _steps(rig.dialler, conversation_id)
    assert step.id == recorded.step_id and step.kind == "tool"
    assert step.tool_name == "send_magic_link"
    assert step.detail == {
        "arguments": {"purpose": "documents", "channel": "sms"},
        "result": "A link was already sent in this conversation.",
        "refused": True,
    }


# --- SMS ---------------------------------------------------------------------------------------


async def _sms_rows(engine: AsyncEngine, user_id: int) -> list[Any]:
    async with engine.connect() as conn:
        return list(
            await conn.execute(select(db.sms_messages).where(db.sms_messages.c.user_id == user_id))
        )


async def test_a_text_is_sent_once_per_key_as_the_ai_agent(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id)
    request = SendAiSms(conversation_id, user_id, rig.agent_id, "Hi from RMC", "wf:opening")
    env = ActivityEnvironment()
    sent = await env.run(rig.acts.send_sms, request)
    again = await env.run(rig.acts.send_sms, request)
    assert sent.message_id is not None and again.message_id == sent.message_id
    assert len(rig.sms.sent) == 1 and rig.sms.sent[0].body == "Hi from RMC"
    [row] = await _sms_rows(rig.dialler, user_id)
    assert row.agent_id == rig.agent_id and row.direction == "outbound"
    assert row.id == sent.message_id
    other = await env.run(
        rig.acts.send_sms,
        SendAiSms(conversation_id, user_id, rig.agent_id, "Second", "wf:turn-2"),
    )
    assert other.message_id not in (None, sent.message_id)


async def test_no_text_without_sms_consent(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=("live_call",))
    conversation_id = await _open(rig, user_id)
    sent = await ActivityEnvironment().run(
        rig.acts.send_sms, SendAiSms(conversation_id, user_id, rig.agent_id, "Hi", "k1")
    )
    assert sent.message_id is None and rig.sms.sent == []
    assert await _sms_rows(rig.dialler, user_id) == []


async def test_no_text_to_a_claimant_who_opted_out(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    async with rig.dialler.begin() as conn:
        await append_suppression(conn, reason="sms_stop", source="test", user_id=user_id)
    conversation_id = await _open(rig, user_id)
    sent = await ActivityEnvironment().run(
        rig.acts.send_sms, SendAiSms(conversation_id, user_id, rig.agent_id, "Hi", "k1")
    )
    assert sent.message_id is None and rig.sms.sent == []


# --- calls -------------------------------------------------------------------------------------


async def _call_row(engine: AsyncEngine, call_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(db.calls).where(db.calls.c.id == call_id))).one()


def _place(conversation_id: int, user_id: int, agent_id: int) -> PlaceAiCall:
    return PlaceAiCall(conversation_id, user_id, agent_id, "outstanding", "wf")


async def test_a_call_is_dialled_once_with_the_ai_webhooks(rig: Rig, twilio: FakeCalls) -> None:
    user_id = await add_claimant(
        rig.replica, signed=True, pending=1, consents=BOTH, phone="07700 900777"
    )
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    env = ActivityEnvironment()
    placed = await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    again = await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    assert placed.call_id is not None and placed.call_sid is not None and placed.refused == ""
    assert again == placed
    [(path, form)] = twilio.requests  # dialled once
    assert path == f"/2010-04-01/Accounts/{TWILIO_SID}/Calls.json"
    assert form["To"] == ["+447700900777"] and form["From"] == ["+447700900002"]
    assert form["Url"] == [f"{PUBLIC}/webhooks/ai/voice/answer?c={conversation_id}"]
    assert form["StatusCallback"] == [f"{PUBLIC}/webhooks/ai/voice/status?c={conversation_id}"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == ["Enable"] and form["Record"] == ["true"]
    row = await _call_row(rig.dialler, placed.call_id)
    assert (row.agent_id, row.provider, row.to_number, row.status) == (
        rig.agent_id,
        "twilio",
        "+447700900777",
        "queued",
    )
    assert row.provider_call_sid == placed.call_sid and row.phone_key is not None
    async with rig.dialler.connect() as conn:
        conversation = await ai_conversations.conversation_by_id(conn, conversation_id)
    assert conversation is not None and conversation.call_id == placed.call_id


@pytest.mark.parametrize(
    ("consents", "phone", "why"),
    [
        (("live_call", "sms"), None, "automated-call consent"),
        (BOTH, "not a number", "no usable phone number"),
    ],
)
async def test_no_call_without_consent_or_a_number(
    rig: Rig, twilio: FakeCalls, consents: tuple[str, ...], phone: str | None, why: str
) -> None:
    user_id = await add_claimant(
        rig.replica, signed=True, pending=1, consents=consents, phone=phone
    )
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    placed = await ActivityEnvironment().run(
        rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id)
    )
    assert (placed.call_id, placed.call_sid) == (None, None) and why in placed.refused
    assert twilio.requests == []


async def test_no_call_outside_the_calling_window(
    ai_settings: Settings, rig: Rig, twilio: FakeCalls
) -> None:
    late = AiAgentActivities(
        rig.dialler,
        rig.replica,
        rig.chat,  # not called
        rig.sms,
        call_placer(ai_settings),
        ai_settings,
        load_rules_file(ai_settings.rules_file),
        clock=lambda: datetime(2026, 12, 2, 22, 30, tzinfo=UTC),
    )
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    placed = await ActivityEnvironment().run(
        late.place_call, _place(conversation_id, user_id, rig.agent_id)
    )
    assert placed.call_sid is None and "calling window" in placed.refused
    assert twilio.requests == []


async def test_a_twilio_error_is_retried_on_the_same_call(rig: Rig, twilio: FakeCalls) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    twilio.create_status = 503
    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as raised:
        await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    assert raised.value.type == "CallFailed" and not raised.value.non_retryable
    twilio.create_status = 201
    placed = await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    assert placed.call_sid is not None
    async with rig.dialler.connect() as conn:
        calls = list(await conn.execute(select(db.calls.c.id).where(db.calls.c.user_id == user_id)))
    assert [c.id for c in calls] == [placed.call_id]
    assert len(twilio.requests) == 2


async def test_a_refused_call_is_not_retried(rig: Rig, twilio: FakeCalls) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    twilio.create_status = 400
    placed = await ActivityEnvironment().run(
        rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id)
    )
    assert placed.call_id is not None and placed.call_sid is None
    assert "21210" in placed.refused
    assert (await _call_row(rig.dialler, placed.call_id)).status == "failed"


async def test_ending_a_live_call_and_an_ended_one(rig: Rig, twilio: FakeCalls) -> None:
    env = ActivityEnvironment()
    live = "CA" + "1" * 32
    ended = await env.run(rig.acts.end_call, EndAiCall(live, "Thank you & goodbye."))
    assert ended.ended is True
    [(path, form)] = twilio.requests
    assert path == f"/2010-04-01/Accounts/{TWILIO_SID}/Calls/{live}.json"
    twiml = form["Twiml"][0]
    assert "<Say" in twiml and "Thank you &amp; goodbye." in twiml and "<Hangup" in twiml
    gone = "CA" + "2" * 32
    twilio.ended.add(gone)
    assert (await env.run(rig.acts.end_call, EndAiCall(gone, "Bye"))).ended is False


async def test_the_simulated_telephone(settings: Settings) -> None:
    """Without Twilio the AI's calls ring nowhere (the routing policy makes no AI voice
    contacts then): dialled and hung up on record only."""
    calls = call_placer(settings)
    assert isinstance(calls, SimulatedCalls)
    sid = await calls.dial("+447700900123", call_urls(settings, 7, 8))
    assert sid.startswith("CAsim") and len(sid) == 34
    [dialled] = calls.dialled
    assert dialled.urls.answer.endswith("/webhooks/ai/voice/answer?c=7")
    assert dialled.urls.recording.endswith("/webhooks/twilio/recording?call_id=8")
    assert await calls.say_goodbye(sid, "Bye") is True
    assert await calls.say_goodbye(sid, "Bye") is False


# --- the close ---------------------------------------------------------------------------------


async def test_closing_a_call_keeps_its_transcript_and_outcome(rig: Rig, model: FakeModel) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    env = ActivityEnvironment()
    placed = await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    model.reply_tool(
        "record_outcome", {"outcome": "promised_documents", "note": "posting them"}, say="Great."
    )
    steps = [OPENING, ConversationStep(StepKind.CLAIMANT, "I'll post them tomorrow")]
    reply = await env.run(
        rig.acts.model_turn,
        ModelTurn(conversation_id, user_id, AiChannel.VOICE, "outstanding", steps),
    )
    steps += [
        ConversationStep(
            StepKind.ASSISTANT,
            reply.say,
            tool_calls=[{"id": "c1", "name": "record_outcome", "arguments": "{}"}],
        ),
        ConversationStep(StepKind.TOOL, "Outcome recorded.", "c1", "record_outcome"),
        ConversationStep(StepKind.CLAIMANT, "thanks, bye"),
    ]
    close = CloseConversation(
        conversation_id,
        ContactEnd.FINISHED,
        "promised_documents",
        "posting them",
        None,
        steps,
        placed.call_id,
        2,
    )
    await env.run(rig.acts.close_conversation, close)
    await env.run(rig.acts.close_conversation, close)  # a retried close changes nothing

    assert placed.call_id is not None
    row = await _call_row(rig.dialler, placed.call_id)
    assert row.disposition == "promised_documents"
    assert row.transcript == (
        f"AI: {OPENING.text}\n"
        "Claimant: I'll post them tomorrow\n"
        "AI: Great.\n"
        "[record_outcome] Outcome recorded.\n"
        "Claimant: thanks, bye"
    )
    async with rig.dialler.connect() as conn:
        conversation = await ai_conversations.conversation_by_id(conn, conversation_id)
    assert conversation is not None
    assert (conversation.status, conversation.disposition, conversation.turns) == (
        "finished",
        "promised_documents",
        2,
    )
    assert (conversation.prompt_tokens, conversation.completion_tokens) == (120, 30)
    said = [(s.kind, s.text) for s in await _steps(rig.dialler, conversation_id)]
    assert said[-1] == ("claimant", "thanks, bye")
    assert said.count(("claimant", "thanks, bye")) == 1


async def test_an_abandoned_ai_call_is_marked_whatever_its_end(rig: Rig) -> None:
    """Answered, but the claimant waited over 2 s for the AI: the call counts as abandoned
    (abandon rate, 72-hour lock) even when the contact ends in a hand-off, with no outcome."""
    user_id = await add_claimant(rig.replica, signed=True, pending=1, consents=BOTH)
    conversation_id = await _open(rig, user_id, AiChannel.VOICE)
    env = ActivityEnvironment()
    placed = await env.run(rig.acts.place_call, _place(conversation_id, user_id, rig.agent_id))
    assert placed.call_id is not None
    close = CloseConversation(
        conversation_id,
        ContactEnd.HANDED_OFF,
        None,
        "the claimant hung up",
        HandoffReason.COULD_NOT_HELP,
        [OPENING],
        placed.call_id,
        0,
        abandoned=True,
    )
    await env.run(rig.acts.close_conversation, close)
    row = await _call_row(rig.dialler, placed.call_id)
    assert (row.abandoned, row.disposition) == (True, None)


async def test_closing_a_hand_off(rig: Rig) -> None:
    user_id = await add_claimant(rig.replica, signed=True, pending=1)
    conversation_id = await _open(rig, user_id)
    await ActivityEnvironment().run(
        rig.acts.close_conversation,
        CloseConversation(
            conversation_id,
            ContactEnd.HANDED_OFF,
            None,
            "Mentioned a bereavement.",
            HandoffReason.SENSITIVE,
            [OPENING, ConversationStep(StepKind.CLAIMANT, "my husband passed away")],
            None,
            1,
        ),
    )
    async with rig.dialler.connect() as conn:
        conversation = await ai_conversations.conversation_by_id(conn, conversation_id)
        excluded = await ai_conversations.excluded_reason(conn, user_id)
    assert conversation is not None
    assert (conversation.status, conversation.handoff_reason) == ("handed_off", "sensitive")
    assert excluded is not None
