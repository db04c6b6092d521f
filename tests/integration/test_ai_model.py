"""The AI model adapter: the real `openai` client against the scripted OpenAI-compatible fake
server (tool calls, malformed arguments, refusals, outages and timeouts)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import AnyHttpUrl, SecretStr

from adapters.ai_model import (
    ChatModel,
    ModelConfig,
    ModelRejected,
    ModelUnavailable,
    RawToolCall,
    model_config,
)
from config.settings import Settings
from domain.ai_conversation import TOOLS
from tests.fake_openai import FakeModel, fake_openai

SECRET_KEY = "sk-test-secret-0123456789"


@pytest.fixture
def model() -> Iterator[FakeModel]:
    with fake_openai() as fake:
        yield fake


@pytest.fixture
async def chat(model: FakeModel) -> AsyncIterator[ChatModel]:
    client = ChatModel(ModelConfig("fake-model", model.base_url, SECRET_KEY, 2.0))
    yield client
    await client.close()


MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_no_model_named_means_no_config(settings: Settings) -> None:
    assert model_config(settings.model_copy(update={"openai_model": "  "})) is None
    configured = settings.model_copy(
        update={
            "openai_model": "gpt-test",
            "openai_base_url": AnyHttpUrl("http://127.0.0.1:9/v1/"),
            "openai_api_key": SecretStr(""),
            "openai_timeout_seconds": 3.5,
        }
    )
    assert model_config(configured) == ModelConfig("gpt-test", "http://127.0.0.1:9/v1", "", 3.5)


async def test_a_text_reply_with_its_usage(chat: ChatModel, model: FakeModel) -> None:
    model.reply_text("Hello there")
    completion = await chat.complete(MESSAGES, tools=TOOLS)
    assert completion.content == "Hello there"
    assert completion.tool_calls == [] and completion.refusal is None
    assert (completion.prompt_tokens, completion.completion_tokens) == (120, 30)
    assert completion.latency_ms >= 0
    [request] = model.requests
    assert request["model"] == "fake-model"
    assert request["messages"] == MESSAGES
    assert [t["function"]["name"] for t in request["tools"]] == [
        t["function"]["name"] for t in TOOLS
    ]
    assert "response_format" not in request


async def test_tool_calls_come_back_as_sent(chat: ChatModel, model: FakeModel) -> None:
    model.reply_tools(
        [("send_magic_link", {"purpose": "documents", "channel": "sms"}), ("claim_context", {})],
        say="One moment",
    )
    model.reply_tool_raw("record_outcome", '{"outcome": "completed", ')
    first = await chat.complete(MESSAGES, tools=TOOLS)
    assert first.content == "One moment"
    assert [(c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
        ("send_magic_link", {"purpose": "documents", "channel": "sms"}),
        ("claim_context", {}),
    ]
    second = await chat.complete(MESSAGES, tools=TOOLS)
    assert second.tool_calls == [
        RawToolCall(second.tool_calls[0].call_id, "record_outcome", '{"outcome": "completed", ')
    ]


async def test_a_refusal(chat: ChatModel, model: FakeModel) -> None:
    model.refuse("I can't help with that.")
    completion = await chat.complete(MESSAGES)
    assert completion.refusal == "I can't help with that." and completion.content is None


async def test_json_object_replies(chat: ChatModel, model: FakeModel) -> None:
    model.reply_raw('{"intent": "other"}')
    completion = await chat.complete(MESSAGES, json_object=True)
    assert completion.content == '{"intent": "other"}'
    assert model.requests[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_outage_is_unavailable_without_retries(
    chat: ChatModel, model: FakeModel, status: int
) -> None:
    model.fail(status)
    with pytest.raises(ModelUnavailable) as raised:
        await chat.complete(MESSAGES)
    assert str(status) in str(raised.value)
    assert len(model.requests) == 1  # Temporal retries, not the client
    assert SECRET_KEY not in str(raised.value)


async def test_a_bad_request_is_rejected(chat: ChatModel, model: FakeModel) -> None:
    model.fail(400)
    with pytest.raises(ModelRejected):
        await chat.complete(MESSAGES)


async def test_a_timeout_is_unavailable(model: FakeModel) -> None:
    client = ChatModel(ModelConfig("fake-model", model.base_url, "", 0.3))
    model.hang(2.0)
    try:
        with pytest.raises(ModelUnavailable, match="did not answer"):
            await client.complete(MESSAGES)
    finally:
        await client.close()


async def test_an_unreachable_server_is_unavailable() -> None:
    client = ChatModel(ModelConfig("fake-model", "http://127.0.0.1:9/v1", "", 1.0))
    try:
        with pytest.raises(ModelUnavailable, match="could not be reached"):
            await client.complete(MESSAGES)
    finally:
        await client.close()
