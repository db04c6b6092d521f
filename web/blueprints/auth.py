"""Sign in and out (browser sessions), and API tokens for integrations and AI agents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from quart import Blueprint, g, redirect, render_template, request
from quart.typing import ResponseReturnValue
from quart_rate_limiter import RateLimitExceeded
from quart_schema import validate_request, validate_response
from redis.exceptions import RedisError
from structlog import get_logger

from adapters import agent_store, api_tokens
from adapters.audit_log import append_audit
from adapters.passwords import hash_password, verify_password
from schemas.enums import AgentState
from web.auth.access import SUPERVISOR_ROLES, api, public, session_store
from web.auth.identity import require_agent
from web.auth.sessions import COOKIE_NAME
from web.auth.throttle import sign_in_keys, sign_in_throttle
from web.auth.tokens import LIFETIME, TokenRevocations, issue_api_token
from web.errors import APIError
from web.ratelimit import client_address_key
from web.redirects import safe_next
from web.services import services

log = get_logger(__name__)

blueprint = Blueprint("auth", __name__)


BAD_LOGIN = "Email or password is incorrect."
# Verifying against a real hash when the email is unknown keeps both answers equally slow.
_DUMMY_HASH = hash_password("not-a-real-password")


@dataclass
class TokenRequest:
    email: str
    password: str


@dataclass
class TokenResponse:
    access_token: str
    token_type: str
    expires_in: int


async def _sign_in(email: str, password: str) -> int | None:
    """The agent these credentials name, or None. Every sign-in route comes through here, so
    failures on one count against the others (web/auth/throttle.py); a locked account or
    address gets a 429 without its password being checked."""
    address = await client_address_key()
    keys = sign_in_keys(address, email)
    throttle = sign_in_throttle()
    locked = await throttle.lockout(keys)
    if locked is not None:
        raise RateLimitExceeded(locked.retry_after)
    agent_id = await _check_password(email, password) if email and password else None
    if agent_id is None:
        await throttle.record_failure(keys, route=request.path, address=request.remote_addr)
    return agent_id


async def _check_password(email: str, password: str) -> int | None:
    async with services().dialler_db.connect() as conn:
        found = await agent_store.credentials(conn, email.strip().lower())
    stored = found.password_hash if found is not None and found.password_hash else _DUMMY_HASH
    # Argon2 is deliberately slow (tens of ms of CPU): off the event loop, so other agents'
    # requests are not held up by someone signing in.
    ok = await asyncio.to_thread(verify_password, stored, password)
    return found.agent_id if found is not None and ok and found.password_hash else None


@blueprint.get("/login")
@public("the sign-in form")
async def login_form() -> str:
    return await render_template(
        "login.html", next=safe_next(request.args.get("next"), default=""), error=None
    )


@blueprint.post("/login")
@public("signing in creates the session", csrf=True)
async def login() -> ResponseReturnValue:
    form = await request.form
    email, password = form.get("email", ""), form.get("password", "")
    agent_id = await _sign_in(email, password)
    if agent_id is None:
        page = await render_template(
            "login.html", next=safe_next(form.get("next"), ""), error=BAD_LOGIN, email=email
        )
        return page, 401
    store = session_store()
    token = await store.create(agent_id, request.remote_addr, request.headers.get("User-Agent"))
    async with services().dialler_db.begin() as conn:
        await agent_store.record_state(conn, agent_id, AgentState.PAUSED.value, "signed in")
    services().floor_publisher().changed()  # the wallboard shows who is signed in
    async with services().dialler_db.connect() as conn:
        role = await agent_store.role_of(conn, agent_id)
    # supervisors and admins land on the wallboard, agents on the console
    home = "/supervisor" if role in SUPERVISOR_ROLES else "/console"
    response = redirect(safe_next(form.get("next"), default=home), 303)
    settings = services().settings
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(store.absolute.total_seconds()),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="Lax",
    )
    return response


@blueprint.post("/logout")
@public("ends whatever session the cookie names", csrf=True)
async def logout() -> ResponseReturnValue:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        await session_store().revoke(token)
    agent = g.get("agent")
    if agent is not None:
        await _revoke_bearer_tokens(agent.id)
        async with services().dialler_db.begin() as conn:
            await agent_store.record_state(conn, agent.id, AgentState.OFFLINE.value, "signed out")
        services().floor_publisher().changed()
    response = redirect("/login", 303)
    response.delete_cookie(COOKIE_NAME)
    return response


async def _revoke_bearer_tokens(agent_id: int) -> None:
    """Signing out ends the agent's API tokens too, in every web process."""
    try:
        await TokenRevocations(services().redis).revoke_agent(agent_id)
    except RedisError as error:
        log.error("signed out, but API tokens not revoked: Redis unavailable", error=str(error))


@blueprint.post("/api/auth/logout")
@api()
async def api_logout() -> ResponseReturnValue:
    """Revoke the bearer token sent with this request (its other tokens stay valid; an issued
    `rmc_` token is revoked for good); with a session cookie, end the session and every API
    token of the agent, as `/logout` does."""
    agent = require_agent()
    claims, issued = g.get("bearer_claims"), g.get("issued_api_token")
    if agent.via == "bearer" and claims is not None:
        await TokenRevocations(services().redis).revoke(claims)
    elif agent.via == "bearer" and issued is not None:
        # an issued API token (an AI agent's or an integration's) ends here for good: a
        # supervisor issues a new one
        async with services().dialler_db.begin() as conn:
            token_id = await api_tokens.revoke_presented(conn, issued, datetime.now(UTC))
            if token_id is not None:
                await append_audit(
                    conn,
                    actor_type="agent",
                    actor_id=str(agent.id),
                    action="api_token_revoked",
                    subject_type="agent",
                    subject_id=str(agent.id),
                    detail={"token_id": token_id, "by": "its holder signing out"},
                    ip_address=request.remote_addr,
                )
    else:
        token = request.cookies.get(COOKIE_NAME)
        if token:
            await session_store().revoke(token)
        await _revoke_bearer_tokens(agent.id)
    return "", 204


@blueprint.post("/api/auth/token")
@public("exchanges credentials for a bearer token; no cookie is involved")
@validate_request(TokenRequest)
@validate_response(TokenResponse)
async def api_token(data: TokenRequest) -> TokenResponse:
    """A bearer token (JWT, one hour) for API clients: `Authorization: Bearer <token>`."""
    agent_id = await _sign_in(data.email, data.password)
    if agent_id is None:
        raise APIError(401, "bad_credentials", BAD_LOGIN)
    async with services().dialler_db.connect() as conn:
        role = await agent_store.role_of(conn, agent_id)
    secret = services().settings.jwt_secret.get_secret_value()
    token = issue_api_token(agent_id, str(role), secret)
    return TokenResponse(token, "Bearer", int(LIFETIME.total_seconds()))


@dataclass
class WhoAmI:
    id: int
    email: str
    display_name: str
    role: str
    queue: str | None


@blueprint.get("/api/me")
@api()
@validate_response(WhoAmI)
async def me() -> WhoAmI:
    """The signed-in agent (session cookie or bearer token)."""
    agent = require_agent()
    return WhoAmI(agent.id, agent.email, agent.display_name, agent.role.value,
                  agent.queue.value if agent.queue else None)  # fmt: skip
