"""Every route declares who may use it; a request hook enforces it before the view runs.

- `@public(reason)`: anyone (health, the login form, magic-link pages).
- `@staff(*roles)`: a signed-in member of staff with one of `roles` (any role if none).
- `@api(*roles)`: as `staff`, but a bearer token (a JWT, or an issued `rmc_...` API token)
  is accepted too, and errors are JSON.
- `@webhook(reason)`: public, its view checks the provider's signature.

State-changing requests (POST, PUT, PATCH, DELETE) carry a CSRF token, except webhooks
(signed), bearer-token API calls (no ambient credential) and public routes that declare
why not. A route with no declaration is refused: forgetting one fails closed, and a test
over the route table keeps every route declared.

A route that names a claimant also declares `@claimant_scoped(...)` (`web.auth.claimants`):
after the role and the CSRF token, the hook checks that the caller may see that claimant.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from quart import Quart, Response, current_app, g, redirect, request
from quart.typing import ResponseReturnValue

from adapters.api_tokens import looks_like_token
from schemas.enums import AgentRole
from web.auth.claimants import enforce_claimant_scope
from web.auth.identity import CurrentAgent, current_agent
from web.auth.sessions import COOKIE_NAME, SessionStore
from web.auth.tokens import api_token_agent, live_token_claims
from web.errors import APIError
from web.redirects import safe_next
from web.services import services

ATTRIBUTE = "_dialler_access"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANON_COOKIE = "rmc_anon"  # ties the login form's CSRF token to this browser before sign-in
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
STORE_KEY = "dialler_sessions"

Kind = Literal["public", "staff", "api", "webhook"]
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    kind: Kind
    roles: frozenset[AgentRole]
    csrf: bool
    reason: str = ""


def _declare(access: Access) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        setattr(view, ATTRIBUTE, access)
        return view

    return decorate


def public(reason: str, *, csrf: bool = False) -> Callable[[View], View]:
    return _declare(Access("public", frozenset(), csrf, reason))


def staff(*roles: AgentRole) -> Callable[[View], View]:
    return _declare(Access("staff", frozenset(roles or AgentRole), csrf=True))


# Who runs the floor: every supervisor page (web/blueprints/supervisor*.py) is theirs.
SUPERVISOR_ROLES = frozenset({AgentRole.SUPERVISOR, AgentRole.ADMIN})


def supervisor() -> Callable[[View], View]:
    """A supervisor page or action: supervisors and admins, never agents (403)."""
    return staff(*SUPERVISOR_ROLES)


def api(*roles: AgentRole) -> Callable[[View], View]:
    return _declare(Access("api", frozenset(roles or AgentRole), csrf=True))


def webhook(reason: str) -> Callable[[View], View]:
    return _declare(Access("webhook", frozenset(), csrf=False, reason=reason))


def access_of(view: Callable[..., Any] | None) -> Access | None:
    return getattr(view, ATTRIBUTE, None)


def session_store() -> SessionStore:
    store = current_app.extensions[STORE_KEY]
    assert isinstance(store, SessionStore)
    return store


# --- CSRF -------------------------------------------------------------------------------


def _csrf_for(subject: str) -> str:
    secret = services().settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, f"csrf:{subject}".encode(), hashlib.sha256).hexdigest()


def csrf_token() -> str:
    """The token forms and htmx requests send back; bound to the session (or, before
    sign-in, to this browser's anonymous cookie)."""
    agent = current_agent()
    if agent is not None and agent.session_hash:
        return _csrf_for(agent.session_hash)
    nonce = g.get("anon_nonce") or request.cookies.get(ANON_COOKIE)
    if not nonce:
        nonce = g.anon_nonce = secrets.token_urlsafe(16)
    return _csrf_for(f"anon:{nonce}")


async def _csrf_ok() -> bool:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        sent = (await request.form).get(CSRF_FIELD)
    return bool(sent) and hmac.compare_digest(sent or "", csrf_token())


# --- enforcement --------------------------------------------------------------------------


async def _identify(allow_bearer: bool) -> CurrentAgent | None:
    store = session_store()
    header = request.headers.get("Authorization", "")
    if allow_bearer and header.startswith("Bearer "):
        deps = services()
        presented = header.removeprefix("Bearer ").strip()
        if looks_like_token(presented):  # an issued API token (rmc_...), not a JWT
            g.bearer_claims = None
            g.issued_api_token = presented  # for /api/auth/logout: the token to revoke
            return await api_token_agent(deps.dialler_db, presented)
        secret = deps.settings.jwt_secret.get_secret_value()
        claims = await live_token_claims(presented, secret, deps.redis)
        g.bearer_claims = claims
        return await store.bearer_agent(claims.agent_id) if claims is not None else None
    token = request.cookies.get(COOKIE_NAME)
    return await store.resolve(token) if token else None


def _wants_html() -> bool:
    return request.accept_mimetypes.best == "text/html" and "HX-Request" not in request.headers


async def enforce_access() -> ResponseReturnValue | None:
    if request.endpoint is None:
        return None  # 404 and 405 are answered by Quart
    access = access_of(current_app.view_functions.get(request.endpoint))
    if access is None:
        raise APIError(403, "undeclared_route", "This route declares no access rule.")
    if access.kind in ("staff", "api"):
        agent = await _identify(allow_bearer=access.kind == "api")
        g.agent = agent
        if agent is None:
            if access.kind == "staff" and _wants_html():
                target = quote(safe_next(request.full_path.rstrip("?")), safe="/?=&")
                return redirect(f"/login?next={target}")
            raise APIError(401, "not_signed_in", "Sign in to continue.")
        if agent.role not in access.roles:
            raise APIError(403, "forbidden", "Your role may not do this.")
    else:
        token = request.cookies.get(COOKIE_NAME)
        g.agent = await session_store().resolve(token) if token else None
    bearer = g.agent is not None and g.agent.via == "bearer"
    if request.method in STATE_CHANGING and access.csrf and not bearer and not await _csrf_ok():
        raise APIError(403, "csrf_failed", "The form expired; reload the page and try again.")
    if g.agent is not None and access.kind in ("staff", "api"):
        await enforce_claimant_scope(g.agent)
    return None


async def remember_anonymous_browser(response: Response) -> Response:
    nonce = g.get("anon_nonce")
    if nonce:
        settings = services().settings
        response.set_cookie(
            ANON_COOKIE, nonce, httponly=True, secure=settings.cookie_secure, samesite="Lax"
        )
    return response


def install_access_rules(app: Quart, store: SessionStore) -> None:
    app.extensions[STORE_KEY] = store
    app.before_request(enforce_access)
    app.after_request(remember_anonymous_browser)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["current_agent"] = current_agent
    # Quart's own static route serves the app's CSS and scripts: public by nature.
    declare_public(app, "static", "the app's own stylesheets and scripts")


def declare_public(app: Quart, endpoint: str, reason: str) -> None:
    """Declare a route registered by a library (its view may be a bound method)."""
    view = app.view_functions.get(endpoint)
    if view is None:
        return

    @functools.wraps(view)
    async def declared(*args: Any, **kwargs: Any) -> Any:
        return await current_app.ensure_async(view)(*args, **kwargs)

    app.view_functions[endpoint] = public(reason)(declared)
