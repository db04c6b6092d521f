"""When a service behind the web app is slow or gone, agents get a readable answer (a 503
through the API), never an exception page, and nothing is lost silently."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from adapters.live import LiveBus, LiveEvent
from adapters.redis_client import connect_redis
from tests.conftest import REDIS_URL
from web.sms_support import OutreachUnavailable, ask_workflow


async def test_an_update_the_server_gave_up_on_is_unavailable() -> None:
    async def unanswered() -> None:
        raise WorkflowUpdateRPCTimeoutOrCancelledError()

    with pytest.raises(OutreachUnavailable, match="did not answer in time"):
        await ask_workflow(unanswered())


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
