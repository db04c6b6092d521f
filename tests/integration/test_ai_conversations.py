"""The owner of `ai_conversations` and `ai_steps` against the real (migrated) PostgreSQL:
a conversation opened once per workflow, steps in order (NUL characters dropped), a close
that sums the tokens once, the routing policy's hourly counts and exclusion, and the end of
retention deleting what was said."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import ai_conversations as store
from schemas import dialler_db as db
from tests.factories import next_id


def _workflow() -> str:
    return f"ai-contact-test-{uuid.uuid4().hex}"


async def _agent(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=f"{uuid.uuid4().hex}@ai.test", display_name="AI", role="agent")
            .returning(db.agents.c.id)
        )
    assert agent_id is not None
    return int(agent_id)


async def _open(
    engine: AsyncEngine,
    user_id: int,
    *,
    channel: str = "sms",
    queue: str | None = "outstanding",
    workflow_id: str | None = None,
) -> int:
    async with engine.begin() as conn:
        return await store.open_conversation(
            conn,
            user_id=user_id,
            agent_id=None,
            channel=channel,
            queue=queue,
            workflow_id=workflow_id or _workflow(),
        )


async def _started_at(engine: AsyncEngine, conversation_id: int, at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(db.ai_conversations)
            .where(db.ai_conversations.c.id == conversation_id)
            .values(started_at=at)
        )


async def test_a_conversation_is_opened_once_per_workflow(dialler_db: AsyncEngine) -> None:
    user_id, workflow_id = next_id(), _workflow()
    agent_id = await _agent(dialler_db)
    async with dialler_db.begin() as conn:
        first = await store.open_conversation(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            channel="voice",
            queue="unsigned",
            workflow_id=workflow_id,
        )
    async with dialler_db.begin() as conn:
        again = await store.open_conversation(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            channel="voice",
            queue="unsigned",
            workflow_id=workflow_id,
        )
        row = await store.conversation_by_id(conn, first)
    assert again == first
    assert row is not None
    assert (row.user_id, row.agent_id, row.channel, row.queue, row.status) == (
        user_id,
        agent_id,
        "voice",
        "unsigned",
        "active",
    )
    assert row.ended_at is None and row.turns == 0


async def test_steps_come_back_in_order_without_nul(dialler_db: AsyncEngine) -> None:
    conversation_id = await _open(dialler_db, next_id())
    other = await _open(dialler_db, next_id())
    async with dialler_db.begin() as conn:
        await store.add_step(conn, conversation_id, "assistant", "Hello")
        await store.add_step(conn, conversation_id, "claimant", "hi\x00 there")
        await store.add_step(
            conn,
            conversation_id,
            "model",
            None,
            detail={"tool_calls": [{"name": "claim_context", "arguments": "{\x00}"}]},
            latency_ms=420,
            prompt_tokens=100,
            completion_tokens=20,
        )
        await store.add_step(
            conn,
            conversation_id,
            "tool",
            "Refused: already sent",
            tool_name="send_magic_link",
            detail={"arguments": {"purpose": "documents"}, "refused": True},
        )
        steps = await store.steps_of(conn, [conversation_id, other, 10**12])
    assert set(steps) == {conversation_id, other, 10**12}
    assert steps[other] == [] and steps[10**12] == []
    mine = steps[conversation_id]
    assert [s.kind for s in mine] == ["assistant", "claimant", "model", "tool"]
    assert mine[1].text == "hi there"
    assert mine[2].detail == {"tool_calls": [{"name": "claim_context", "arguments": "{}"}]}
    assert (mine[2].latency_ms, mine[2].prompt_tokens, mine[2].completion_tokens) == (420, 100, 20)
    assert mine[3].tool_name == "send_magic_link" and mine[3].detail is not None
    assert mine[3].detail["refused"] is True


async def test_a_keyed_step_is_recorded_once(dialler_db: AsyncEngine) -> None:
    conversation_id = await _open(dialler_db, next_id())
    async with dialler_db.begin() as conn:
        first = await store.add_step_once(conn, conversation_id, "step:1", "claimant", "yes")
    async with dialler_db.begin() as conn:
        again = await store.add_step_once(conn, conversation_id, "step:1", "claimant", "yes")
        other = await store.add_step_once(conn, conversation_id, "step:2", "assistant", "ok")
        steps = (await store.steps_of(conn, [conversation_id]))[conversation_id]
        found = await store.step_with_key(conn, conversation_id, "step:2")
        missing = await store.step_with_key(conn, conversation_id, "step:3")
    assert again == first and other != first
    assert [s.text for s in steps] == ["yes", "ok"]
    assert found is not None and found.id == other and missing is None


async def test_closing_sums_the_tokens_once(dialler_db: AsyncEngine) -> None:
    conversation_id = await _open(dialler_db, next_id())
    async with dialler_db.begin() as conn:
        for prompt, completion in ((100, 20), (150, 35)):
            await store.add_step(
                conn,
                conversation_id,
                "model",
                None,
                latency_ms=300,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
        await store.add_step(conn, conversation_id, "claimant", "ok")
        await store.close_conversation(
            conn,
            conversation_id,
            status="handed_off",
            disposition=None,
            handoff_reason="asked_for_person",
            summary="Wants to talk to someone about the fee.",
            turns=2,
        )
    async with dialler_db.begin() as conn:
        # a retried close (or a late one) changes nothing
        await store.close_conversation(
            conn,
            conversation_id,
            status="finished",
            disposition="completed",
            handoff_reason=None,
            summary="other",
            turns=9,
        )
        row = await store.conversation_by_id(conn, conversation_id)
    assert row is not None
    assert (row.status, row.disposition, row.handoff_reason, row.turns) == (
        "handed_off",
        None,
        "asked_for_person",
        2,
    )
    assert row.summary == "Wants to talk to someone about the fee."
    assert (row.prompt_tokens, row.completion_tokens) == (250, 55)
    assert row.ended_at is not None


async def test_a_close_with_an_unknown_status_is_refused(dialler_db: AsyncEngine) -> None:
    conversation_id = await _open(dialler_db, next_id())
    async with dialler_db.begin() as conn:
        with pytest.raises(ValueError):
            await store.close_conversation(
                conn,
                conversation_id,
                status="exploded",
                disposition=None,
                handoff_reason=None,
                summary="",
                turns=0,
            )
        with pytest.raises(ValueError):
            await store.close_conversation(
                conn,
                conversation_id,
                status="handed_off",
                disposition=None,
                handoff_reason="felt like it",
                summary="",
                turns=0,
            )


async def test_the_active_conversation_and_the_claimants_list(dialler_db: AsyncEngine) -> None:
    user_id = next_id()
    old = await _open(dialler_db, user_id, channel="sms")
    await _started_at(dialler_db, old, datetime.now(UTC) - timedelta(days=2))
    async with dialler_db.begin() as conn:
        await store.close_conversation(
            conn,
            old,
            status="no_contact",
            disposition="no_answer",
            handoff_reason=None,
            summary="",
            turns=0,
        )
    live = await _open(dialler_db, user_id, channel="sms")
    call = await _open(dialler_db, user_id, channel="voice")
    async with dialler_db.connect() as conn:
        active = await store.active_conversation(conn, user_id, "sms")
        none_by_email = await store.active_conversation(conn, user_id, "triage")
        listed = await store.conversations_for_user(conn, user_id)
        limited = await store.conversations_for_user(conn, user_id, limit=1)
    assert active is not None and active.id == live
    assert none_by_email is None
    assert [c.id for c in listed] == [call, live, old]
    assert [c.id for c in limited] == [call]


async def test_attach_call(dialler_db: AsyncEngine) -> None:
    user_id = next_id()
    conversation_id = await _open(dialler_db, user_id, channel="voice")
    async with dialler_db.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id, provider="twilio", to_number="+447700900123")
            .returning(db.calls.c.id)
        )
        assert call_id is not None
        await store.attach_call(conn, conversation_id, int(call_id))
        row = await store.conversation_by_id(conn, conversation_id)
    assert row is not None and row.call_id == call_id


async def test_contacts_started_in_the_last_hour_by_queue(dialler_db: AsyncEngine) -> None:
    # a moment of its own, far from other tests' conversations (all started "now")
    now = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)
    cases = [
        ("voice", "unsigned", now - timedelta(minutes=5)),
        ("sms", "unsigned", now - timedelta(minutes=59)),
        ("sms", "outstanding", now),  # the end of the hour counts
        ("voice", "outstanding", now - timedelta(hours=1)),  # its start does not
        ("triage", None, now - timedelta(minutes=1)),  # not a contact
        ("sms", "callback", now + timedelta(seconds=1)),  # not yet
    ]
    for channel, queue, at in cases:
        conversation_id = await _open(dialler_db, next_id(), channel=channel, queue=queue)
        await _started_at(dialler_db, conversation_id, at)
    async with dialler_db.connect() as conn:
        counts = await store.started_last_hour(conn, now)
    assert counts == {"unsigned": 2, "outstanding": 1}


async def test_a_sensitive_hand_off_makes_the_claimant_people_only(
    dialler_db: AsyncEngine,
) -> None:
    sensitive, asked = next_id(), next_id()
    for user_id, reason in ((sensitive, "sensitive"), (asked, "asked_for_person")):
        conversation_id = await _open(dialler_db, user_id)
        async with dialler_db.begin() as conn:
            await store.close_conversation(
                conn,
                conversation_id,
                status="handed_off",
                disposition=None,
                handoff_reason=reason,
                summary="",
                turns=1,
            )
    async with dialler_db.connect() as conn:
        assert await store.excluded_reason(conn, sensitive) == (
            "a complaint, bereavement or vulnerability raised with the AI"
        )
        assert await store.excluded_reason(conn, asked) is None
        assert await store.excluded_reason(conn, next_id()) is None


async def test_retention_deletes_what_was_said_once(dialler_db: AsyncEngine) -> None:
    cutoff = datetime(2020, 1, 1, tzinfo=UTC)
    expired = await _open(dialler_db, next_id())
    kept = await _open(dialler_db, next_id())
    await _started_at(dialler_db, expired, cutoff - timedelta(days=1))
    async with dialler_db.begin() as conn:
        for conversation_id in (expired, kept):
            await store.add_step(conn, conversation_id, "claimant", "my bank is Barclays")
            await store.add_step(
                conn,
                conversation_id,
                "tool",
                "A colleague will take over.",
                tool_name="hand_off",
                detail={"arguments": {"summary": "bereaved"}},
            )
            await store.add_step(
                conn, conversation_id, "model", None, latency_ms=5, prompt_tokens=7
            )
    async with dialler_db.begin() as conn:
        deleted = await store.delete_transcripts_before(conn, cutoff)
    async with dialler_db.begin() as conn:
        again = await store.delete_transcripts_before(conn, cutoff)
        steps = await store.steps_of(conn, [expired, kept])
        expired_row = await store.conversation_by_id(conn, expired)
        kept_row = await store.conversation_by_id(conn, kept)
    assert deleted >= 1 and again == 0
    assert [(s.kind, s.text, s.detail) for s in steps[expired]] == [
        ("claimant", None, None),
        ("tool", None, None),
        ("model", None, None),
    ]
    assert steps[expired][2].latency_ms == 5 and steps[expired][2].prompt_tokens == 7
    kept_text = [s.text for s in steps[kept]]
    assert kept_text == ["my bank is Barclays", "A colleague will take over.", None]
    assert expired_row is not None and expired_row.transcript_deleted_at is not None
    assert kept_row is not None and kept_row.transcript_deleted_at is None
