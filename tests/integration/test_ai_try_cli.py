"""`dialler ai try USER_ID` through click's CliRunner against the real databases and the
scripted fake model: the operator types the claimant's replies; the model's tool calls are
checked with the real rules and shown, never carried out; malformed output gets one retry;
STOP never reaches the model; no model configured is a clear error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cli.main import main
from schemas import dialler_db as db
from tests.conftest import REDIS_URL
from tests.factories import add_claimant, set_user
from tests.fake_openai import FakeModel, fake_openai

T = TypeVar("T")


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with fake_openai() as fake:
        yield fake


@pytest.fixture
def env(migrated_pg: str, replica_db: str, model: FakeModel) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": migrated_pg,
        "REPLICA_DATABASE_URL": replica_db,
        "REDIS_URL": REDIS_URL,
        "OPENAI_MODEL": "fake-model",
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_TIMEOUT_SECONDS": "5",
    }


def _on(url: str, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` on its own engine and loop (the command runs its own loop, as from a
    shell)."""

    async def go() -> T:
        engine = create_async_engine(url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _claimant(env: dict[str, str], **values: Any) -> int:
    async def add(engine: AsyncEngine) -> int:
        user_id = await add_claimant(engine, **values)
        await set_user(engine, user_id, first_name="Dafydd")
        return user_id

    return _on(env["REPLICA_DATABASE_URL"], add)


def _rows(env: dict[str, str], table: Any, user_id: int) -> int:
    async def count(engine: AsyncEngine) -> int:
        async with engine.connect() as conn:
            found = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.user_id == user_id)
            )
            return int(found or 0)

    return _on(env["DATABASE_URL"], count)


def _try(env: dict[str, str], user_id: int, typed: str, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["ai", "try", str(user_id), *args], env=env, input=typed, catch_exceptions=False
    )


def test_a_conversation_shows_the_tools_without_using_them(
    env: dict[str, str], model: FakeModel
) -> None:
    user_id = _claimant(env, signed=True, pending=1, consents=("live_call", "sms"))
    model.reply_tool("claim_context", {})
    model.reply_text("We still need your bank statements.")
    model.reply_tool(
        "send_magic_link", {"purpose": "documents", "channel": "sms"}, say="I'll text you a link."
    )
    model.reply_text("Done: check your phone.")  # told the tool's result
    model.reply_tool("send_magic_link", {"purpose": "documents", "channel": "sms"})
    model.reply_text("I've already sent it: please check your messages.")

    result = _try(env, user_id, "what do you need?\nsend me the link\nagain please\n\n")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "AI: Hi Dafydd, this is the automated assistant of Resolve My Claim." in out
    assert "Reply STOP to opt out" in out
    assert "tool claim_context: looked up the claimant's claims" in out
    assert "AI: We still need your bank statements." in out
    assert "would send a magic link for documents by sms (not done)" in out
    assert "tool send_magic_link refused: A link was already sent" in out
    assert "AI: Done: check your phone." in out
    assert "AI: I've already sent it" in out
    assert "HTTP Request" not in result.output
    assert "120 + 30 tokens" in out
    assert "(conversation ended)" in out
    assert model.remaining == 0

    first, second, *_, last = model.requests
    system = first["messages"][0]["content"]
    assert "Dafydd" in system and "Santander" in system and "bank statements" in system
    assert {t["function"]["name"] for t in first["tools"]} >= {"send_magic_link", "hand_off"}
    tool_answer = second["messages"][-1]
    assert tool_answer["role"] == "tool" and "bank statements" in tool_answer["content"]
    assert last["messages"][-1]["content"].startswith("Refused: A link was already sent")
    everything = json.dumps(model.requests)
    assert f"Claimant{user_id}" not in everything and "@example.com" not in everything

    # nothing was sent or kept
    assert _rows(env, db.sms_messages, user_id) == 0
    assert _rows(env, db.ai_conversations, user_id) == 0
    assert _rows(env, db.magic_links, user_id) == 0


def test_malformed_output_is_retried_once_then_a_person(
    env: dict[str, str], model: FakeModel
) -> None:
    user_id = _claimant(env, signed=False)
    model.reply_tool_raw("record_outcome", '{"outcome": ')
    model.reply_tool("record_outcome", {"outcome": "maybe", "note": "x"})
    result = _try(env, user_id, "hello\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("malformed output") == 2
    assert "malformed twice: a person would take over" in result.stdout
    correction = model.requests[1]["messages"][-1]
    assert correction["role"] == "system" and "not valid JSON" in correction["content"]


def test_an_outcome_ends_the_conversation(env: dict[str, str], model: FakeModel) -> None:
    user_id = _claimant(env, signed=True, pending=2)
    model.reply_tool("record_outcome", {"outcome": "promised_documents", "note": "posting"})
    result = _try(env, user_id, "I'll post them\nnever read\n")
    assert result.exit_code == 0, result.output
    assert "would record the outcome promised_documents (posting) (not done)" in result.stdout
    assert "(outcome promised_documents recorded)" in result.stdout
    assert len(model.requests) == 1


def test_stop_never_reaches_the_model(env: dict[str, str], model: FakeModel) -> None:
    user_id = _claimant(env, signed=False)
    result = _try(env, user_id, "stop\n")
    assert result.exit_code == 0, result.output
    assert "STOP: the claimant is opted out by the fixed rules" in result.stdout
    assert model.requests == []


def test_a_model_outage_exits_1(env: dict[str, str], model: FakeModel) -> None:
    user_id = _claimant(env, signed=False)
    model.fail(503)
    result = _try(env, user_id, "hello\n")
    assert result.exit_code == 1
    assert "the model server answered 503" in result.output


def test_no_model_configured_is_a_clear_error(env: dict[str, str], model: FakeModel) -> None:
    result = _try({**env, "OPENAI_MODEL": "   "}, 1, "hello\n")
    assert result.exit_code == 2
    assert "no AI model configured" in result.output and "OPENAI_MODEL" in result.output
    assert model.requests == []


def test_an_unknown_claimant(env: dict[str, str], model: FakeModel) -> None:
    result = _try(env, 987_654_321, "hello\n")
    assert result.exit_code == 2
    assert "claimant 987654321 is not in the replica" in result.output
    assert model.requests == []
