"""The triage of inbound texts on a real Temporal server, with the real activities against
their own databases, the claimants' outreach workflows on an outreach worker, and the real
`openai` client talking to the scripted fake model: a callback request with a time is booked
in the outreach workflow, a documents question is answered by SMS from the claimant's own
claims, anything else (and whatever could not be done) is left for a person, malformed output
twice goes to a person, and STOP never reaches the model."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from pydantic import AnyHttpUrl
from quart import Quart
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.ai_triage import triage_activities
from adapters import agent_store, ai_conversations, sms_outbox
from adapters.ai_model import ChatModel, model_config
from adapters.rules_source import RulesSource
from config.settings import Settings
from domain import sms_triage as triage
from domain.rules import DiallerRules, parse_rules
from schemas import dialler_db as db
from schemas.ai import ContactEnd, HandoffReason, TriageInput, TriageIntent, TriageResult
from schemas.enums import AgentRole, Queue
from schemas.outreach import OutreachState
from tests.factories import add_claimant
from tests.fake_openai import FakeModel, fake_openai
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import eventually, start, task_in
from web import create_app
from web.twilio_signature import public_url, sign
from workflows.ai_contact_client import AiContactClient, triage_workflow_id
from workflows.outreach import OutreachWorkflow, workflow_id_for
from workflows.sms_triage import SmsTriageWorkflow

AI_EMAIL = "ai-triage@test.rmc"
INBOUND = "/webhooks/twilio/sms-inbound"
_sids = itertools.count(1)
_addresses = (f"10.77.{i // 250}.{i % 250 + 1}" for i in itertools.count())


@dataclass
class Triage:
    h: Harness
    model: FakeModel
    settings: Settings
    rules: DiallerRules  # the triage worker's: the default calling windows
    ai_agent_id: int
    door: AiContactClient
    app: Quart

    async def text(self, user_id: int, body: str) -> int:
        """An inbound message kept under the claimant, as the SMS webhook keeps it."""
        async with self.h.dialler.begin() as conn:
            message_id = await sms_outbox.keep_inbound(
                conn,
                user_id=user_id,
                sid=new_sid(),
                from_number="+447700900999",
                to_number="+447700900000",
                body=body,
                status="received",
            )
        assert message_id is not None
        return message_id

    async def triage(self, user_id: int, body: str) -> tuple[int, TriageResult]:
        message_id = await self.text(user_id, body)
        assert await self.door.start_triage(TriageInput(message_id, user_id))
        handle = self.h.client.get_workflow_handle(
            triage_workflow_id(message_id), result_type=TriageResult
        )
        return message_id, await handle.result()

    async def conversation(self, message_id: int) -> Any:
        async with self.h.dialler.connect() as conn:
            return (
                await conn.execute(
                    select(db.ai_conversations).where(
                        db.ai_conversations.c.workflow_id == triage_workflow_id(message_id)
                    )
                )
            ).one()

    async def steps(self, conversation_id: int) -> list[Any]:
        async with self.h.dialler.connect() as conn:
            return (await ai_conversations.steps_of(conn, [conversation_id]))[conversation_id]

    async def outbound(self, user_id: int) -> list[Any]:
        return await self._rows(
            db.sms_messages,
            db.sms_messages.c.user_id == user_id,
            db.sms_messages.c.direction == "outbound",
        )

    async def notes(self, user_id: int) -> list[Any]:
        return await self._rows(db.claimant_notes, db.claimant_notes.c.user_id == user_id)

    async def _rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.h.dialler.connect() as conn:
            found = await conn.execute(select(table).where(*where).order_by(table.c.id))
            return list(found.all())


def new_sid() -> str:
    return f"SMtriage{uuid.uuid4().hex[:16]}{next(_sids):08d}"


def _url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


async def _ai_agent(dialler: AsyncEngine) -> int:
    async with dialler.begin() as conn:
        return await agent_store.create_agent(
            conn,
            agent_store.NewAgent(AI_EMAIL, "AI agent", AgentRole.AGENT.value, None, None),
            is_ai=True,
        )


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Triage]:
    with fake_openai() as model:
        async with (
            scratch_databases("triage") as (dialler, replica),
            running_harness(temporal_env, settings, dialler, replica) as h,
        ):
            configured = settings.model_copy(
                update={
                    "database_url": _url(dialler),
                    "replica_database_url": _url(replica),
                    "temporal_address": temporal_env.client.service_client.config.target_host,
                    "temporal_task_queue": h.task_queue,
                    "openai_model": "fake-model",
                    "openai_base_url": AnyHttpUrl(model.base_url),
                    "openai_timeout_seconds": 5.0,
                    "ai_agent_email": AI_EMAIL,
                    "ai_task_queue": f"ai-triage-{uuid.uuid4().hex[:8]}",
                }
            )
            agent_id = await _ai_agent(dialler)
            config = model_config(configured)
            assert config is not None
            chat = ChatModel(config)
            rules = parse_rules("")  # real calling windows (the outreach worker's are open)
            activities = triage_activities(
                configured, dialler, replica, chat, h.client, RulesSource(dialler, rules)
            )
            worker = Worker(
                h.client,
                task_queue=configured.ai_task_queue,
                workflows=[SmsTriageWorkflow],
                activities=activities,
            )
            app = create_app(configured)
            async with worker, app.test_app():
                door = AiContactClient.over(h.client, configured.ai_task_queue)
                yield Triage(h, model, configured, rules, agent_id, door, app)
            await chat.close()


@pytest.fixture(autouse=True)
def _fresh_script(stack: Triage) -> Iterator[None]:
    """Each test scripts the model itself, and uses all it scripted."""
    stack.model.requests.clear()
    yield
    assert stack.model.remaining == 0, "the test scripted model replies it never used"


def _answer(intent: str, callback_at: str | None = None) -> str:
    return json.dumps({"intent": intent, "callback_at": callback_at})


def bookable_time(rules: DiallerRules, hour: int = 11) -> datetime:
    """The next day (from tomorrow) with `hour`:00 London time inside the calling windows."""
    windows = rules.calling_windows
    today = datetime.now(UTC).astimezone(windows.zone).date()
    for days in range(1, 7):
        at = datetime.combine(today + timedelta(days=days), time(hour), windows.zone)
        if triage.callback_refusal(at, datetime.now(UTC), windows) is None:
            return at.astimezone(UTC)
    raise AssertionError("no bookable day this week")


async def outreach_running(stack: Triage, **claimant: Any) -> int:
    user_id = await add_claimant(stack.h.replica, **claimant)
    await start(stack.h, user_id)
    queue = Queue.OUTSTANDING if claimant.get("signed") else Queue.UNSIGNED
    await task_in(stack.h, user_id, queue.value)
    return user_id


# --- the intents ----------------------------------------------------------------------------


async def test_a_callback_request_with_a_time_is_booked_in_the_outreach_workflow(
    stack: Triage,
) -> None:
    user_id = await outreach_running(stack, signed=True, pending=1)
    at = bookable_time(stack.rules)
    local = at.astimezone(stack.rules.calling_windows.zone).strftime("%Y-%m-%dT%H:%M")
    stack.model.reply_text(_answer("callback_request", local))
    message_id, result = await stack.triage(user_id, "Can you ring me back then please")
    assert result == TriageResult(message_id, TriageIntent.CALLBACK_REQUEST, "callback booked")
    handle: WorkflowHandle[OutreachWorkflow, Any] = stack.h.client.get_workflow_handle_for(
        OutreachWorkflow.run, workflow_id_for(user_id)
    )

    async def state() -> OutreachState | None:
        return await handle.query(OutreachWorkflow.state)

    held = await eventually(state, lambda s: s is not None and s.facts.callback_at == at)
    assert held is not None and held.facts.callback_owner_agent_id is None  # the shared pool
    [callback] = await stack._rows(db.callbacks, db.callbacks.c.user_id == user_id)
    assert callback.scheduled_for == at and callback.status == "pending"
    # confirmed by SMS from the AI agent; the conversation is on record, with the model call
    [confirmation] = await stack.outbound(user_id)
    assert confirmation.agent_id == stack.ai_agent_id and "call you back" in confirmation.body
    row = await stack.conversation(message_id)
    assert (row.channel, row.status) == ("triage", ContactEnd.FINISHED.value)
    assert row.agent_id == stack.ai_agent_id and row.prompt_tokens == 120
    kinds = [step.kind for step in await stack.steps(row.id)]
    assert kinds == ["claimant", "model", "tool", "assistant"]
    # the model saw the message and the time, nothing of the claimant
    sent = json.dumps(stack.model.requests[0])
    assert "Can you ring me back" in sent and f"Claimant{user_id}" not in sent
    assert stack.model.requests[0]["response_format"] == {"type": "json_object"}


async def test_a_documents_question_is_answered_with_the_missing_documents(
    stack: Triage,
) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, lender="Barclays")
    stack.model.reply_text(_answer("documents_question"))
    message_id, result = await stack.triage(user_id, "What else do you need from me?")
    assert result.action == "answered" and result.intent is TriageIntent.DOCUMENTS_QUESTION
    [answer] = await stack.outbound(user_id)
    assert "bank statements" in answer.body and "Barclays" in answer.body
    assert answer.agent_id == stack.ai_agent_id and answer.body.startswith("Hi Test,")
    row = await stack.conversation(message_id)
    assert row.status == ContactEnd.FINISHED.value and row.handoff_reason is None
    assert await stack.notes(user_id) == []


async def test_anything_else_is_left_for_a_person(stack: Triage) -> None:
    user_id = await outreach_running(stack, signed=False, pending=0)
    stack.model.reply_text(_answer("other"))
    message_id, result = await stack.triage(user_id, "My husband passed away last month")
    assert result == TriageResult(message_id, TriageIntent.OTHER, "left for a person")
    [note] = await stack.notes(user_id)
    assert note.body.startswith(triage.NOTE_PREFIX) and note.agent_id == stack.ai_agent_id
    assert "husband" not in note.body  # the person reads the message in the inbox
    [inbound] = await stack._rows(db.sms_messages, db.sms_messages.c.id == message_id)
    assert inbound.read_at is None  # unread: it waits for a person
    assert await stack.outbound(user_id) == []
    row = await stack.conversation(message_id)
    assert row.status == ContactEnd.HANDED_OFF.value
    assert row.handoff_reason == HandoffReason.COULD_NOT_HELP.value


async def test_malformed_output_twice_goes_to_a_person(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1)
    stack.model.reply_raw("They would like a call, I think.")
    stack.model.reply_raw(json.dumps({"intent": "call_me_maybe"}))
    message_id, result = await stack.triage(user_id, "call me")
    assert result.action == "left for a person" and len(stack.model.requests) == 2
    # the second attempt told the model what was wrong with the first
    correction = stack.model.requests[1]["messages"][-1]
    assert correction["role"] == "system" and "not valid JSON" in correction["content"]
    row = await stack.conversation(message_id)
    assert row.handoff_reason == HandoffReason.MODEL_FAILED.value
    steps = await stack.steps(row.id)
    assert [s.kind for s in steps] == ["claimant", "model", "model", "tool"]
    assert all(s.latency_ms is not None for s in steps if s.kind == "model")
    assert len(await stack.notes(user_id)) == 1 and await stack.outbound(user_id) == []


async def test_malformed_once_then_valid_is_acted_on(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1)
    stack.model.reply_raw("documents_question")
    stack.model.reply_text(_answer("documents_question"))
    _, result = await stack.triage(user_id, "which documents?")
    assert result.action == "answered" and len(stack.model.requests) == 2


async def test_a_callback_outside_the_calling_windows_goes_to_a_person(stack: Triage) -> None:
    user_id = await outreach_running(stack, signed=True, pending=1)
    night = bookable_time(stack.rules).astimezone(stack.rules.calling_windows.zone)
    stack.model.reply_text(_answer("callback_request", night.strftime("%Y-%m-%dT03:00")))
    _, result = await stack.triage(user_id, "call me at 3am")
    assert result.action == "left for a person"
    [note] = await stack.notes(user_id)
    assert "outside the calling windows" in note.body
    assert await stack._rows(db.callbacks, db.callbacks.c.user_id == user_id) == []
    assert await stack.outbound(user_id) == []


async def test_a_callback_request_without_a_time_goes_to_a_person(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1)
    stack.model.reply_text(_answer("callback_request"))
    _, result = await stack.triage(user_id, "can someone call me")
    assert result.action == "left for a person"
    [note] = await stack.notes(user_id)
    assert "without a time" in note.body


async def test_a_model_outage_goes_to_a_person(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1)
    stack.model.fail(503)
    message_id, result = await stack.triage(user_id, "what do you need")
    assert result.action == "left for a person" and len(stack.model.requests) == 1
    row = await stack.conversation(message_id)
    assert row.handoff_reason == HandoffReason.MODEL_FAILED.value


async def test_a_vulnerable_claimant_is_never_classified_by_the_model(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, vulnerable=True)
    _, result = await stack.triage(user_id, "what documents do you need?")
    assert result.action == "left for a person" and stack.model.requests == []
    [note] = await stack.notes(user_id)
    assert "vulnerable" in note.body


async def test_a_message_is_triaged_once(stack: Triage) -> None:
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1)
    stack.model.reply_text(_answer("other"))
    message_id, _ = await stack.triage(user_id, "hello?")
    assert not await stack.door.start_triage(TriageInput(message_id, user_id))
    assert len(stack.model.requests) == 1 and len(await stack.notes(user_id)) == 1


# --- STOP and the SMS webhook -----------------------------------------------------------------


async def _post_inbound(stack: Triage, number: str, body: str, sid: str) -> Any:
    params = {"MessageSid": sid, "From": number, "To": "+447700900000", "Body": body}
    signature = sign(stack.settings, public_url(stack.settings, INBOUND), params)
    client = stack.app.test_client()
    return await client.post(
        INBOUND,
        form=params,
        headers={"X-Twilio-Signature": signature},
        scope_base={"client": (next(_addresses), 40000)},
    )


async def _triage_started(stack: Triage, message_id: int) -> bool:
    handle = stack.h.client.get_workflow_handle(triage_workflow_id(message_id))
    try:
        await handle.describe()
    except RPCError as error:
        assert error.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def test_stop_opts_out_with_no_model_call(stack: Triage) -> None:
    number = "+447700931001"
    user_id = await outreach_running(stack, signed=False, pending=0, phone=number)
    sid = new_sid()
    response = await _post_inbound(stack, number, "STOP", sid)
    assert response.status_code == 200
    suppressions = await stack._rows(db.suppressions, db.suppressions.c.user_id == user_id)
    assert [s.reason for s in suppressions] == ["sms_stop"]
    await task_in(stack.h, user_id, None)  # the outreach workflow withdrew the task
    async with stack.h.dialler.connect() as conn:
        message_id = (await sms_outbox.inbound_by_sid(conn, sid)).message_id
    assert not await _triage_started(stack, message_id)
    # even a triage started for a STOP by mistake never asks the model
    assert await stack.door.start_triage(TriageInput(message_id, user_id))
    handle = stack.h.client.get_workflow_handle(
        triage_workflow_id(message_id), result_type=TriageResult
    )
    assert (await handle.result()).action == "left for a person"
    assert stack.model.requests == []


async def test_other_texts_from_a_claimant_start_the_triage(stack: Triage) -> None:
    number = "+447700931002"
    user_id = await add_claimant(stack.h.replica, signed=True, pending=1, phone=number)
    stack.model.reply_text(_answer("documents_question"))
    sid = new_sid()
    response = await _post_inbound(stack, number, "What do you still need?", sid)
    assert response.status_code == 200
    async with stack.h.dialler.connect() as conn:
        message_id = (await sms_outbox.inbound_by_sid(conn, sid)).message_id
    handle = stack.h.client.get_workflow_handle(
        triage_workflow_id(message_id), result_type=TriageResult
    )
    assert (await handle.result()).action == "answered"
    # Twilio repeats the webhook: stored once, triaged once
    again = await _post_inbound(stack, number, "What do you still need?", sid)
    assert again.status_code == 200
    assert len(stack.model.requests) == 1 and len(await stack.outbound(user_id)) == 1


async def test_no_triage_while_the_ais_texts_are_switched_off(stack: Triage) -> None:
    number = "+447700931077"
    await add_claimant(stack.h.replica, signed=True, pending=1, phone=number)
    sid = new_sid()
    stack.settings.ai_sms_enabled = False  # the app's own settings object
    try:
        response = await _post_inbound(stack, number, "When is my claim done?", sid)
    finally:
        stack.settings.ai_sms_enabled = True
    assert response.status_code == 200
    async with stack.h.dialler.connect() as conn:
        message_id = (await sms_outbox.inbound_by_sid(conn, sid)).message_id
    assert not await _triage_started(stack, message_id)  # left in the inbox for a person
    assert stack.model.requests == []
