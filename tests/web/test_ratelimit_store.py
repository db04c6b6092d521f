"""The Redis rate-limit store: one read per key and request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quart import Quart

from web.ratelimit import RedisRateLimitStore


class CountingRedis:
    def __init__(self) -> None:
        self.gets = 0
        self.values: dict[str, float] = {}

    async def get(self, key: str) -> float | None:
        self.gets += 1
        return self.values.get(key)

    async def set(self, key: str, value: float, px: int) -> None:
        self.values[key] = value


async def test_the_second_read_of_a_key_in_a_request_costs_no_round_trip() -> None:
    redis = CountingRedis()
    store = RedisRateLimitStore(redis)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    later = now + timedelta(seconds=2)
    async with Quart(__name__).test_request_context("/"):
        assert await store.get("agent:1", now) == now  # nothing stored: the default
        assert await store.get("agent:1", now) == now
        await store.set("agent:1", later)
        assert await store.get("agent:1", now) == later
        assert redis.gets == 1
    async with Quart(__name__).test_request_context("/"):  # the next request reads again
        assert await store.get("agent:1", now) == later
        assert redis.gets == 2
    assert await store.get("agent:1", now) == later  # outside a request: always read
    assert redis.gets == 3
