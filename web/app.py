"""The Quart app factory: the one place the web process builds its clients."""

from __future__ import annotations

from quart import Quart
from quart_schema import APIKeySecurityScheme, HttpSecurityScheme, Info, QuartSchema

from adapters.databases import dialler_engine, replica_engine
from adapters.redis_client import connect_redis
from adapters.temporal import TemporalConnection
from config.settings import Settings, load_settings
from web.auth.access import declare_public, install_access_rules
from web.auth.sessions import SessionStore
from web.auth.throttle import install_sign_in_throttle
from web.blueprints import (
    api,
    assets,
    auth,
    calls,
    consent,
    console,
    docs,
    health,
    inbound_calls,
    live,
    magic_links,
    recordings,
    sms,
    supervisor,
    supervisor_agents,
    supervisor_analytics,
    supervisor_calls,
    supervisor_claimants,
    supervisor_rules,
    webhooks_ai,
    webhooks_sms,
)
from web.converters import BoundedInt
from web.errors import register_error_handlers
from web.input_guard import install_input_guard
from web.ratelimit import build_rate_limiter
from web.security import install_security_headers
from web.services import EXTENSION_KEY, WebServices
from web.views.console import install_filters


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    app = Quart(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key.get_secret_value(),
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    # every <int:...> in a route is bounded to the database's bigint: too large is a 404
    app.url_map.converters["int"] = BoundedInt

    redis = connect_redis(settings.redis_url)
    deps = WebServices(
        settings=settings,
        dialler_db=dialler_engine(settings),
        replica_db=replica_engine(settings),
        redis=redis,
        temporal=TemporalConnection(settings),
    )
    app.extensions[EXTENSION_KEY] = deps
    install_sign_in_throttle(app, redis, settings.redis_url, deps.dialler_db)

    # Swagger UI is served from npm at /docs (blueprints/docs.py); nothing loads from a CDN.
    QuartSchema(
        app,
        info=Info(title="RMC Dialler API", version="0.1.0"),
        # How API clients authenticate (web/auth/access.py): a bearer token, or a session
        # cookie plus the CSRF token in a header for state-changing calls.
        security_schemes={
            "bearerAuth": HttpSecurityScheme(
                scheme="bearer", bearer_format="JWT (POST /api/auth/token) or an issued rmc_ token"
            ),
            "sessionCookie": APIKeySecurityScheme(name="rmc_session", in_="cookie"),
            "csrfHeader": APIKeySecurityScheme(name="X-CSRF-Token", in_="header"),
        },
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=docs.ApiDocument,  # the JSON API, with the edge's errors
    )
    build_rate_limiter(
        redis,
        per_second=settings.rate_limit_per_second,
        per_minute=settings.rate_limit_per_minute,
        address_per_minute=settings.rate_limit_address_per_minute,
    ).init_app(app)
    install_input_guard(app)  # before the access rules, which read forms for CSRF tokens
    install_security_headers(app, https=settings.cookie_secure)
    register_error_handlers(app)
    for blueprint in (assets, auth, docs, health, magic_links, sms, webhooks_sms, webhooks_ai, api):
        app.register_blueprint(blueprint.blueprint)
    for blueprint in (console, calls, consent, inbound_calls, live, recordings):
        app.register_blueprint(blueprint.blueprint)
    for blueprint in (
        supervisor,
        supervisor_agents,
        supervisor_analytics,
        supervisor_calls,
        supervisor_claimants,
        supervisor_rules,
    ):
        app.register_blueprint(blueprint.blueprint)
    install_filters(app)
    install_access_rules(app, SessionStore(deps.dialler_db, settings))
    app.before_request(deps.keep_rules_current)  # a saved rules version, without a restart
    app.before_serving(deps.listen_for_rules)
    declare_public(app, "openapi", "the API's own specification")

    @app.after_serving
    async def close_clients() -> None:
        await deps.close()

    return app
