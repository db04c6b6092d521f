"""The AI agent's model: any OpenAI-compatible chat completions server, through the `openai`
client. The only module that imports `openai`.

Built by the AI worker (and `dialler ai try`) from the settings and passed to whoever needs it;
no module-level client. The client does not retry (`max_retries=0`): a failed call is retried
by Temporal, so each attempt is one activity attempt in the history. A timeout, a connection
error, a 5xx or a rate limit raises `ModelUnavailable` (retryable); a 4xx the request caused
raises `ModelRejected` (retrying the same request cannot help). Neither message carries the
key, the prompt or the reply. Nothing here logs message text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionMessageParam

from config.settings import Settings

# the openai client's HTTP stack logs each request (its URL) at INFO: chatter, held at WARNING
_QUIET_LOGGERS = ("httpx2", "httpcore2", "openai")


def _quiet_vendor_loggers() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


@dataclass(frozen=True)
class ModelConfig:
    model: str
    base_url: str | None
    api_key: str
    timeout_seconds: float


def model_config(settings: Settings) -> ModelConfig | None:
    """The configured model, or None when no model is named (`Settings.ai_configured`)."""
    if not settings.ai_configured:
        return None
    base_url = str(settings.openai_base_url).rstrip("/") if settings.openai_base_url else None
    return ModelConfig(
        model=settings.openai_model.strip(),
        base_url=base_url,
        api_key=settings.openai_api_key.get_secret_value(),
        timeout_seconds=settings.openai_timeout_seconds,
    )


@dataclass(frozen=True)
class RawToolCall:
    call_id: str
    name: str
    arguments: str  # as the model sent them: may be malformed JSON


@dataclass
class ModelCompletion:
    content: str | None
    tool_calls: list[RawToolCall]
    refusal: str | None
    latency_ms: int
    prompt_tokens: int
    completion_tokens: int


class ModelUnavailable(Exception):
    """The model could not answer now (timeout, connection, 5xx, rate limit): try again."""


class ModelRejected(Exception):
    """The server refused the request itself (4xx other than a rate limit): the same
    request would be refused again."""


def _status_text(error: openai.APIStatusError) -> str:
    # only the status: the server's message can quote the prompt
    return f"the model server answered {error.status_code}"


class ChatModel:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        _quiet_vendor_loggers()
        # A keyless local server still needs a non-empty key for the client to start.
        self._client = AsyncOpenAI(
            api_key=config.api_key or "unused",
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=0,
        )

    @property
    def model(self) -> str:
        return self.config.model

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        json_object: bool = False,
    ) -> ModelCompletion:
        """One chat completion. `tools`: function tools the model may call; `json_object`:
        ask for a JSON object as the reply (triage)."""
        options: dict[str, Any] = {}
        if tools:
            options["tools"] = tools
        if json_object:
            options["response_format"] = {"type": "json_object"}
        started = time.monotonic()
        try:
            response = await self._client.chat.completions.create(
                model=self.config.model,
                # plain dicts in the chat format (`domain.ai_conversation.model_messages`)
                messages=cast(list[ChatCompletionMessageParam], messages),
                **options,
            )
        except openai.APITimeoutError:
            raise ModelUnavailable(
                f"the model did not answer within {self.config.timeout_seconds:g} s"
            ) from None
        except openai.APIConnectionError:
            raise ModelUnavailable("the model server could not be reached") from None
        except openai.RateLimitError as error:
            raise ModelUnavailable(_status_text(error)) from None
        except openai.APIStatusError as error:
            if error.status_code >= 500 or error.status_code in (408, 409):
                raise ModelUnavailable(_status_text(error)) from None
            raise ModelRejected(_status_text(error)) from None
        except openai.APIResponseValidationError:
            raise ModelUnavailable("the model server's answer was not a chat completion") from None
        latency_ms = int((time.monotonic() - started) * 1000)
        if not response.choices:
            raise ModelUnavailable("the model server's answer had no choices")
        message = response.choices[0].message
        calls = [
            RawToolCall(
                call_id=str(call.id),
                name=str(call.function.name),
                arguments=str(call.function.arguments or ""),
            )
            for call in message.tool_calls or []
            if isinstance(call, ChatCompletionMessageFunctionToolCall)  # custom tools: not ours
        ]
        usage = response.usage
        return ModelCompletion(
            content=message.content,
            tool_calls=calls,
            refusal=getattr(message, "refusal", None),
            latency_ms=latency_ms,
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
        )

    async def close(self) -> None:
        await self._client.close()
