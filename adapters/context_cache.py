"""Claimant context cache: read-through, one Redis key per claimant, 15-minute TTL.

`get` returns the cached context or loads it (replica + dialler DB) and caches it;
`invalidate` drops the keys of claimants a change touched (the CDC worker calls it for
every change it delivers); `warm` loads many at once (the hourly schedule warms the top of
each queue). Hits and misses are counted in Redis for the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic import TypeAdapter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log
from adapters.replica_reader import ReplicaReader
from adapters.suppressions import suppressed_users
from schemas.context import ClaimantContext, ClaimView, RequirementView

KEY_PREFIX = "dialler:context:"
STATS_KEY = "dialler:context:stats"
DEFAULT_TTL_SECONDS = 900  # the seed: "User contexts: 15-minute TTL"
LOAD_BATCH = 200
_ADAPTER = TypeAdapter(ClaimantContext)


def context_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}"


class ContextCache:
    def __init__(
        self,
        redis: Redis,
        replica_db: AsyncEngine,
        dialler: AsyncEngine,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._redis = redis
        self._replica = ReplicaReader(replica_db)
        self._dialler = dialler
        self._ttl = ttl_seconds

    async def get(self, user_id: int) -> ClaimantContext | None:
        """The claimant's context (None for an unknown claimant), from the cache if there."""
        cached = await self._redis.get(context_key(user_id))
        if cached is not None:
            await self._redis.hincrby(STATS_KEY, "hits", 1)
            return _ADAPTER.validate_json(cached)
        await self._redis.hincrby(STATS_KEY, "misses", 1)
        loaded = await self.load_many([user_id])
        context = loaded.get(user_id)
        if context is not None:
            await self._store([context])
        return context

    async def invalidate(self, user_ids: Iterable[int]) -> int:
        keys = [context_key(u) for u in set(user_ids)]
        if not keys:
            return 0
        return int(await self._redis.delete(*keys))

    async def warm(self, user_ids: Sequence[int]) -> int:
        """Load and cache the contexts of these claimants; returns how many were cached."""
        cached = 0
        for start in range(0, len(user_ids), LOAD_BATCH):
            contexts = await self.load_many(user_ids[start : start + LOAD_BATCH])
            await self._store(list(contexts.values()))
            cached += len(contexts)
        return cached

    async def cached(self, user_id: int) -> bool:
        return bool(await self._redis.exists(context_key(user_id)))

    async def _store(self, contexts: list[ClaimantContext]) -> None:
        if not contexts:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for context in contexts:
                pipe.set(context_key(context.user_id), _ADAPTER.dump_json(context), ex=self._ttl)
            await pipe.execute()

    async def load_many(self, user_ids: Sequence[int]) -> dict[int, ClaimantContext]:
        """Contexts of the claimants that exist, read from the replica and the dialler DB."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = await self._replica.context_rows(ids)
        user_rows, claim_rows, requirement_rows = rows.users, rows.claims, rows.requirements
        found = [row.id for row in user_rows]
        if not found:
            return {}
        async with self._dialler.connect() as conn:
            # the shared rule: the latest event per channel (a START lifts the STOP before it)
            suppressed = await suppressed_users(
                conn, {row.id: row.phone_number for row in user_rows}
            )
            callbacks = await call_log.next_callbacks(conn, found)
            last_calls = await call_log.last_calls(conn, found)
        views: dict[int, list[RequirementView]] = {}
        for row in requirement_rows:
            views.setdefault(row.claim_id, []).append(
                RequirementView(requirement_id=row.id, type=row.type, status=row.status)
            )
        claims_of: dict[int, list[ClaimView]] = {}
        for claim in claim_rows:
            claims_of.setdefault(claim.user_id, []).append(
                ClaimView(
                    claim_id=claim.id,
                    lender=claim.lender,
                    status=claim.status,
                    created_at=claim.created_at.replace(tzinfo=UTC),
                    estimated_value=None
                    if claim.estimated_value is None
                    else float(claim.estimated_value),
                    requirements=views.get(claim.id, []),
                )
            )
        now = datetime.now(UTC)
        contexts: dict[int, ClaimantContext] = {}
        for user in user_rows:
            last = last_calls.get(user.id)
            contexts[user.id] = ClaimantContext(
                user_id=user.id,
                first_name=user.first_name,
                last_name=user.last_name,
                email=user.email,
                phone_number=user.phone_number,
                postcode=user.postcode,
                date_of_birth=user.date_of_birth,
                is_enabled=bool(user.is_enabled),
                status=user.status,
                is_vulnerable=bool(user.is_vulnerable),
                signed=user.current_signature_file_id is not None,
                preferred_call_start=user.preferred_call_start,
                preferred_call_end=user.preferred_call_end,
                loaded_at=now,
                claims=claims_of.get(user.id, []),
                opted_out=user.id in suppressed,
                next_callback_at=callbacks.get(user.id),
                last_call_at=last.started_at if last is not None else None,
                last_disposition=last.disposition if last is not None else None,
            )
        return contexts
