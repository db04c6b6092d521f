"""The one way processes build their Redis client."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

# Every live view (SSE) holds a connection for its subscription; requests borrow one for a
# command. At the ceiling a request waits for a free connection (up to POOL_WAIT_SECONDS)
# instead of failing at once, as redis-py's default pool does.
MAX_CONNECTIONS = 1_000
POOL_WAIT_SECONDS = 5


def connect_redis(
    url: str, *, decode_responses: bool = True, max_connections: int = MAX_CONNECTIONS
) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_SECONDS,
        decode_responses=decode_responses,
    )
    return Redis(connection_pool=pool)
