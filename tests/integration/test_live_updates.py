"""Queue depths for live views: published off the agents' requests, coalesced."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.live import QUEUE_DEPTH, LiveBus, channel_for_queue
from schemas.enums import Queue
from services.live_updates import DepthPublisher
from tests.conftest import REDIS_URL


async def test_a_burst_of_changes_publishes_the_depths_once_then_again(
    dialler_db: AsyncEngine,
) -> None:
    redis = Redis.from_url(REDIS_URL)
    bus = LiveBus(redis, namespace=f"depths-{uuid.uuid4().hex[:6]}:")
    depths = DepthPublisher(dialler_db, bus, every=0.5)
    try:
        async with bus.subscribe([channel_for_queue(Queue.UNSIGNED)]) as events:
            for _ in range(20):  # twenty claims at once: no waiting, one query
                depths.changed()
            first = await events.next(2.0)
            assert first is not None and first.name == QUEUE_DEPTH
            assert first.data["queue"] == "unsigned"
            assert await events.next(0.3) is None  # the other nineteen were coalesced

            depths.changed()  # a change after the publish is published too, in turn
            later = await events.next(2.0)
            assert later is not None and later.name == QUEUE_DEPTH
    finally:
        await depths.close()
        await redis.aclose()
