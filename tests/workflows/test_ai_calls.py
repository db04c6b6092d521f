"""The AI's automated calls through the real workflows (issue 13's "done when"), with the
real Twilio client talking to a fake of Twilio's Calls resource: a reminder call that ends in
"promised documents", a claimant who signs mid-call (the AI contact is cancelled and the call
ends with a goodbye), and a claimant without automated-call consent who is only texted
(PECR regulation 19). The webhooks that carry Twilio's side (answer, speech turns, status) are
exercised over signed requests in tests/web/test_webhooks_ai.py; here their messages are sent
to the workflow as those webhooks send them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from domain import ai_conversation as talk
from schemas import dialler_db as db
from schemas.ai import AiReply, CallProgress, CallProgressKind, ClaimantTurn
from schemas.outreach import ChangeKind
from tests.factories import add_claimant, set_user
from tests.fake_openai import FakeModel
from tests.fake_twilio_calls import FakeCalls, fake_twilio_calls, twilio_settings
from tests.workflows.ai_stack import AiStack, ai_stack
from tests.workflows.conftest import scratch_databases
from tests.workflows.helpers import event, eventually, start, task_row
from workflows.ai_contact import AiContactWorkflow

EVERY_CHANNEL = ("live_call", "automated_call", "sms")


@pytest.fixture(scope="module")
def twilio() -> Iterator[FakeCalls]:
    with fake_twilio_calls() as fake:
        yield fake


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, settings: Settings, model: FakeModel, twilio: FakeCalls
) -> AsyncIterator[AiStack]:
    with_telephony = twilio_settings(settings, twilio)
    async with (
        scratch_databases("aicall") as (dialler, replica),
        ai_stack(temporal_env, with_telephony, dialler, replica, model) as s,
    ):
        yield s


@pytest.fixture(autouse=True)
def fresh_script(model: FakeModel) -> None:
    model.requests.clear()
    assert model.remaining == 0, "a test left scripted replies unused"


async def _answered_call(
    stack: AiStack, twilio: FakeCalls, user_id: int, *, signal_answer: bool = True
) -> tuple[Any, str]:
    """The AI's call to the claimant once dialled, answered by a person (as the answer
    webhook tells the workflow, unless `signal_answer` is False: the signal is late);
    the contact's handle and the call's SID."""
    conversation = await stack.conversation(user_id, "voice")

    async def dialled() -> list[dict[str, list[str]]]:
        return [f for f in twilio.creates() if f"c={conversation.id}" in f["Url"][0]]

    creates = await eventually(dialled, lambda forms: len(forms) >= 1)
    call = await eventually(
        lambda: _calls_of(stack, user_id), lambda rows: rows[0].provider_call_sid is not None
    )
    assert len(creates) == 1 and len(call) == 1, "dialled once"
    assert creates[0]["MachineDetection"] == ["Enable"]
    assert "/webhooks/ai/voice/answer" in creates[0]["Url"][0]
    contact = stack.contact(conversation.workflow_id)
    if signal_answer:
        await contact.signal(
            AiContactWorkflow.call_progress, CallProgress(CallProgressKind.ANSWERED_HUMAN, 180)
        )
    return contact, call[0].provider_call_sid


async def _calls_of(stack: AiStack, user_id: int) -> list[Any]:
    async with stack.h.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.calls).where(db.calls.c.user_id == user_id).order_by(db.calls.c.id)
        )
        return list(rows)


async def test_a_reminder_call_ends_in_promised_documents(
    stack: AiStack, twilio: FakeCalls
) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, consents=EVERY_CHANNEL)
    await start(stack.h, user_id)
    contact, _ = await _answered_call(stack, twilio, user_id)
    stack.model.reply_tool(
        "record_outcome",
        {"outcome": "promised_documents", "note": "will post the statements this week"},
        say="Thank you. We'll look out for your bank statements. Goodbye.",
    )
    reply: AiReply = await contact.execute_update(
        AiContactWorkflow.claimant_said,
        ClaimantTurn("Yes, I'll send the bank statements this week", "CAturn:1"),
    )
    assert reply == AiReply("Thank you. We'll look out for your bank statements. Goodbye.", True)
    await contact.signal(AiContactWorkflow.call_progress, CallProgress(CallProgressKind.COMPLETED))
    ended = await stack.ended(user_id)
    assert (ended.channel, ended.status, ended.disposition) == (
        "voice",
        "finished",
        "promised_documents",
    )
    call = await eventually(
        lambda: _calls_of(stack, user_id), lambda rows: rows[0].disposition is not None
    )
    assert len(call) == 1 and call[0].disposition == "promised_documents"
    assert call[0].agent_id == stack.ai_agent_id
    assert "bank statements this week" in (call[0].transcript or "")
    # the claimant heard the recorded-call notice first (it opens the transcript)
    assert talk.RECORDING_NOTICE in (call[0].transcript or "")
    row = await eventually(lambda: task_row(stack.h, user_id), lambda r: r.status == "ready")
    assert row.not_before_reason.startswith("cooldown after promised_documents")


async def test_the_claimant_signing_mid_call_ends_the_call_politely(
    stack: AiStack, twilio: FakeCalls
) -> None:
    user_id = await add_claimant(stack.h.replica, signed=False, pending=0, consents=EVERY_CHANNEL)
    outreach = await start(stack.h, user_id)
    contact, sid = await _answered_call(stack, twilio, user_id)
    stack.model.reply_text("I can send you a link to sign now, if you like?")
    first = await contact.execute_update(
        AiContactWorkflow.claimant_said, ClaimantTurn("What's this about?", "CAturn:2")
    )
    assert first.end is False

    # the claimant signs in the main app while still on the phone: CDC tells the outreach
    await set_user(stack.h.replica, user_id, current_signature_file_id=user_id)
    await outreach.signal("change", event(ChangeKind.SIGNATURE_ADDED, user_id))

    ended = await stack.ended(user_id)
    assert (ended.status, ended.disposition) == ("cancelled", None)
    goodbyes = await eventually(lambda: _updates(twilio, sid), lambda forms: len(forms) == 1)
    assert talk.GOODBYE in goodbyes[0]["Twiml"][0] and "<Hangup" in goodbyes[0]["Twiml"][0]
    # the outreach has nothing left to chase, and no outcome was invented for the call
    assert (await outreach.result()).final_stage.value == "done"
    assert (await _calls_of(stack, user_id))[0].disposition is None
    assert stack.model.remaining == 0


async def _updates(twilio: FakeCalls, sid: str) -> list[dict[str, list[str]]]:
    return twilio.updates_of(sid)


async def test_without_automated_call_consent_the_ai_only_texts(
    stack: AiStack, twilio: FakeCalls
) -> None:
    user_id = await add_claimant(
        stack.h.replica, signed=True, pending=1, consents=("live_call", "sms")
    )
    dialled_before = twilio.count
    await start(stack.h, user_id)
    conversation = await stack.conversation(user_id, "sms")
    assert conversation.channel == "sms"
    async with stack.h.dialler.connect() as conn:
        voice = await conn.scalar(
            select(db.ai_conversations.c.id).where(
                db.ai_conversations.c.user_id == user_id,
                db.ai_conversations.c.channel == "voice",
            )
        )
    assert voice is None and twilio.count == dialled_before
    # end the conversation so the module's next test starts clean
    stack.model.reply_tool("hand_off", {"summary": "test over", "reason": "could_not_help"})
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("bye", "SMend")
    )
    assert (await stack.ended(user_id)).status == "handed_off"


async def test_a_retried_turn_is_answered_once_and_turns_never_interleave(
    stack: AiStack, twilio: FakeCalls
) -> None:
    """Twilio retries a webhook it got no answer to: the same turn arriving twice while the
    first is still with the model gets the same reply from one model call; a second turn
    waits for the first (the handlers would otherwise interleave at the model's await)."""
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, consents=EVERY_CHANNEL)
    await start(stack.h, user_id)
    contact, _ = await _answered_call(stack, twilio, user_id)
    stack.model.reply_text("Which lender was it?", delay_seconds=1.0)
    stack.model.reply_text("Thanks, noted.")
    turn = ClaimantTurn("It's about my loan", "CAturn:9")
    first_task = asyncio.ensure_future(
        contact.execute_update(AiContactWorkflow.claimant_said, turn)
    )
    # the first turn is with the model (for a second): the retry and the next turn arrive
    await eventually(_model_asked(stack.model), lambda n: n == 1)
    first, retried, second = await asyncio.gather(
        first_task,
        contact.execute_update(AiContactWorkflow.claimant_said, turn),
        contact.execute_update(
            AiContactWorkflow.claimant_said, ClaimantTurn("Santander", "CAturn:10")
        ),
    )
    assert first == retried == AiReply("Which lender was it?", False)
    assert second == AiReply("Thanks, noted.", False)
    assert len(stack.model.requests) == 2
    # the second model call saw the first turn complete: claimant, AI, then the next turn
    said = [m.get("content") for m in stack.model.requests[1]["messages"][1:]]
    assert said[-3:] == ["It's about my loan", "Which lender was it?", "Santander"]
    stack.model.reply_tool("hand_off", {"summary": "test over", "reason": "could_not_help"})
    await contact.execute_update(AiContactWorkflow.claimant_said, ClaimantTurn("bye", "CAturn:11"))
    assert (await stack.ended(user_id)).status == "handed_off"


async def test_the_claimants_first_words_before_the_answer_signal_follow_the_opening(
    stack: AiStack, twilio: FakeCalls
) -> None:
    """The answer webhook tells the workflow in the background; the claimant's first words
    can get there first. The opening they heard is still the conversation's first line."""
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, consents=EVERY_CHANNEL)
    await start(stack.h, user_id)
    contact, _ = await _answered_call(stack, twilio, user_id, signal_answer=False)
    stack.model.reply_tool("hand_off", {"summary": "wants a person", "reason": "asked_for_person"})
    reply = await contact.execute_update(
        AiContactWorkflow.claimant_said, ClaimantTurn("Can I speak to someone?", "CAturn:20")
    )
    assert reply.end is True
    await contact.signal(
        AiContactWorkflow.call_progress, CallProgress(CallProgressKind.ANSWERED_HUMAN, 150)
    )  # the late signal changes nothing
    lines = [(m["role"], m.get("content")) for m in stack.model.requests[0]["messages"][1:]]
    assert lines[0][0] == "assistant" and talk.RECORDING_NOTICE in (lines[0][1] or "")
    assert lines[1] == ("user", "Can I speak to someone?")
    await contact.signal(AiContactWorkflow.call_progress, CallProgress(CallProgressKind.COMPLETED))
    assert (await stack.ended(user_id)).status == "handed_off"


def _model_asked(model: FakeModel) -> Callable[[], Awaitable[int]]:
    async def asked() -> int:
        return len(model.requests)

    return asked
