"""The replica part of a claimant's context, cached: one Redis key per claimant, 15-minute TTL.

Only the main app's rows are cached (`ReplicaClaimant`: the user, their claims and
requirements). CDC drops a claimant's key whenever the main app changes them (`invalidate`),
so nothing else can make the value stale. The dialler's own state (opt-outs, callbacks,
calls) is never cached here: it changes by the dialler's actions, and
`services.claimant_loader` reads it fresh on every view.

`get_many` reads many keys in one round trip and loads the misses from the replica in
batches; `warm` (the hourly schedule for the top of each queue) loads and stores many at once.
Hits and misses are counted in Redis for the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.replica_reader import ContextRows, ReplicaReader
from schemas.context import ClaimView, ReplicaClaimant, RequirementView

# "replica": a value under the old prefix mixed in dialler state; it is never read again
KEY_PREFIX = "dialler:context:replica:"
STATS_KEY = "dialler:context:stats"
DEFAULT_TTL_SECONDS = 900  # the seed: "User contexts: 15-minute TTL"
LOAD_BATCH = 200  # claimants per replica query (keeps the IN lists and the rows bounded)
_ADAPTER = TypeAdapter(ReplicaClaimant)


def context_key(user_id: int) -> str:
    return f"{KEY_PREFIX}{user_id}"


@dataclass(frozen=True)
class ReplicaBatch:
    """The claimants found (unknown ids are absent) and which of them came from Redis."""

    claimants: dict[int, ReplicaClaimant]
    from_cache: frozenset[int]


class ContextCache:
    def __init__(
        self,
        redis: Redis,
        replica_db: AsyncEngine,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
    ) -> None:
        self._redis = redis
        self._replica = ReplicaReader(replica_db)
        self._ttl = ttl_seconds

    async def get(self, user_id: int) -> ReplicaClaimant | None:
        """The claimant's replica data (None for an unknown claimant), from the cache if there."""
        return (await self.get_many([user_id])).claimants.get(user_id)

    async def get_many(self, user_ids: Sequence[int]) -> ReplicaBatch:
        """Cached claimants in one MGET; the misses loaded from the replica and cached."""
        ids = sorted(set(user_ids))
        if not ids:
            return ReplicaBatch({}, frozenset())
        values = await self._redis.mget([context_key(u) for u in ids])
        found = {
            user_id: _ADAPTER.validate_json(value)
            for user_id, value in zip(ids, values, strict=True)
            if value is not None
        }
        hits = frozenset(found)
        missing = [u for u in ids if u not in hits]
        async with self._redis.pipeline(transaction=False) as pipe:
            if hits:
                pipe.hincrby(STATS_KEY, "hits", len(hits))
            if missing:
                pipe.hincrby(STATS_KEY, "misses", len(missing))
            await pipe.execute()
        if missing:
            loaded = await self.load_many(missing)
            await self._store(list(loaded.values()))
            found.update(loaded)
        return ReplicaBatch(found, hits)

    async def invalidate(self, user_ids: Iterable[int]) -> int:
        keys = [context_key(u) for u in set(user_ids)]
        if not keys:
            return 0
        return int(await self._redis.delete(*keys))

    async def warm(self, user_ids: Sequence[int]) -> int:
        """Load and cache these claimants' replica data; returns how many were cached."""
        loaded = await self.load_many(user_ids)
        await self._store(list(loaded.values()))
        return len(loaded)

    async def cached(self, user_id: int) -> bool:
        return bool(await self._redis.exists(context_key(user_id)))

    async def _store(self, claimants: list[ReplicaClaimant]) -> None:
        if not claimants:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for claimant in claimants:
                pipe.set(context_key(claimant.user_id), _ADAPTER.dump_json(claimant), ex=self._ttl)
            await pipe.execute()

    async def load_many(self, user_ids: Sequence[int]) -> dict[int, ReplicaClaimant]:
        """The replica data of the claimants that exist, read from the replica (not the
        cache), `LOAD_BATCH` claimants per round of three queries."""
        ids = sorted(set(user_ids))
        loaded: dict[int, ReplicaClaimant] = {}
        for start in range(0, len(ids), LOAD_BATCH):
            rows = await self._replica.context_rows(ids[start : start + LOAD_BATCH])
            loaded.update(_claimants_from(rows, loaded_at=datetime.now(UTC)))
        return loaded


def _claimants_from(rows: ContextRows, *, loaded_at: datetime) -> dict[int, ReplicaClaimant]:
    """Users with their claims, each claim with its requirements (rows in id order)."""
    requirements_of: dict[int, list[RequirementView]] = {}
    for row in rows.requirements:
        requirements_of.setdefault(row.claim_id, []).append(
            RequirementView(requirement_id=row.id, type=row.type, status=row.status)
        )
    claims_of: dict[int, list[ClaimView]] = {}
    for claim in rows.claims:
        claims_of.setdefault(claim.user_id, []).append(
            ClaimView(
                claim_id=claim.id,
                lender=claim.lender,
                status=claim.status,
                created_at=claim.created_at.replace(tzinfo=UTC),
                estimated_value=None
                if claim.estimated_value is None
                else float(claim.estimated_value),
                requirements=requirements_of.get(claim.id, []),
            )
        )
    return {
        user.id: ReplicaClaimant(
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
            loaded_at=loaded_at,
            claims=claims_of.get(user.id, []),
        )
        for user in rows.users
    }
