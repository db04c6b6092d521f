"""A meta-test over the whole route table (`app.url_map`), so a route added later cannot slip
through: every route declares who may use it, every route is rate limited, every route
that changes state is CSRF-protected, a signature-checked webhook, or public with a reason,
and every route that names a claimant (or a call to one) declares the claimant rule.
The declarations are checked statically and then exercised: requests without a CSRF token
or without a Twilio signature are refused before any view runs, and every claimant route
refuses an agent of another queue while the claim's holder and supervisors get through;
a caller-only route (a call's recording) refuses with 403 even an agent who may see the
claimant but did not make the call; and every claimant view an allowed agent opens writes
an audit row naming its route. And a route that declares nothing is refused (it fails
closed)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart_rate_limiter import QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, RateLimiter
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from werkzeug.routing import Rule
from werkzeug.routing.converters import NumberConverter

from adapters.recording_store import local_key_for, write_tone
from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, Staff, csrf_from, make_staff, sign_in
from web import create_app
from web.auth.access import STATE_CHANGING, Access, access_of
from web.auth.claimants import CLAIMANT_ARGUMENTS, VIEWED, claimant_scope_of
from web.auth.tokens import issue_api_token
from web.ratelimit import RedisRateLimitStore
from web.services import EXTENSION_KEY

_addresses = (f"10.99.{i // 250}.{i % 250 + 1}" for i in itertools.count())


def routes(app: Quart) -> Iterator[tuple[Rule, Callable[..., Any], Access | None]]:
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        yield rule, view, access_of(view)


def changes_state(rule: Rule) -> bool:
    return bool((rule.methods or set()) & STATE_CHANGING)


def example_path(app: Quart, rule: Rule) -> str:
    """A concrete URL for the rule (1 for numbers, a plausible token for the rest)."""
    values = {
        name: 1 if isinstance(rule._converters[name], NumberConverter) else "x" * 43
        for name in rule.arguments
    }
    return str(app.url_map.bind("localhost").build(rule.endpoint, values))


def limiter_of(app: Quart) -> RateLimiter:
    for hook in app.before_request_funcs[None]:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, RateLimiter):
            return owner
    raise AssertionError("no rate limiter installed")


def scope() -> dict[str, Any]:
    return {"client": (next(_addresses), 40000)}


def test_the_route_table_is_not_empty(app: Quart) -> None:
    endpoints = {rule.endpoint for rule, _, _ in routes(app)}
    assert {"sms.inbox", "webhooks_sms.sms_inbound", "api.next_call", "auth.login"} <= endpoints


def test_every_route_declares_its_access(app: Quart) -> None:
    undeclared = [rule.rule for rule, _, access in routes(app) if access is None]
    assert undeclared == []
    for rule, _, access in routes(app):
        assert access is not None
        if access.kind in ("public", "webhook"):
            assert len(access.reason.split()) >= 3, f"{rule.rule}: say why it is {access.kind}"
        else:
            assert access.roles, f"{rule.rule}: no role may use it"


def test_every_route_is_rate_limited_in_redis(app: Quart) -> None:
    limiter = limiter_of(app)
    assert limiter._default_rate_limits, "the limiter has no default limits"
    assert isinstance(limiter.store, RedisRateLimitStore)
    for rule, view, _ in routes(app):
        assert not getattr(view, QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, False), rule.rule
        blueprint = app.blueprints.get(rule.endpoint.rpartition(".")[0])
        assert limiter._get_limits_for_view_function(view, blueprint), rule.rule


def test_every_state_changing_route_is_protected(app: Quart) -> None:
    for rule, _, access in routes(app):
        if not changes_state(rule):
            continue
        assert access is not None
        if access.kind in ("staff", "api"):
            assert access.csrf, f"{rule.rule}: a signed-in route that changes state needs CSRF"
        elif access.kind == "public":
            assert access.csrf or access.reason, f"{rule.rule}: public and unprotected, why?"


async def test_state_changing_staff_routes_refuse_a_missing_csrf_token(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    clients = {}
    for role in AgentRole:
        staff = await make_staff(dialler_db, role)
        client = app.test_client()
        assert await sign_in(client, staff) == 303
        clients[role] = client
    checked = 0
    for rule, _, access in routes(app):
        if not changes_state(rule) or access is None or access.kind not in ("staff", "api"):
            continue
        role = next(r for r in AgentRole if r in access.roles)
        for method in sorted((rule.methods or set()) & STATE_CHANGING):
            response = await clients[role].open(
                example_path(app, rule), method=method, json={}, scope_base=scope()
            )
            assert response.status_code == 403, (method, rule.rule)
            body = await response.get_json()
            assert body["error"]["code"] == "csrf_failed", (method, rule.rule, body)
            checked += 1
    assert checked >= 10


async def test_webhooks_refuse_unsigned_and_forged_requests(app: Quart) -> None:
    webhooks = [rule for rule, _, access in routes(app) if access and access.kind == "webhook"]
    assert {r.rule for r in webhooks} >= {
        "/webhooks/twilio/sms-inbound",
        "/webhooks/twilio/sms-status",
    }
    client = app.test_client()
    for rule in webhooks:
        path = example_path(app, rule)
        form = {"MessageSid": "SM" + "0" * 32, "CallSid": "CA" + "0" * 32, "From": "+447700900123"}
        for headers in ({}, {"X-Twilio-Signature": "Zm9yZ2VkIHNpZ25hdHVyZQ=="}):
            response = await client.post(path, form=form, headers=headers, scope_base=scope())
            assert response.status_code == 403, rule.rule
            assert (await response.get_json())["error"]["code"] == "bad_signature"


@pytest.fixture
async def app_with_an_undeclared_route(web_settings: Settings) -> Any:
    application = create_app(web_settings)

    async def forgotten() -> str:
        return "should never be served"

    application.add_url_rule("/forgotten", "forgotten", forgotten, methods=["GET", "POST"])
    async with application.test_app():
        yield application


async def test_an_undeclared_route_is_refused(
    app_with_an_undeclared_route: Quart, dialler_db: AsyncEngine
) -> None:
    app = app_with_an_undeclared_route
    assert [r.rule for r, _, a in routes(app) if a is None] == ["/forgotten"]
    client = app.test_client()
    admin = await make_staff(dialler_db, AgentRole.ADMIN)
    assert await sign_in(client, admin) == 303  # even for an admin
    for send in (client.get, client.post):
        response = await send("/forgotten", scope_base=scope())
        assert response.status_code == 403
        body = await response.get_json()
        assert body["error"]["code"] == "undeclared_route"
        assert "should never be served" not in str(body)


# --- the claimant rule ----------------------------------------------------------------------------


def claimant_routes(app: Quart) -> list[tuple[Rule, Access]]:
    """Every route with a claimant or call id in its path, declared or not."""
    found = []
    for rule, _, access in routes(app):
        if set(rule.arguments) & set(CLAIMANT_ARGUMENTS):
            assert access is not None
            found.append((rule, access))
    return found


def test_every_route_naming_a_claimant_declares_the_claimant_rule(app: Quart) -> None:
    for rule, view, access in routes(app):
        arguments = set(rule.arguments)
        # a claimant named some other way (user, claimant_id, call_sid...) must be added to
        # CLAIMANT_ARGUMENTS, with a way to find the claimant, before it can be declared
        unknown = [a for a in arguments - set(CLAIMANT_ARGUMENTS)
                   if any(word in a for word in ("user", "claimant", "call"))]  # fmt: skip
        assert unknown == [], f"{rule.rule}: which claimant does {unknown} name?"
        scope = claimant_scope_of(view)
        named = arguments & set(CLAIMANT_ARGUMENTS)
        if named:
            assert scope is not None, f"{rule.rule}: names a claimant; declare @claimant_scoped"
            assert scope.argument in named, f"{rule.rule}: scoped by {scope.argument}"
            assert access is not None and access.kind in ("staff", "api"), rule.rule
            assert scope.who in ("may_see", "caller"), f"{rule.rule}: who is {scope.who!r}?"
            if scope.who == "caller":  # it is tested below as the caller-only rule
                assert scope.via == "call" and not changes_state(rule), rule.rule
        else:
            assert scope is None, f"{rule.rule}: scoped, but names no claimant"
    assert len(claimant_routes(app)) >= 19


@dataclass
class ClaimantWorld:
    user_id: int
    phone: str
    call_id: int
    holder: Staff


async def claimed_claimant(dialler: AsyncEngine, replica: AsyncEngine) -> ClaimantWorld:
    """A claimant in the unsigned queue, claimed and called by an unsigned-queue agent, with
    an SMS thread."""
    holder = await make_staff(dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(replica, signed=False, pending=1)
    phone = f"+4477009{user_id % 100000:05d}"
    async with dialler.begin() as conn:
        task_id = await conn.scalar(
            insert(db.call_tasks)
            .values(
                user_id=user_id,
                workflow_id=f"outreach-{user_id}",
                queue=Queue.UNSIGNED.value,
                score=50,
                not_before=func.now(),
                status="claimed",
                claimed_by=holder.id,
                claimed_at=func.now(),
                lease_expires_at=func.now() + timedelta(minutes=20),
                version=1,
            )
            .returning(db.call_tasks.c.id)
        )
        call_id = await conn.scalar(
            insert(db.calls)
            .values(
                user_id=user_id,
                task_id=task_id,
                agent_id=holder.id,
                queue=Queue.UNSIGNED.value,
                provider="simulated",
                provider_call_sid="CA" + f"{user_id:032d}",
                to_number=phone,
                status="ringing",
            )
            .returning(db.calls.c.id)
        )
        await conn.execute(
            insert(db.sms_messages).values(
                user_id=user_id,
                direction="inbound",
                provider_sid="SM" + f"{user_id:032d}",
                from_number=phone,
                to_number="+447700900000",
                body="Please ring me after six",
                status="received",
            )
        )
    return ClaimantWorld(user_id, phone, int(call_id or 0), holder)


async def with_recording(app: Quart, dialler: AsyncEngine, world: ClaimantWorld) -> None:
    """The world's call has a recording: a WAV file where the app keeps local recordings."""
    key = local_key_for(f"RE{world.user_id:032d}")
    write_tone(app.extensions[EXTENSION_KEY].settings.recordings_dir / key, 1)
    async with dialler.begin() as conn:
        await conn.execute(
            db.calls.update()
            .where(db.calls.c.id == world.call_id)
            .values(recording_sid=f"RE{world.user_id:032d}", recording_store="local",
                    recording_key=key, recording_duration_seconds=1)
        )  # fmt: skip


def caller_only(rule: Rule, app: Quart) -> bool:
    scope = claimant_scope_of(app.view_functions[rule.endpoint])
    return scope is not None and scope.who == "caller"


def claimant_path(app: Quart, rule: Rule, world: ClaimantWorld) -> str:
    values = {"user_id": world.user_id, "call_id": world.call_id}
    return str(
        app.url_map.bind("localhost").build(rule.endpoint, {a: values[a] for a in rule.arguments})
    )


# What a careless or hostile client would send: enough for any of these views to act.
FORM = {
    "body": "Hello from another queue",
    "purpose": "signature",
    "channel": "sms",
    "disposition": "no_answer",
    "action": "answer",
    "reason": "testing",
}


async def _counts(dialler: AsyncEngine, user_id: int) -> tuple[object, ...]:
    """What an action on the claimant would leave behind."""
    async with dialler.connect() as conn:
        found = []
        for table in (db.sms_messages, db.calls, db.magic_links, db.callbacks,
                      db.claimant_notes, db.consent_records, db.audit_log):  # fmt: skip
            column = table.c.subject_id if table is db.audit_log else table.c.user_id
            value = str(user_id) if table is db.audit_log else user_id
            found.append(int(await conn.scalar(select(func.count()).where(column == value)) or 0))
        task = (
            await conn.execute(
                select(db.call_tasks.c.status, db.call_tasks.c.claimed_by).where(
                    db.call_tasks.c.user_id == user_id
                )
            )
        ).one()
        status = (
            await conn.execute(select(db.calls.c.status).where(db.calls.c.user_id == user_id))
        ).scalar_one()
    return (*found, task.status, task.claimed_by, status)


async def test_every_claimant_route_refuses_an_agent_of_another_queue(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine, web_settings: Settings
) -> None:
    world = await claimed_claimant(dialler_db, replica)
    outsider = await make_staff(dialler_db, AgentRole.AGENT, Queue.OUTSTANDING)
    client = app.test_client()
    assert await sign_in(client, outsider) == 303
    token = await csrf_from(client, "/console")
    bearer = issue_api_token(
        outsider.id, outsider.role.value, web_settings.jwt_secret.get_secret_value()
    )
    before = await _counts(dialler_db, world.user_id)
    checked = 0
    for rule, access in claimant_routes(app):
        path = claimant_path(app, rule, world)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            attempts: list[dict[str, Any]] = []
            if access.kind == "api":
                attempts.append({"headers": {"X-CSRF-Token": token}, "json": FORM})
                attempts.append({"headers": {"Authorization": f"Bearer {bearer}"}, "json": FORM})
            elif method == "GET":
                attempts.append({"headers": {"Accept": "text/html"}})
                attempts.append({"headers": {"HX-Request": "true"}})
            else:
                attempts.append({"form": FORM | {"csrf_token": token}})
                attempts.append({"headers": {"HX-Request": "true", "X-CSRF-Token": token},
                                 "form": FORM})  # fmt: skip
            for kwargs in attempts:
                response = await client.open(path, method=method, scope_base=scope(), **kwargs)
                page = await response.get_data(as_text=True)
                assert response.status_code in (403, 404), (method, rule.rule, page[:300])
                for personal in (f"Claimant{world.user_id}", world.phone, "ring me after six"):
                    assert personal not in page, (method, rule.rule, personal)
                checked += 1
    assert checked >= 38
    assert await _counts(dialler_db, world.user_id) == before  # nothing happened to them


async def test_claimant_routes_let_the_holder_and_supervisors_in(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    world = await claimed_claimant(dialler_db, replica)
    await with_recording(app, dialler_db, world)
    signed: dict[str, Any] = {}
    supervisor = await make_staff(dialler_db, AgentRole.SUPERVISOR, None)
    for name, staff in (("holder", world.holder), ("supervisor", supervisor)):
        signed[name] = app.test_client()
        assert await sign_in(signed[name], staff) == 303
    opened = 0
    for rule, access in claimant_routes(app):
        if "GET" not in (rule.methods or set()):
            continue
        path = claimant_path(app, rule, world)
        for name, staff in (("holder", world.holder), ("supervisor", supervisor)):
            if staff.role not in access.roles:
                continue
            response = await signed[name].get(
                path, headers={"HX-Request": "true"}, scope_base=scope()
            )
            assert response.status_code == 200, (name, rule.rule)
            if caller_only(rule, app):  # the holder made the call: its recording, as audio
                assert response.mimetype.startswith("audio/"), rule.rule
                assert (await response.get_data())[:4] == b"RIFF", rule.rule
            else:
                assert f"Claimant{world.user_id}" in await response.get_data(as_text=True)
            opened += 1
    assert opened >= 7  # /sms/<id>, /api/claimants/<id>, the recording for both; the panel


async def test_caller_only_routes_refuse_anyone_but_the_caller_with_403(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """An agent who may see the claimant (they hold the claim now) but did not make the
    call is refused, with 403, before the view runs; nothing is audited for them."""
    world = await claimed_claimant(dialler_db, replica)
    await with_recording(app, dialler_db, world)
    now_holding = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    async with dialler_db.begin() as conn:
        await conn.execute(
            db.call_tasks.update()
            .where(db.call_tasks.c.user_id == world.user_id)
            .values(claimed_by=now_holding.id)
        )
    client = app.test_client()
    assert await sign_in(client, now_holding) == 303
    routes_checked = []
    for rule, access in claimant_routes(app):
        path = claimant_path(app, rule, world)
        if not caller_only(rule, app):
            # they may see the claimant (on the routes for agents: not the supervisors')...
            if "GET" in (rule.methods or set()) and now_holding.role in access.roles:
                response = await client.get(path, headers={"HX-Request": "true"},
                                            scope_base=scope())  # fmt: skip
                assert response.status_code == 200, rule.rule
            continue
        response = await client.get(path, headers={"HX-Request": "true"}, scope_base=scope())
        assert response.status_code == 403, rule.rule  # ...but not play the call
        assert (await response.get_json())["error"]["code"] == "not_the_caller"
        routes_checked.append(rule.rule)
    assert routes_checked == ["/calls/<int:call_id>/recording"]
    async with dialler_db.connect() as conn:
        audited = await conn.scalar(
            select(func.count()).where(
                db.audit_log.c.actor_id == str(now_holding.id),
                db.audit_log.c.detail["route"].astext == "recordings.play",
            )
        )
    assert audited == 0


async def test_every_claimant_view_writes_an_audit_row_naming_its_route(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """Who saw which claimant's personal data, when, and why (the route): one append-only
    row per view an allowed agent opens, whatever else the view audits itself."""
    world = await claimed_claimant(dialler_db, replica)
    await with_recording(app, dialler_db, world)
    client = app.test_client()
    assert await sign_in(client, world.holder) == 303

    async def rows() -> list[Any]:
        async with dialler_db.connect() as conn:
            found = await conn.execute(
                select(db.audit_log)
                .where(db.audit_log.c.action == VIEWED,
                       db.audit_log.c.subject_id == str(world.user_id))
                .order_by(db.audit_log.c.id)
            )  # fmt: skip
            return list(found.all())

    viewed = 0
    for rule, access in claimant_routes(app):
        if "GET" not in (rule.methods or set()) or world.holder.role not in access.roles:
            continue
        before = len(await rows())
        response = await client.get(
            claimant_path(app, rule, world), headers={"HX-Request": "true"}, scope_base=scope()
        )
        assert response.status_code == 200, rule.rule
        new = (await rows())[before:]
        assert len(new) == 1, (rule.rule, new)
        [row] = new
        assert (row.actor_type, row.actor_id) == ("agent", str(world.holder.id)), rule.rule
        assert (row.subject_type, row.detail["route"]) == ("user", rule.endpoint), rule.rule
        assert row.at is not None
        viewed += 1
    assert viewed >= 4  # the console panel, the SMS thread, the API context, the recording


# --- supervisor routes ------------------------------------------------------------------------


def supervisor_only_routes(app: Quart) -> list[tuple[Rule, Access]]:
    """Every route agents may not use: the supervisor workspace and anything else declared
    for supervisors and admins only."""
    return [
        (rule, access)
        for rule, _, access in routes(app)
        if access is not None
        and access.kind in ("staff", "api")
        and AgentRole.AGENT not in access.roles
    ]


def test_the_supervisor_workspace_is_for_supervisors_and_admins_only(app: Quart) -> None:
    for rule, _, access in routes(app):
        if rule.rule == "/supervisor" or rule.rule.startswith("/supervisor/"):
            assert access is not None, rule.rule
            assert access.roles == {AgentRole.SUPERVISOR, AgentRole.ADMIN}, rule.rule


async def test_an_agent_gets_403_on_every_supervisor_route(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    """With a valid session and CSRF token, an agent is refused by the role check before any
    view runs: GETs and state-changing methods alike, and nothing is written."""
    agent = await make_staff(dialler_db, AgentRole.AGENT, queue=Queue.UNSIGNED)
    client = app.test_client()
    assert await sign_in(client, agent) == 303
    token = await csrf_from(client, "/console")
    async with dialler_db.connect() as conn:
        audit_before = await conn.scalar(select(func.count()).select_from(db.audit_log))
    checked = set()
    for rule, _ in supervisor_only_routes(app):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = await client.open(
                example_path(app, rule),
                method=method,
                headers={"X-CSRF-Token": token},
                json={},
                scope_base=scope(),
            )
            assert response.status_code == 403, (method, rule.rule)
            checked.add(rule.rule)
    async with dialler_db.connect() as conn:
        audit_after = await conn.scalar(select(func.count()).select_from(db.audit_log))
    assert audit_after == audit_before
    assert {"/supervisor"} <= checked, "the supervisor workspace has no routes"
    assert len(checked) >= 10


async def test_a_supervisor_lands_on_the_wallboard_and_an_agent_on_the_console(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    for role, home in (
        (AgentRole.SUPERVISOR, "/supervisor"),
        (AgentRole.ADMIN, "/supervisor"),
        (AgentRole.AGENT, "/console"),
    ):
        staff = await make_staff(dialler_db, role)
        client = app.test_client()
        token = await csrf_from(client, "/login")
        response = await client.post(
            "/login",
            form={"email": staff.email, "password": PASSWORD, "csrf_token": token},
            scope_base=scope(),
        )
        assert response.status_code == 303
        assert response.headers["Location"] == home, role
