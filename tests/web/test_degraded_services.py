"""When a service behind the web app is slow or gone, agents get a readable answer (a 503
through the API), never an exception page, and nothing is lost silently."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from adapters.live import LiveBus, LiveEvent
from adapters.redis_client import connect_redis
from config.settings import Settings
from schemas.enums import AgentRole
from tests.conftest import REDIS_URL, free_port
from tests.web.conftest import make_staff
from web import create_app
from web.auth.tokens import issue_api_token
from workflows.outreach_client import RETRY_AFTER_SECONDS


async def test_an_api_call_without_temporal_is_503_with_retry_after(
    web_settings: Settings,
) -> None:
    """Temporal is away: the API says so (503 `outreach_unavailable`) and when to try again
    (`Retry-After`), the same on every route that reaches a workflow."""
    down = web_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    app = create_app(down)
    async with app.test_app():
        deps = app.extensions["dialler"]
        supervisor = await make_staff(deps.dialler_db, AgentRole.SUPERVISOR, None)
        token = issue_api_token(
            supervisor.id, AgentRole.SUPERVISOR.value, down.jwt_secret.get_secret_value()
        )
        response = await app.test_client().post(
            "/api/claimants/1/notes",
            json={"text": "rang back"},
            headers={"Authorization": f"Bearer {token}"},
        )
        body = await response.get_json()
    assert response.status_code == 503, body
    assert body["error"]["code"] == "outreach_unavailable"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)


async def test_a_live_event_without_redis_is_dropped_with_a_warning() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        assert (
            await LiveBus(redis, namespace="test:").publish("staff", LiveEvent("queue-depth", {}))
            == 0
        )
    finally:
        await redis.aclose()


async def test_a_busy_redis_pool_makes_callers_wait_rather_than_fail() -> None:
    redis = connect_redis(REDIS_URL, max_connections=2)
    try:
        pool = redis.connection_pool
        borrowed = [await pool.get_connection() for _ in range(2)]  # type: ignore[no-untyped-call]
        task = asyncio.ensure_future(redis.ping())
        await asyncio.sleep(0.2)
        assert not task.done()  # redis-py's default pool would raise MaxConnectionsError
        await pool.release(borrowed.pop())
        assert await asyncio.wait_for(task, 5) is True
        for connection in borrowed:
            await pool.release(connection)
    finally:
        await redis.aclose()
