"""Rate limits shared by every web process, kept in Redis.

quart-rate-limiter's own RedisStore builds its own client and never expires keys; this
store uses the app's injected client and lets each key expire once its window has passed.
If Redis is unreachable the limits fall back to this process's memory: still enforced
(per process), and the app keeps serving, so `/api/health` can say Redis is down.

Failed sign-ins are counted separately, per account and per address across every sign-in
route: see web/auth/throttle.py.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from quart import g, has_request_context, request
from quart_rate_limiter import RateLimit, RateLimiter
from quart_rate_limiter.store import MemoryStore, RateLimiterStoreABC
from redis.asyncio import Redis
from redis.exceptions import RedisError
from structlog import get_logger

from web.auth.sessions import COOKIE_NAME as SESSION_COOKIE

log = get_logger(__name__)

KEY_PREFIX = "ratelimit:"


class RedisRateLimitStore(RateLimiterStoreABC):
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._fallback = MemoryStore()

    def _degraded(self, error: RedisError) -> None:
        log.warning("rate limits held in process memory: Redis unavailable", error=str(error))

    async def before_serving(self) -> None:
        return None

    async def after_serving(self) -> None:
        return None

    async def get(self, key: str, default: datetime) -> datetime:
        # The limiter reads each key twice per request (to check, then to update): the
        # second read is answered from the first, one Redis round trip fewer per limit.
        reads = _reads_of_this_request()
        if key in reads:
            return reads[key] or default
        try:
            value = await self._redis.get(KEY_PREFIX + key)
        except RedisError as error:
            self._degraded(error)
            return await self._fallback.get(key, default)
        stored = None if value is None else datetime.fromtimestamp(float(value), UTC)
        reads[key] = stored
        return stored or default

    async def set(self, key: str, tat: datetime) -> None:
        _reads_of_this_request()[key] = tat
        ttl_ms = max(1, int((tat - datetime.now(UTC)).total_seconds() * 1000) + 1000)
        try:
            await self._redis.set(KEY_PREFIX + key, tat.timestamp(), px=ttl_ms)
        except RedisError as error:
            self._degraded(error)
            await self._fallback.set(key, tat)


def _reads_of_this_request() -> dict[str, datetime | None]:
    """Rate-limit values read during the current request (none outside a request)."""
    if not has_request_context():
        return {}
    reads: dict[str, datetime | None] | None = g.get("rate_limit_reads")
    if reads is None:
        reads = g.rate_limit_reads = {}
    return reads


async def client_address_key() -> str:
    """The peer address of the connection. The library's default trusts the first
    X-Forwarded-For entry, which any client can set to dodge its limits; behind a proxy,
    run Hypercorn's ProxyFixMiddleware so `remote_addr` is the real client."""
    return request.remote_addr or "unknown"


async def requester_key() -> str:
    """Who is asking: the credential (a hash of the session cookie or bearer token) when one
    is presented, else the address. Agents behind one office address each get their own
    allowance; a client inventing credentials to dodge this still meets the per-address
    ceiling."""
    credential = request.cookies.get(SESSION_COOKIE) or _bearer_token()
    if credential:
        return "cred:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    return await client_address_key()


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def build_rate_limiter(
    redis: Redis, *, per_second: int, per_minute: int, address_per_minute: int
) -> RateLimiter:
    """Every route is limited by these defaults; routes may add tighter limits of their own."""
    defaults = [
        RateLimit(per_second, timedelta(seconds=1), key_function=requester_key),
        RateLimit(per_minute, timedelta(minutes=1), key_function=requester_key),
        RateLimit(address_per_minute, timedelta(minutes=1), key_function=client_address_key),
    ]
    return RateLimiter(
        key_function=client_address_key,
        store=RedisRateLimitStore(redis),
        default_limits=defaults,
    )
