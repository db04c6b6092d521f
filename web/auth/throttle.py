"""Failed sign-ins, counted per account and per address across every sign-in route.

The form (`/login`), the token endpoint (`/api/auth/token`) and the magic-link hand-off
(`POST /m/<token>`) all count failures under the same keys (`sign_in_keys`,
`magic_link_keys`), so an account throttled on one route is throttled on all of them. The
counts are moving windows of the `limits` library kept in Redis, shared by every web process.

Each key carries tiers of windows: a handful of failures locks it for a minute, more within
a quarter of an hour for the rest of that quarter, and so on up to a day. So the lockout
grows with repeated failures without a hand-written backoff counter. One account guessed
from one address is locked without locking out colleagues behind the same address; one
account guessed from many addresses meets the per-account tiers; one address trying many
accounts meets the per-address tiers. Only failures count: signing in works until then.

Every time a failure locks a key, an audit entry says which, why and for how long. If Redis
is unreachable the windows are kept in this process's memory: still enforced, per process.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from quart import Quart, current_app
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters.audit_log import write_audit
from schemas.outreach import AuditEntry

log = get_logger(__name__)

KEY_PREFIX = "signin-throttle"
EXTENSION_KEY = "dialler_sign_in_throttle"
LOCKED_OUT = "sign_in_locked_out"

# One account from one address: the guesser at a keyboard
ACCOUNT_AT_ADDRESS = parse_many("5/minute;10/15 minutes;20/hour;40/day")
# One account from anywhere: a spread-out guesser
ACCOUNT = parse_many("20/10 minutes;40/hour;80/day")
# One address trying many accounts (an office shares an address: only failures count)
ADDRESS = parse_many("50/10 minutes;200/day")
# Magic-link hand-offs with unknown, used or expired tokens, per address
MAGIC_LINK_ADDRESS = parse_many("10/minute;30/hour;100/day")


@dataclass(frozen=True)
class ThrottleKey:
    scope: str  # "account", "account_at_address", "address", "magic_link_address"
    identity: str  # what the scope names: the email, the address, or both
    limits: tuple[RateLimitItem, ...]

    @property
    def redis_identity(self) -> str:
        # Hashed: the key names in Redis carry no email address
        return hashlib.sha256(f"{self.scope}|{self.identity}".encode()).hexdigest()[:40]


def normalise_account(email: str | None) -> str:
    return email.strip().lower()[:254] if isinstance(email, str) else ""


def sign_in_keys(address: str, email: str | None) -> list[ThrottleKey]:
    """The keys a staff sign-in attempt counts against, whichever route it came by."""
    keys = [ThrottleKey("address", address, tuple(ADDRESS))]
    account = normalise_account(email)
    if account:
        keys.append(ThrottleKey("account", account, tuple(ACCOUNT)))
        keys.append(
            ThrottleKey("account_at_address", f"{address}|{account}", tuple(ACCOUNT_AT_ADDRESS))
        )
    return keys


def magic_link_keys(address: str) -> list[ThrottleKey]:
    return [ThrottleKey("magic_link_address", address, tuple(MAGIC_LINK_ADDRESS))]


@dataclass(frozen=True)
class Lockout:
    key: ThrottleKey
    limit: RateLimitItem
    retry_after: int  # seconds


class SignInThrottle:
    def __init__(self, redis: Redis, redis_url: str, engine: AsyncEngine) -> None:
        storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            # limits types its pass-through options narrowly; redis-py takes the pool
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        self._shared = MovingWindowRateLimiter(storage)
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._engine = engine

    async def lockout(self, keys: list[ThrottleKey]) -> Lockout | None:
        """The longest lockout among `keys` now in force, if any."""
        try:
            return await self._longest_lockout(self._shared, keys)
        except RedisError as error:
            self._degraded(error)
            return await self._longest_lockout(self._fallback, keys)

    async def record_failure(
        self, keys: list[ThrottleKey], *, route: str, address: str | None
    ) -> Lockout | None:
        """Count a failed attempt; if it locks a key, audit it and return the lockout."""
        try:
            lockout = await self._hit(self._shared, keys)
        except RedisError as error:
            self._degraded(error)
            lockout = await self._hit(self._fallback, keys)
        if lockout is not None:
            await self._audit(lockout, route, address)
        return lockout

    async def _hit(
        self, limiter: MovingWindowRateLimiter, keys: list[ThrottleKey]
    ) -> Lockout | None:
        for key in keys:
            for limit in key.limits:
                await limiter.hit(limit, key.redis_identity)
        return await self._longest_lockout(limiter, keys)

    @staticmethod
    async def _longest_lockout(
        limiter: MovingWindowRateLimiter, keys: list[ThrottleKey]
    ) -> Lockout | None:
        longest: Lockout | None = None
        for key in keys:
            for limit in key.limits:
                if await limiter.test(limit, key.redis_identity):
                    continue
                stats = await limiter.get_window_stats(limit, key.redis_identity)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                if longest is None or retry_after > longest.retry_after:
                    longest = Lockout(key, limit, retry_after)
        return longest

    async def _audit(self, lockout: Lockout, route: str, address: str | None) -> None:
        key = lockout.key
        by_account = key.scope in ("account", "account_at_address")
        account = key.identity.rpartition("|")[2] if by_account else None
        entry = AuditEntry(
            actor_type="system",
            actor_id="sign-in-throttle",
            action=LOCKED_OUT,
            subject_type="account" if account else "address",
            subject_id=(account or key.identity)[:64],
            detail={
                "scope": key.scope,
                "route": route,
                "limit": str(lockout.limit),
                "retry_after_seconds": str(lockout.retry_after),
            },
        )
        async with self._engine.begin() as conn:
            await write_audit(conn, entry, ip_address=address)
        log.warning(
            "sign-in locked out",
            scope=key.scope,
            route=route,
            limit=str(lockout.limit),
            retry_after_seconds=lockout.retry_after,
        )

    @staticmethod
    def _degraded(error: RedisError) -> None:
        log.warning("sign-in throttle held in process memory: Redis unavailable", error=str(error))


def install_sign_in_throttle(app: Quart, redis: Redis, redis_url: str, engine: AsyncEngine) -> None:
    app.extensions[EXTENSION_KEY] = SignInThrottle(redis, redis_url, engine)


def sign_in_throttle() -> SignInThrottle:
    throttle = current_app.extensions[EXTENSION_KEY]
    assert isinstance(throttle, SignInThrottle)
    return throttle
