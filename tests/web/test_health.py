"""`/api/health` against the real dependencies, and with each one made unreachable."""

from __future__ import annotations

import pytest
from quart import Quart
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from tests.conftest import free_port
from web import create_app


@pytest.fixture
async def healthy_settings(
    settings: Settings, migrated_pg: str, replica_db: str, temporal_env: WorkflowEnvironment
) -> Settings:
    address = temporal_env.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": address})


async def _get_health(app: Quart) -> tuple[int, dict[str, object]]:
    async with app.test_app() as test_app:
        response = await test_app.test_client().get("/api/health")
        body = await response.get_json()
        return response.status_code, body


async def test_all_dependencies_up_is_200(healthy_settings: Settings) -> None:
    status, body = await _get_health(create_app(healthy_settings))
    assert status == 200
    assert body["status"] == "ok"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"postgres", "replica", "redis", "temporal"}
    assert all(check["ok"] for check in checks.values())
    assert "MariaDB" in checks["replica"]["detail"]
    assert "PostgreSQL" in checks["postgres"]["detail"]


@pytest.mark.parametrize(
    ("dependency", "setting", "broken"),
    [
        ("postgres", "database_url", "postgresql+asyncpg://postgres@127.0.0.1:{port}/dialler"),
        ("replica", "replica_database_url", "mysql+aiomysql://root@127.0.0.1:{port}/rmc"),
        ("redis", "redis_url", "redis://127.0.0.1:{port}/0"),
        ("temporal", "temporal_address", "127.0.0.1:{port}"),
    ],
)
async def test_a_dependency_down_is_503_and_named(
    healthy_settings: Settings, dependency: str, setting: str, broken: str
) -> None:
    settings = healthy_settings.model_copy(update={setting: broken.format(port=free_port())})
    status, body = await _get_health(create_app(settings))
    assert status == 503
    assert body["status"] == "unavailable"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert checks[dependency]["ok"] is False
    assert checks[dependency]["detail"]
    assert all(check["ok"] for name, check in checks.items() if name != dependency)


async def test_responses_carry_security_headers(healthy_settings: Settings) -> None:
    app = create_app(healthy_settings)
    async with app.test_app() as test_app:
        response = await test_app.test_client().get("/api/health")
    headers = response.headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


async def test_every_route_is_rate_limited_in_redis(healthy_settings: Settings) -> None:
    settings = healthy_settings.model_copy(update={"rate_limit_per_minute": 5})
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        statuses = [(await client.get("/openapi.json")).status_code for _ in range(5)]
        limited = await client.get("/openapi.json")
        # a second app (another web process) shares the same limits through Redis
        async with create_app(settings).test_app() as other_app:
            also_limited = await other_app.test_client().get("/openapi.json")
        # a forged X-Forwarded-For does not buy a fresh allowance
        spoofed = await client.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.7"})
    assert statuses == [200] * 5
    assert limited.status_code == 429
    assert spoofed.status_code == 429
    assert also_limited.status_code == 429
    body = await limited.get_json()
    assert body["error"]["code"] == "rate_limited"
    assert "Retry-After" in limited.headers
