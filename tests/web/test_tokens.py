"""API bearer tokens: the published secret, required claims, and revocation on sign-out."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import ConfigError, Environment, Settings, load_settings
from tests.web.conftest import PASSWORD, Staff, csrf_from, make_staff, sign_in
from web import create_app
from web.auth.tokens import ALGORITHM, AUDIENCE, ISSUER

ROOT = Path(__file__).resolve().parents[2]
OWN_SECRET = "a-deployment's-own-jwt-secret:Vq8Lr2Xw6Pz4Tn0Ks7"


def _template_jwt_secret() -> str:
    found = re.search(r"^JWT_SECRET=(\S+)", (ROOT / "env.template").read_text(), re.MULTILINE)
    assert found is not None
    return found.group(1)


def _forge(agent_id: int, secret: str, **changes: Any) -> str:
    now = time.time()
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(agent_id),
        "role": "admin",
        "iat": now,
        "exp": now + 600,
        "jti": "forged-token-id",
    } | changes
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, ALGORITHM)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token(client: Client, staff: Staff) -> str:
    response = await client.post(
        "/api/auth/token", json={"email": staff.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    token = (await response.get_json())["access_token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
async def own_secret_app(web_settings: Settings) -> AsyncIterator[Quart]:
    settings = web_settings.model_copy(update={"jwt_secret": SecretStr(OWN_SECRET)})
    application = create_app(settings)
    async with application.test_app():
        yield application


def test_a_deployment_cannot_run_on_the_published_jwt_secret(web_settings: Settings) -> None:
    """The defect: the stack ran on the JWT_SECRET printed in env.template."""
    with pytest.raises(ConfigError, match=r"JWT_SECRET: is a published default"):
        load_settings(
            _env_file=None,
            environment=Environment.PRODUCTION,
            database_url=web_settings.database_url,
            secret_key="a-deployment's-own-session-secret:Hq3Zm8Wc1Ry5",
            jwt_secret=_template_jwt_secret(),
        )


async def test_a_token_forged_with_the_published_secret_is_refused(
    own_secret_app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    client = own_secret_app.test_client()
    forged = _forge(staff.id, _template_jwt_secret())
    assert (await client.get("/api/me", headers=_bearer(forged))).status_code == 401
    genuine = await _token(client, staff)
    assert (await client.get("/api/me", headers=_bearer(genuine))).status_code == 200


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "jti", "sub", "iat"])
async def test_a_token_without_a_required_claim_is_refused(
    own_secret_app: Quart, dialler_db: AsyncEngine, missing: str
) -> None:
    staff = await make_staff(dialler_db)
    client = own_secret_app.test_client()
    complete = _forge(staff.id, OWN_SECRET)
    assert (await client.get("/api/me", headers=_bearer(complete))).status_code == 200
    partial = _forge(staff.id, OWN_SECRET, **{missing: None})
    assert (await client.get("/api/me", headers=_bearer(partial))).status_code == 401


@pytest.mark.parametrize(
    "changes", [{"aud": "another-api"}, {"iss": "someone-else"}, {"exp": time.time() - 120}]
)
async def test_a_token_for_another_audience_or_issuer_or_expired_is_refused(
    own_secret_app: Quart, dialler_db: AsyncEngine, changes: dict[str, Any]
) -> None:
    staff = await make_staff(dialler_db)
    token = _forge(staff.id, OWN_SECRET, **changes)
    response = await own_secret_app.test_client().get("/api/me", headers=_bearer(token))
    assert response.status_code == 401


async def test_signing_out_revokes_the_agents_bearer_tokens(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    browser, api_client = app.test_client(), app.test_client()
    token = await _token(api_client, staff)
    assert (await api_client.get("/api/me", headers=_bearer(token))).status_code == 200
    assert await sign_in(browser, staff) == 303
    signed_out = await browser.post(
        "/logout", form={"csrf_token": await csrf_from(browser, "/login")}
    )
    assert signed_out.status_code == 303
    assert (await api_client.get("/api/me", headers=_bearer(token))).status_code == 401
    fresh = await _token(api_client, staff)  # signing in again gives a working token
    assert (await api_client.get("/api/me", headers=_bearer(fresh))).status_code == 200


async def test_api_logout_revokes_that_token_in_every_process(
    app: Quart, web_settings: Settings, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    client = app.test_client()
    token, other = await _token(client, staff), await _token(client, staff)
    assert (await client.post("/api/auth/logout", headers=_bearer(token))).status_code == 204
    assert (await client.get("/api/me", headers=_bearer(token))).status_code == 401
    # another web process (its own app and clients) sharing the Redis refuses it too
    second = create_app(web_settings)
    async with second.test_app():
        elsewhere = second.test_client()
        assert (await elsewhere.get("/api/me", headers=_bearer(token))).status_code == 401
        assert (await elsewhere.get("/api/me", headers=_bearer(other))).status_code == 200


async def test_api_logout_with_a_session_ends_it_and_the_agents_tokens(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    staff = await make_staff(dialler_db)
    browser, api_client = app.test_client(), app.test_client()
    token = await _token(api_client, staff)
    assert await sign_in(browser, staff) == 303
    csrf = await csrf_from(browser, "/login")  # any page carries the session's token
    response = await browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert (await browser.get("/api/me")).status_code == 401
    assert (await api_client.get("/api/me", headers=_bearer(token))).status_code == 401
