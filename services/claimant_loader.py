"""The one loader of a claimant as agents see them (console context, API, SMS thread).

Two parts, read differently:
- the replica part (user, claims, requirements) through the Redis context cache
  (`adapters.context_cache`), which CDC invalidates when the main app changes it; with Redis
  away it is read from the replica directly rather than failing the agent;
- the dialler part (opted out: the latest suppression event per channel, the next pending
  callback) read fresh from its owners on every load, in two indexed queries batched over all
  the claimants asked for: a STOP, an outcome or a booked callback shows at once, not when a
  cached copy expires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import call_log
from adapters.context_cache import ContextCache, ReplicaBatch
from adapters.suppressions import suppressed_users
from schemas.context import ClaimantContext, ReplicaClaimant

log = get_logger(__name__)


@dataclass(frozen=True)
class LoadedClaimant:
    context: ClaimantContext
    from_cache: bool  # the replica part came from Redis (recorded in the audit log)


class ClaimantLoader:
    def __init__(self, cache: ContextCache, dialler: AsyncEngine) -> None:
        self._cache = cache
        self._dialler = dialler

    async def replica(self, user_ids: Sequence[int]) -> ReplicaBatch:
        """The replica part of these claimants (unknown ids absent), through the cache."""
        try:
            return await self._cache.get_many(user_ids)
        except RedisError as error:
            log.warning("context cache unavailable", error=str(error))
            return ReplicaBatch(await self._cache.load_many(user_ids), frozenset())

    async def load(self, user_id: int) -> LoadedClaimant | None:
        """The claimant (None if they do not exist)."""
        return (await self.load_many([user_id])).get(user_id)

    async def load_many(self, user_ids: Sequence[int]) -> dict[int, LoadedClaimant]:
        """The claimants that exist, each with the dialler's state as it is now."""
        batch = await self.replica(user_ids)
        if not batch.claimants:
            return {}
        async with self._dialler.connect() as conn:
            contexts = await self.with_dialler_state(conn, batch.claimants)
        return {
            user_id: LoadedClaimant(context, user_id in batch.from_cache)
            for user_id, context in contexts.items()
        }

    @staticmethod
    async def with_dialler_state(
        conn: AsyncConnection, claimants: Mapping[int, ReplicaClaimant]
    ) -> dict[int, ClaimantContext]:
        """The replica part completed with the dialler's state, read now (two queries for
        any number of claimants); for a caller already holding a dialler connection."""
        if not claimants:
            return {}
        numbers = {user_id: c.phone_number for user_id, c in claimants.items()}
        emails = {user_id: c.email for user_id, c in claimants.items()}
        suppressed = await suppressed_users(conn, numbers, emails)
        callbacks = await call_log.next_callbacks(conn, sorted(claimants))
        return {
            user_id: ClaimantContext.of(
                replica,
                opted_out=user_id in suppressed,
                next_callback_at=callbacks.get(user_id),
            )
            for user_id, replica in claimants.items()
        }
