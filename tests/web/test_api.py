"""The agent JSON API over HTTP, with a bearer token and with a session cookie + CSRF header:
every endpoint, CSRF, roles, claimants that are not yours, validation errors as JSON with
field messages, workflow refusals as 409, per-agent rate limits, and the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.sms_fixtures import (
    AuthMode,
    Caller,
    Client,
    World,
    caller,
    claimant_in_queue,
    rows,
    suppress,
    world,
)
from tests.workflows.helpers import start, task_in, task_row
from web.blueprints import api as api_blueprint

__all__ = ["world"]  # the module's fixture

MODES: list[AuthMode] = ["bearer", "cookie"]


def phone(n: int) -> str:
    return f"+4477009{n % 100000:05d}"


async def json_of(response: Any) -> Any:
    return await response.get_json()


async def claim(c: Caller, user_id: int) -> dict[str, Any]:
    response = await c.post("/api/queue/next", {})
    body = await json_of(response)
    assert response.status_code == 200, body
    assert body["task"] is not None and body["task"]["user_id"] == user_id, body
    return dict(body["task"])


# --- every endpoint, both ways of signing in ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_claim_context_sms_magic_link_and_outcome(world: World, mode: AuthMode) -> None:
    number = phone(31000 + len(mode))
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    agent = await caller(world, mode)

    depths = await json_of(await agent.get("/api/queues"))
    unsigned = next(q for q in depths["queues"] if q["queue"] == "unsigned")
    assert unsigned["ready"] == 1 and unsigned["claimed"] == 0

    task = await claim(agent, user_id)
    assert task["queue"] == "unsigned" and task["score_breakdown"]
    assert datetime.fromisoformat(task["lease_expires_at"]) > datetime.now(UTC)
    assert (await task_row(world.harness, user_id)).claimed_by == agent.staff.id

    context = await agent.get(f"/api/claimants/{user_id}")
    body = await json_of(context)
    assert context.status_code == 200, body
    assert body["claimant"]["user_id"] == user_id and body["claimant"]["phone_number"] == number
    assert body["claimant"]["opted_out"] is False
    assert body["why"]["stage"] == "unsigned" and body["why"]["factors"]
    viewed = await rows(
        world.dialler,
        db.audit_log,
        db.audit_log.c.action == "viewed_claimant",
        db.audit_log.c.subject_id == str(user_id),
    )
    assert [v.actor_id for v in viewed] == [str(agent.staff.id)]

    sms = await agent.post(f"/api/claimants/{user_id}/sms", {"body": "Calling you shortly"})
    sent = await json_of(sms)
    assert sms.status_code == 201, sent
    assert sent["provider_sid"].startswith("SMsim") and sent["status"] == "sent"

    link = await agent.post(
        f"/api/claimants/{user_id}/magic-link", {"channel": "sms", "purpose": "signature"}
    )
    created = await json_of(link)
    assert link.status_code == 201, created
    assert created["delivered_via"] == "sms" and created["link_id"] > 0
    kept = await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id)
    assert kept[0].body == "Calling you shortly" and "[link " in kept[1].body

    outcome = await agent.post(
        f"/api/claimants/{user_id}/outcome", {"disposition": "no_answer", "notes": "rang out"}
    )
    recorded = await json_of(outcome)
    assert outcome.status_code == 200, recorded
    assert recorded["user_id"] == user_id and recorded["stage"] == "unsigned"
    row = await task_row(world.harness, user_id)
    assert row.claimed_by is None


@pytest.mark.parametrize("mode", MODES)
async def test_release_and_agent_state(world: World, mode: AuthMode) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31010 + len(mode)))
    agent = await caller(world, mode)
    await claim(agent, user_id)
    released = await agent.post(f"/api/claimants/{user_id}/release", {"reason": "wrong queue"})
    body = await json_of(released)
    assert released.status_code == 200, body
    assert body["user_id"] == user_id
    await task_in(world.harness, user_id, "unsigned", "ready")

    paused = await agent.put("/api/agents/me/state", {"state": "paused", "reason": "Lunch"})
    assert paused.status_code == 200
    assert (await json_of(paused))["label"] == "Paused"
    ready = await agent.put("/api/agents/me/state", {"state": "ready"})
    assert (await json_of(ready))["state"] == "ready"
    on_call = await agent.put("/api/agents/me/state", {"state": "on_call"})
    assert (await json_of(on_call))["label"] == "On call"
    current = await json_of(await agent.get("/api/agents/me/state"))
    assert current["state"] == "on_call" and current["agent_id"] == agent.staff.id


# --- who may do what ---------------------------------------------------------------------------


STATE_CHANGING = [
    ("post", "/api/queue/next", {}),
    ("post", "/api/claimants/{u}/outcome", {"disposition": "no_answer"}),
    ("post", "/api/claimants/{u}/release", {}),
    ("post", "/api/claimants/{u}/sms", {"body": "hi"}),
    ("post", "/api/claimants/{u}/magic-link", {"purpose": "documents"}),
    ("put", "/api/agents/me/state", {"state": "ready"}),
]


async def test_cookie_calls_without_the_csrf_header_are_403(world: World) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31020))
    agent = await caller(world, "cookie", AgentRole.SUPERVISOR, Queue.UNSIGNED)
    for method, path, payload in STATE_CHANGING:
        call = agent.post if method == "post" else agent.put
        response = await call(path.format(u=user_id), payload, csrf=False)
        assert response.status_code == 403, path
        assert (await json_of(response))["error"]["code"] == "csrf_failed"
    assert (await task_row(world.harness, user_id)).status == "ready"  # nothing happened
    # a bearer token is no ambient credential: no CSRF token needed
    bot = await caller(world, "bearer", AgentRole.SUPERVISOR, Queue.UNSIGNED)
    assert (
        await bot.put("/api/agents/me/state", {"state": "ready"}, csrf=False)
    ).status_code == 200


async def test_no_credentials_or_a_forged_token_is_401(world: World) -> None:
    client = Client(world.app)
    assert (await client.post("/api/queue/next", json={})).status_code == 401
    forged = await client.get("/api/queues", headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    assert (await json_of(forged))["error"]["code"] == "not_signed_in"


async def test_agents_work_their_own_queue_only(world: World) -> None:
    agent = await caller(world, "bearer", AgentRole.AGENT, Queue.UNSIGNED)
    response = await agent.post("/api/queue/next", {"queue": "outstanding"})
    assert response.status_code == 403
    assert (await json_of(response))["error"]["code"] == "forbidden"
    unassigned = await caller(world, "bearer", AgentRole.AGENT, None)
    response = await unassigned.post("/api/queue/next")  # an empty body is fine
    assert response.status_code == 409
    assert (await json_of(response))["error"]["code"] == "no_queue"


async def test_supervisors_choose_a_queue(world: World) -> None:
    user_id = await claimant_in_queue(world, Queue.OUTSTANDING, phone=phone(31030))
    supervisor = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    missing = await supervisor.post("/api/queue/next", {})
    assert missing.status_code == 400
    assert "queue" in (await json_of(missing))["error"]["fields"]
    response = await supervisor.post("/api/queue/next", {"queue": "outstanding"})
    assert (await json_of(response))["task"]["user_id"] == user_id
    empty = await supervisor.post("/api/queue/next", {"queue": "callback"})
    body = await json_of(empty)
    assert empty.status_code == 200 and body["task"] is None and "callback" in body["message"]


async def test_a_claimant_you_have_not_claimed_is_404(world: World) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31040))
    holder = await caller(world, "bearer")
    other = await caller(world, "cookie")
    for c in (holder, other):  # before anyone claims it, and then for the one who did not
        for _, path, payload in STATE_CHANGING[1:5]:
            response = await c.post(path.format(u=user_id), payload)
            assert response.status_code == 404, (path, await json_of(response))
        assert (await c.get(f"/api/claimants/{user_id}")).status_code == 404
        if c is holder:
            await claim(holder, user_id)
    # supervisors see any claimant
    supervisor = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    assert (await supervisor.get(f"/api/claimants/{user_id}")).status_code == 200
    # but record outcomes only for claims of their own
    outcome = await supervisor.post(
        f"/api/claimants/{user_id}/outcome", {"disposition": "no_answer"}
    )
    assert outcome.status_code == 404


async def test_ai_agents_never_get_people_only_claimants(world: World) -> None:
    await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31050), vulnerable=True)
    robot = await caller(world, "bearer", is_ai=True)
    response = await json_of(await robot.post("/api/queue/next"))
    assert response["task"] is None
    # an AI voice needs automated-call consent (PECR 19) as well as live-call consent
    await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31052))  # live calls only
    response = await json_of(await robot.post("/api/queue/next"))
    assert response["task"] is None
    user_id = await claimant_in_queue(
        world, Queue.UNSIGNED, phone=phone(31051), consents=("live_call", "automated_call")
    )
    task = await claim(robot, user_id)
    assert task["user_id"] == user_id


# --- errors --------------------------------------------------------------------------------------


async def test_validation_errors_are_json_with_field_messages(world: World) -> None:
    # a supervisor, who may see every claimant: an agent is refused claimant 1 (404) first
    agent = await caller(world, "bearer", AgentRole.SUPERVISOR, None)

    async def fields(method: str, path: str, payload: Any, **kwargs: Any) -> dict[str, str]:
        call = agent.client.post if method == "post" else agent.client.put
        response = await call(path, headers=agent.headers(), **({"json": payload} | kwargs))
        body = await json_of(response)
        assert response.status_code == 400, body
        assert body["error"]["code"] == "validation_error"
        return dict(body["error"]["fields"])

    assert "disposition" in await fields("post", "/api/claimants/1/outcome", {"disposition": "x"})
    assert "disposition" in await fields("post", "/api/claimants/1/outcome", {})
    naive = {"disposition": "callback_requested", "callback_at": "2030-01-01T10:00:00"}
    assert "callback_at" in await fields("post", "/api/claimants/1/outcome", naive)
    assert "call_id" in await fields(
        "post", "/api/claimants/1/outcome", {"disposition": "busy", "call_id": "first"}
    )
    assert "surprise" in await fields(
        "post", "/api/claimants/1/release", {"reason": "x", "surprise": 1}
    )
    assert "body" in await fields("post", "/api/claimants/1/sms", {"body": "   "})
    assert "body" in await fields("post", "/api/claimants/1/sms", {"body": "x" * 1601})
    assert "purpose" in await fields("post", "/api/claimants/1/magic-link", {"purpose": "win"})
    assert "channel" in await fields(
        "post", "/api/claimants/1/magic-link", {"purpose": "documents", "channel": "fax"}
    )
    assert "queue" in await fields("post", "/api/queue/next", {"queue": "vip"})
    assert "reason" in await fields("put", "/api/agents/me/state", {"state": "paused"})
    assert "state" in await fields("put", "/api/agents/me/state", {"state": "dancing"})
    assert "body" in await fields("post", "/api/claimants/1/sms", ["not", "an", "object"])
    # not JSON at all: still a JSON 400, never a 500
    broken = await agent.client.post(
        "/api/claimants/1/sms",
        headers=agent.headers() | {"Content-Type": "application/json"},
        data="{not json",
    )
    assert broken.status_code == 400
    assert "error" in await json_of(broken)


async def test_workflow_refusals_are_409_with_the_reason(world: World) -> None:
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=phone(31060))
    agent = await caller(world, "cookie")
    await claim(agent, user_id)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    response = await agent.post(
        f"/api/claimants/{user_id}/outcome",
        {"disposition": "callback_requested", "callback_at": past},
    )
    body = await json_of(response)
    assert response.status_code == 409, body
    assert body["error"]["code"] == "refused"
    assert "callback must be in the future" in body["error"]["message"]
    # no running workflow for a claimant: a 409 that says so, not a 500
    supervisor = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    idle = await add_claimant(world.replica, phone=phone(31061))
    response = await supervisor.post(f"/api/claimants/{idle}/magic-link", {"purpose": "documents"})
    assert response.status_code == 409
    assert "no outreach running" in (await json_of(response))["error"]["message"]


async def test_opted_out_claimants_cannot_be_texted_or_sent_links(world: World) -> None:
    number = phone(31070)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    supervisor = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    await suppress(world, "sms_stop", user_id=user_id, phone_number=number)
    for path, payload in (
        (f"/api/claimants/{user_id}/sms", {"body": "hello"}),
        (f"/api/claimants/{user_id}/magic-link", {"purpose": "signature", "channel": "email"}),
    ):
        response = await supervisor.post(path, payload)
        body = await json_of(response)
        assert response.status_code == 409, body
        assert body["error"]["code"] == "opted_out" and "opted out" in body["error"]["message"]
    context = await json_of(await supervisor.get(f"/api/claimants/{user_id}"))
    assert context["claimant"]["opted_out"] is True
    async with world.dialler.connect() as conn:
        sent = await conn.scalar(
            select(db.sms_messages.c.id).where(db.sms_messages.c.user_id == user_id)
        )
    assert sent is None


async def test_each_agent_has_limits_of_their_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The per-agent limit, made small enough to reach with sequential requests.
    monkeypatch.setattr(api_blueprint.AGENT_PER_SECOND_LIMIT, "count", 2)
    busy, calm = await caller(world, "bearer"), await caller(world, "bearer")
    calm.client = busy.client  # the same address: the limit that bites is the agent's own
    statuses = [(await busy.get("/api/agents/me/state")).status_code for _ in range(6)]
    assert statuses[:2] == [200, 200] and 429 in statuses
    limited = await busy.get("/api/agents/me/state")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 0
    assert (await json_of(limited))["error"]["code"] == "rate_limited"
    assert (await calm.get("/api/agents/me/state")).status_code == 200


# --- documentation ----------------------------------------------------------------------------


async def test_the_api_is_documented(world: World) -> None:
    client = Client(world.app)
    spec = await json_of(await client.get("/openapi.json"))
    expected = {
        ("post", "/api/queue/next"),
        ("post", "/api/claimants/{user_id}/outcome"),
        ("post", "/api/claimants/{user_id}/release"),
        ("get", "/api/claimants/{user_id}"),
        ("post", "/api/claimants/{user_id}/sms"),
        ("post", "/api/claimants/{user_id}/magic-link"),
        ("get", "/api/queues"),
        ("get", "/api/agents/me/state"),
        ("put", "/api/agents/me/state"),
    }
    for method, path in expected:
        operation = spec["paths"][path][method]
        assert operation["tags"] and operation["summary"], (method, path)
        assert {"bearerAuth": []} in operation["security"]
        assert "400" in operation["responses"] and "401" in operation["responses"]
        if method in ("post", "put") and not path.endswith("/next"):
            assert "requestBody" in operation, (method, path)
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert (await client.get("/docs")).status_code == 200


async def test_a_claimant_without_live_call_consent_is_never_offered(world: World) -> None:
    """PECR 21A over HTTP: the claimant is in the unsigned queue by the seed's rules, but
    without live-call consent no agent is offered them, and the API says why."""
    user_id = await add_claimant(world.replica, signed=False, pending=1, consents=())
    await start(world.harness, user_id)
    row = await task_in(world.harness, user_id, None)
    assert row.queue == "unsigned" and row.not_before_reason.startswith("no live-call consent")
    async with world.dialler.begin() as conn:  # nobody else is ready: only they could be
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.status == "ready")
            .values(status="withdrawn")
        )
    agent = await caller(world, "bearer")
    response = await json_of(await agent.post("/api/queue/next"))
    assert response["task"] is None
    supervisor = await caller(world, "bearer", AgentRole.SUPERVISOR, None)
    context = await json_of(await supervisor.get(f"/api/claimants/{user_id}"))
    assert context["why"]["not_before"] is None
    assert context["why"]["reason"].startswith("no live-call consent (PECR 21A)")
