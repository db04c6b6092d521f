"""A local OpenAI-compatible server for the AI agent's tests: the real `openai` client is
pointed at it through `OPENAI_BASE_URL` (openai 3.x has its own HTTP stack, so respx cannot
intercept it).

Each test scripts the replies of `POST /v1/chat/completions` in order:

    with fake_openai() as model:
        model.reply_tool("send_magic_link", {"purpose": "documents"})
        model.reply_text("I've sent you a link.")
        ... run the AI contact ...
        assert model.requests[0]["messages"][0]["role"] == "system"

A step may also be malformed output (`reply_raw`), an error status (`fail`), a refusal
(`refuse`) or a delay (`delay_seconds`, for timeouts). With the script exhausted, the server
answers 500 so a test that makes an unexpected model call fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_http import serving


@dataclass
class _Step:
    status: int = 200
    message: dict[str, Any] | None = None
    raw_content: str | None = None
    delay_seconds: float = 0.0
    prompt_tokens: int = 120
    completion_tokens: int = 30


@dataclass
class FakeModel:
    """The script and what the server received. Thread-safe: the server runs in a thread."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    _script: list[_Step] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- scripting ---------------------------------------------------------------------------

    def reply_text(self, text: str, *, delay_seconds: float = 0.0) -> FakeModel:
        return self._add(
            _Step(message={"role": "assistant", "content": text}, delay_seconds=delay_seconds)
        )

    def reply_tool(
        self, name: str, arguments: dict[str, Any], *, say: str | None = None
    ) -> FakeModel:
        """One tool call (with optional text alongside it)."""
        return self.reply_tools([(name, arguments)], say=say)

    def reply_tools(
        self, calls: list[tuple[str, dict[str, Any]]], *, say: str | None = None
    ) -> FakeModel:
        with self._lock:
            n = len(self._script)
        tool_calls = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for i, (name, arguments) in enumerate(calls)
        ]
        message = {"role": "assistant", "content": say, "tool_calls": tool_calls}
        return self._add(_Step(message=message))

    def reply_raw(self, content: str) -> FakeModel:
        """Assistant content exactly as given (e.g. malformed JSON where JSON is expected)."""
        return self._add(_Step(raw_content=content))

    def reply_tool_raw(self, name: str, raw_arguments: str) -> FakeModel:
        """A tool call whose arguments are not valid JSON (malformed model output)."""
        call = {
            "id": f"call_raw_{len(self._script)}",
            "type": "function",
            "function": {"name": name, "arguments": raw_arguments},
        }
        return self._add(
            _Step(message={"role": "assistant", "content": None, "tool_calls": [call]})
        )

    def refuse(self, text: str = "I can't help with that.") -> FakeModel:
        return self._add(_Step(message={"role": "assistant", "content": None, "refusal": text}))

    def fail(self, status: int = 500) -> FakeModel:
        return self._add(_Step(status=status))

    def hang(self, seconds: float) -> FakeModel:
        """Answer only after `seconds` (longer than the client's timeout: a timeout)."""
        return self._add(
            _Step(message={"role": "assistant", "content": "late"}, delay_seconds=seconds)
        )

    def _add(self, step: _Step) -> FakeModel:
        with self._lock:
            self._script.append(step)
        return self

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    # --- serving -------------------------------------------------------------------------

    def next_step(self, request: dict[str, Any]) -> _Step | None:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else None


def _completion(step: _Step, model: str) -> dict[str, Any]:
    message = step.message
    if message is None:
        message = {"role": "assistant", "content": step.raw_content}
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {
        "id": f"chatcmpl-fake-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        },
    }


def _handler(model: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            step = model.next_step(body)
            if step is None:
                self._send(500, {"error": {"message": "the fake model's script is exhausted"}})
                return
            if step.delay_seconds:
                time.sleep(step.delay_seconds)
            if step.status != 200:
                self._send(step.status, {"error": {"message": "scripted failure"}})
                return
            self._send(200, _completion(step, str(body.get("model", "fake"))))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and went away

    return Handler


@contextmanager
def fake_openai() -> Iterator[FakeModel]:
    """Serve a scripted model; `model.base_url` is what OPENAI_BASE_URL should say."""
    model = FakeModel()
    with serving(_handler(model)) as url:
        model.base_url = f"{url}/v1"
        yield model
