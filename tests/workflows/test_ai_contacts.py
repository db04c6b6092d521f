"""AI contacts end to end through the real workflows (issue 13's "done when"): the outreach
workflow routes an attempt to the AI, the AI worker holds the conversation with the scripted
fake model through the real `openai` client, and the outcome or hand-off comes back to the
claimant's outreach exactly as a person's would.

Here the AI texts (no telephony is configured, so the routing policy picks SMS); the voice
loop has its own tests (tests/web/test_webhooks_ai.py, tests/workflows/test_ai_calls.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from adapters import ai_conversations
from config.settings import Settings
from domain.ai_routing import VULNERABLE
from schemas import dialler_db as db
from schemas.ai import ClaimantTurn
from schemas.enums import Queue
from tests.factories import add_claimant
from tests.fake_openai import FakeModel
from tests.workflows.ai_stack import AiStack, ai_stack
from tests.workflows.conftest import scratch_databases
from tests.workflows.helpers import assessment, ensure_agents, eventually, start, task_row
from workflows.ai_contact import AiContactWorkflow

SMS_ONLY = ("live_call", "sms")  # no automated-call consent: the AI may only text


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, settings: Settings, model: FakeModel
) -> AsyncIterator[AiStack]:
    async with (
        scratch_databases("ai") as (dialler, replica),
        ai_stack(temporal_env, settings, dialler, replica, model) as s,
    ):
        await ensure_agents(s.h)
        yield s


@pytest.fixture(autouse=True)
def fresh_script(model: FakeModel) -> None:
    model.requests.clear()
    assert model.remaining == 0, "a test left scripted replies unused"


async def _outstanding_claimant(s: AiStack, **kwargs: Any) -> int:
    kwargs.setdefault("consents", SMS_ONLY)
    return await add_claimant(s.h.replica, signed=True, pending=1, **kwargs)


async def _texts_to(s: AiStack, user_id: int) -> list[Any]:
    async with s.h.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.sms_messages)
            .where(db.sms_messages.c.user_id == user_id, db.sms_messages.c.direction == "outbound")
            .order_by(db.sms_messages.c.id)
        )
        return list(rows)


async def _calls_of(s: AiStack, user_id: int) -> list[Any]:
    async with s.h.dialler.connect() as conn:
        rows = await conn.execute(select(db.calls).where(db.calls.c.user_id == user_id))
        return list(rows)


async def test_a_reminder_ends_in_promised_documents_recorded_as_the_ai_agents_outcome(
    stack: AiStack,
) -> None:
    user_id = await _outstanding_claimant(stack)
    outreach = await start(stack.h, user_id)
    conversation = await stack.conversation(user_id)
    row = await task_row(stack.h, user_id)
    assert row.status == "claimed" and row.claimed_by == stack.ai_agent_id
    opening = await eventually(lambda: _texts_to(stack, user_id), lambda rows: len(rows) == 1)
    assert "automated assistant" in opening[0].body and opening[0].agent_id == stack.ai_agent_id

    stack.model.reply_tool(
        "record_outcome",
        {"outcome": "promised_documents", "note": "will upload the bank statements tomorrow"},
        say="Thank you, we'll look out for your bank statements.",
    )
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("I'll send them tomorrow", "SMtest1")
    )
    ended = await stack.ended(user_id)
    assert (ended.status, ended.disposition) == ("finished", "promised_documents")
    calls = await eventually(lambda: _calls_of(stack, user_id), lambda rows: len(rows) == 1)
    assert calls[0].disposition == "promised_documents"
    assert calls[0].agent_id == stack.ai_agent_id
    replies = await _texts_to(stack, user_id)
    assert replies[-1].body == "Thank you, we'll look out for your bank statements."
    # the claimant's outreach goes on: a person is not offered them before the cooldown
    after = await eventually(
        lambda: task_row(stack.h, user_id), lambda r: r.status == "ready" and r.claimed_by is None
    )
    assert after.not_before_reason.startswith("cooldown after promised_documents")
    # the model saw this claimant's outstanding document and nothing of anyone else's
    system = stack.model.requests[0]["messages"][0]["content"]
    assert "bank statement" in system.lower()
    assert outreach.id == f"outreach-{user_id}"


async def test_asking_for_a_person_hands_off_with_the_summary_and_raised_priority(
    stack: AiStack,
) -> None:
    user_id = await _outstanding_claimant(stack)
    await start(stack.h, user_id)
    conversation = await stack.conversation(user_id)
    before = await task_row(stack.h, user_id)
    stack.model.reply_tool(
        "hand_off",
        {
            "summary": "Wants to talk to a person about which documents",
            "reason": "asked_for_person",
        },
    )
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("Can I talk to a real person?", "SMt2")
    )
    ended = await stack.ended(user_id)
    assert (ended.status, ended.handoff_reason) == ("handed_off", "asked_for_person")
    task = await eventually(
        lambda: task_row(stack.h, user_id),
        lambda r: r.status == "ready" and r.queue == "outstanding" and not r.ai_routed,
    )
    assert float(task.score) > float(before.score)
    assert any(f["name"] == "ai_handoff" for f in task.score_breakdown)
    async with stack.h.dialler.connect() as conn:
        note = await conn.scalar(
            select(db.claimant_notes.c.body).where(db.claimant_notes.c.user_id == user_id)
        )
    assert note == "AI hand-off: Wants to talk to a person about which documents"
    # a person may claim it now (the AI-routed lane is not in the way)
    granted = await stack.h.claims.claim_next(3, Queue(task.queue))
    assert granted is not None and granted.user_id == user_id


async def test_a_vulnerable_claimant_is_never_routed_to_the_ai(stack: AiStack) -> None:
    user_id = await _outstanding_claimant(
        stack, vulnerable=True, consents=("live_call", "automated_call", "sms")
    )
    handle = await start(stack.h, user_id)
    found = await eventually(lambda: assessment(handle), lambda a: a is not None)
    assert found is not None and found.routing is not None
    assert (found.routing.to_ai, found.routing.reason) == (False, VULNERABLE)
    row = await task_row(stack.h, user_id)
    assert row.status == "ready" and not row.ai_routed
    async with stack.h.dialler.connect() as conn:
        started = await conn.scalar(
            select(func.count())
            .select_from(db.ai_conversations)
            .where(db.ai_conversations.c.user_id == user_id)
        )
    assert started == 0 and stack.model.requests == []


async def test_each_model_call_and_tool_call_is_its_own_event_in_the_history(
    stack: AiStack,
) -> None:
    user_id = await _outstanding_claimant(stack)
    await start(stack.h, user_id)
    conversation = await stack.conversation(user_id)
    stack.model.reply_tool("claim_context", {})
    stack.model.reply_tool(
        "record_outcome",
        {"outcome": "promised_documents", "note": "asked what was missing"},
        say="We still need your bank statements. Thanks for sending them.",
    )
    contact = stack.contact(conversation.workflow_id)
    await contact.signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("What do you still need?", "SMt3")
    )
    await contact.result()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in contact.fetch_history_events()
        if e.event_type is EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled.count("ai_model_turn") == 2  # one event per model call
    assert scheduled.count("ai_check_tool") == 2  # one per tool call the model made
    assert "ai_claim_context" in scheduled
    order = [n for n in scheduled if n in ("ai_model_turn", "ai_check_tool", "ai_claim_context")]
    assert order == [
        "ai_model_turn",
        "ai_check_tool",
        "ai_claim_context",
        "ai_model_turn",
        "ai_check_tool",
    ]
    # the second model call saw the tool's answer
    tool_messages = [m for m in stack.model.requests[1]["messages"] if m["role"] == "tool"]
    assert "bank" in tool_messages[0]["content"].lower()


async def test_malformed_output_is_retried_once_then_handed_to_a_person(stack: AiStack) -> None:
    user_id = await _outstanding_claimant(stack)
    await start(stack.h, user_id)
    conversation = await stack.conversation(user_id)
    stack.model.reply_tool_raw("record_outcome", '{"outcome": "promised_documents", ')
    stack.model.reply_tool("record_outcome", {"outcome": "sign_the_moon", "note": ""})
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("ok", "SMt4")
    )
    ended = await stack.ended(user_id)
    assert (ended.status, ended.handoff_reason) == ("handed_off", "model_failed")
    # the retry told the model what was wrong
    assert any("invalid" in str(m.get("content", "")) for m in stack.model.requests[1]["messages"])
    assert len(stack.model.requests) == 2


async def test_a_refusal_or_a_model_outage_hands_off(stack: AiStack) -> None:
    refused = await _outstanding_claimant(stack)
    await start(stack.h, refused)
    conversation = await stack.conversation(refused)
    stack.model.refuse()
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("hello", "SMt5")
    )
    assert (await stack.ended(refused)).handoff_reason == "model_failed"

    down = await _outstanding_claimant(stack)
    await start(stack.h, down)
    conversation = await stack.conversation(down)
    for _ in range(3):  # every attempt of the SMS retry policy fails
        stack.model.fail(503)
    await stack.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("hello", "SMt6")
    )
    assert (await stack.ended(down)).handoff_reason == "model_failed"


async def test_each_line_is_in_the_conversation_once(stack: AiStack) -> None:
    """The model's reply is texted and recorded once; a fixed closing line (the hand-off)
    is recorded too: the transcript and the model's next prompt never repeat a line."""
    user_id = await _outstanding_claimant(stack)
    await start(stack.h, user_id)
    conversation = await stack.conversation(user_id)
    contact = stack.contact(conversation.workflow_id)
    stack.model.reply_text("We still need your bank statements. Can you send them this week?")
    await contact.signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("What do you need from me?", "SMo1")
    )
    await eventually(lambda: _texts_to(stack, user_id), lambda rows: len(rows) == 2)
    stack.model.reply_tool(
        "hand_off", {"summary": "wants to discuss by phone", "reason": "asked_for_person"}
    )
    await contact.signal(
        AiContactWorkflow.claimant_texted, ClaimantTurn("I'd rather talk to someone", "SMo2")
    )
    await stack.ended(user_id)
    second_prompt = [m.get("content") for m in stack.model.requests[1]["messages"][1:]]
    assert (
        second_prompt.count("We still need your bank statements. Can you send them this week?") == 1
    )
    async with stack.h.dialler.connect() as conn:
        steps = (await ai_conversations.steps_of(conn, [conversation.id]))[conversation.id]
    said = [s.text for s in steps if s.kind == "assistant" and s.text]  # not tool-only turns
    assert len(said) == len(set(said)) == 3  # opening, the reply, the hand-off line
