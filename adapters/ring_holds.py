"""Which agents are being rung for an inbound call (issue 14): a Redis key per agent, set
only if absent, so two claimants ringing back at the same moment never ring the same agent
(the agent's On call state is recorded a moment later; the hold covers that moment, and
the ring). A hold ends when the agent's leg ends, or by itself after `seconds`.

Keys are namespaced like the live channels (`adapters.live.namespace_for`): deployments and
test runs sharing a Redis server never hold each other's agents.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError
from structlog import get_logger

log = get_logger(__name__)

PREFIX = "inbound-ring"


class RingHolds:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    def _key(self, agent_id: int) -> str:
        return f"{self._namespace}{PREFIX}:{agent_id}"

    async def hold(self, agent_id: int, call_sid: str, seconds: int) -> bool:
        """Hold the agent for this call; False when another call holds them. With Redis
        away the agent is taken as free: their On call state still guards the next call."""
        try:
            held = await self._redis.set(self._key(agent_id), call_sid, nx=True, ex=seconds)
        except RedisError as error:
            log.warning("ring hold not taken: Redis unavailable", error=str(error))
            return True
        return bool(held)

    async def release(self, agent_id: int, call_sid: str) -> None:
        """End this call's hold on the agent (another call's hold is left alone)."""
        key = self._key(agent_id)
        try:
            current = await self._redis.get(key)
            if current is not None and _text(current) == call_sid:
                await self._redis.delete(key)
        except RedisError as error:
            log.warning("ring hold not released: Redis unavailable", error=str(error))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
