"""The OpenAPI document tells the truth: schemathesis (examples, coverage and fuzzing phases,
fixed seed, derandomized) calls every operation of /openapi.json with an agent's bearer
token and with a supervisor's, and finds no 500 and no answer outside the document
(status code, content type, body schema).

Schemathesis drives ASGI apps from a thread with an event loop of its own, while the app's
database pools, Redis client and the outreach worker live on the test's loop. `LoopBridge`
is the ASGI app schemathesis sees: it reads the request in schemathesis' loop and runs it
through the real app on the test's loop, so the app is exercised exactly as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from quart import Quart
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from schemas.enums import AgentRole, Queue
from tests.web.sms_fixtures import World, caller, claimant_in_queue, world
from web.services import EXTENSION_KEY

__all__ = ["world"]  # the module's fixture

SEED = 20261203
MAX_EXAMPLES = 20  # per operation and phase: a few minutes for the whole run
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
Message = dict[str, Any]
SIGNS_OUT = "/api/auth/logout"


class LoopBridge:
    """An ASGI app that runs each HTTP request through `app` on `loop`."""

    def __init__(self, app: Quart, loop: asyncio.AbstractEventLoop) -> None:
        self._app = app
        self._loop = loop

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":  # the real app is already serving (test_app)
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        ran = asyncio.run_coroutine_threadsafe(self._run(dict(scope), body), self._loop)
        for message in await asyncio.wrap_future(ran):
            await send(message)

    async def _run(self, scope: Message, body: bytes) -> list[Message]:
        sent: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Future()  # the client never disconnects; Quart cancels this
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await _full_allowance(self._app)
        await self._app(scope, receive, send)  # type: ignore[arg-type]
        return sent


async def _full_allowance(app: Quart) -> None:
    """Rate limits have tests of their own (test_api.py, test_auth.py); here every request
    starts with a full allowance, or schemathesis would mostly meet 429s."""
    redis = app.extensions[EXTENSION_KEY].redis
    keys = [key async for key in redis.scan_iter("ratelimit:*")]
    if keys:
        await redis.delete(*keys)


@dataclass
class Outcome:
    operations: set[str] = field(default_factory=set)
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_schemathesis(app: LoopBridge, token: str, parameters: dict[str, int]) -> Outcome:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "parameters": parameters,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
            "phases": {"stateful": {"enabled": False}},
            "workers": 1,
        }
    )
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    # signing out would revoke the very token the run uses (tested in test_tokens.py)
    schema = loaded.exclude(path=SIGNS_OUT)
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            if recorder.cases:
                outcome.operations.add(recorder.label)
            outcome.examples += len(recorder.cases)
            for checks in recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        outcome.failures.append(f"{recorder.label}: {failure.title}: {failure}")
        elif isinstance(event, events.NonFatalError):
            outcome.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            outcome.errors.append(repr(event.exception))
    return outcome


@pytest.mark.parametrize("role", [AgentRole.AGENT, AgentRole.SUPERVISOR])
async def test_schemathesis_finds_the_app_true_to_its_document(
    world: World, role: AgentRole
) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED)
    queue = Queue.UNSIGNED if role is AgentRole.AGENT else None
    token = (await caller(world, "bearer", role, queue)).token
    # long-polls (`wait` on queue/next) must end within schemathesis's 10 s read timeout
    world.services.work_waiters().longest_seconds = 1
    bridge = LoopBridge(world.app, asyncio.get_running_loop())
    # The agent's run generates claimant ids (refusals, unknown and out-of-range ids); the
    # supervisor's names a real claimant, so the claimant routes answer with their bodies.
    parameters = {"user_id": user_id} if role is AgentRole.SUPERVISOR else {}
    outcome = await asyncio.to_thread(run_schemathesis, bridge, token, parameters)
    print(  # the figures the issue asks for (shown with -s)
        f"schemathesis as {role.value}: {len(outcome.operations)} operations, "
        f"{outcome.examples} examples"
    )
    assert not outcome.errors, "\n".join(outcome.errors)
    assert not outcome.failures, "\n".join(sorted(set(outcome.failures))[:40])
    assert len(outcome.operations) >= 12 and outcome.examples > 100


async def test_the_document_states_the_edge_of_every_operation(world: World) -> None:
    spec = await (await world.app.test_client().get("/openapi.json")).get_json()
    assert all(path.startswith("/api/") for path in spec["paths"])  # pages and webhooks are not
    [parameter] = spec["paths"]["/api/claimants/{user_id}"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert {"400", "429"} <= set(responses), (method, path)
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
            if operation.get("security"):
                assert "401" in responses and {"bearerAuth": []} in operation["security"]
