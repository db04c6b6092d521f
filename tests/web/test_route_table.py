"""A meta-test over the whole route table (`app.url_map`), so a route added later cannot slip
through: every route declares who may use it, every route is rate limited, and every route
that changes state is CSRF-protected, a signature-checked webhook, or public with a reason.
The declarations are checked statically and then exercised: requests without a CSRF token
or without a Twilio signature are refused before any view runs. And a route that declares
nothing is refused (it fails closed)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from quart import Quart
from quart_rate_limiter import QUART_RATE_LIMITER_EXEMPT_ATTRIBUTE, RateLimiter
from sqlalchemy.ext.asyncio import AsyncEngine
from werkzeug.routing import Rule

from config.settings import Settings
from schemas.enums import AgentRole
from tests.web.conftest import make_staff, sign_in
from web import create_app
from web.auth.access import STATE_CHANGING, Access, access_of
from web.ratelimit import RedisRateLimitStore

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
        name: 1 if type(rule._converters[name]).__name__ == "IntegerConverter" else "x" * 43
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
