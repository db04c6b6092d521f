"""CDC worker metrics: counted in the worker, published to Redis once a second, read by
`dialler sync status`, `/api/health` and the supervisor dashboard.

Lag: while events are waiting (read but not yet delivered), it is now minus the commit time
of the last event delivered; once the worker has caught up, it is how long the last event
took from its commit to its delivery. (The binlog's commit times have whole seconds, so on
that source the figure is within a second.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from adapters.cdc_store import CdcStore
from schemas.cdc import CdcStatus

KEY_PREFIX = "dialler:cdc:metrics:"
RATE_WINDOW_SECONDS = 10
RUNNING_WITHIN_SECONDS = 15
KEY_TTL_SECONDS = 7 * 24 * 3600


def metrics_key(source: str) -> str:
    return KEY_PREFIX + source


class CdcMetrics:
    """In-process counters of one CDC worker."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.started_at = time.time()
        self.events_applied = 0
        self.changes_read = 0
        self.errors = 0
        self.dead_letters = 0
        self.cache_invalidations = 0
        self.last_error: str | None = None
        self.last_commit_at: float | None = None  # commit time of the last delivered event
        self.last_applied_at: float | None = None
        self.in_flight = 0  # units read and not yet delivered
        self.position: str | None = None
        self._buckets: deque[tuple[int, int]] = deque()

    def applied(self, events: int, committed_at: datetime) -> None:
        now = time.time()
        self.events_applied += events
        commit = committed_at.timestamp()
        if self.last_commit_at is None or commit >= self.last_commit_at:
            self.last_commit_at = commit
            self.last_applied_at = now
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + events)
        else:
            self._buckets.append((second, events))
        self._trim(second)

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message[:300]

    def dead_letter(self) -> None:
        self.dead_letters += 1

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - RATE_WINDOW_SECONDS:
            self._buckets.popleft()

    def events_per_second(self) -> float:
        now = int(time.time())
        self._trim(now)
        return sum(count for _, count in self._buckets) / RATE_WINDOW_SECONDS

    def lag_seconds(self) -> float | None:
        if self.last_commit_at is None or self.last_applied_at is None:
            return None
        if self.in_flight > 0:
            return max(0.0, time.time() - self.last_commit_at)
        return max(0.0, self.last_applied_at - self.last_commit_at)

    def snapshot(self) -> dict[str, str]:
        lag = self.lag_seconds()
        return {
            "source": self.source,
            "started_at": f"{self.started_at:.3f}",
            "heartbeat_at": f"{time.time():.3f}",
            "events_applied": str(self.events_applied),
            "changes_read": str(self.changes_read),
            "errors": str(self.errors),
            "dead_letters": str(self.dead_letters),
            "cache_invalidations": str(self.cache_invalidations),
            "in_flight": str(self.in_flight),
            "events_per_second": f"{self.events_per_second():.2f}",
            "lag_seconds": "" if lag is None else f"{lag:.3f}",
            "position": self.position or "",
            "last_error": self.last_error or "",
        }


async def publish(redis: Redis, metrics: CdcMetrics) -> None:
    key = metrics_key(metrics.source)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=metrics.snapshot())  # type: ignore[arg-type]
        pipe.expire(key, KEY_TTL_SECONDS)
        await pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_metrics(redis: Redis, source: str) -> dict[str, str]:
    raw: Mapping[Any, Any] = await redis.hgetall(metrics_key(source))
    return {_text(k): _text(v) for k, v in raw.items()}


def status_from(
    source: str,
    metrics: Mapping[str, str],
    *,
    position: str | None,
    events_applied_total: int,
    dead_letters_pending: int,
) -> CdcStatus:
    heartbeat = float(metrics["heartbeat_at"]) if metrics.get("heartbeat_at") else None
    lag = metrics.get("lag_seconds")
    return CdcStatus(
        source=source,
        position=metrics.get("position") or position,
        events_applied_total=events_applied_total,
        lag_seconds=float(lag) if lag else None,
        events_per_second=float(metrics.get("events_per_second") or 0.0),
        errors=int(metrics.get("errors") or 0),
        dead_letters_pending=dead_letters_pending,
        heartbeat_at=datetime.fromtimestamp(heartbeat, UTC) if heartbeat else None,
        running=heartbeat is not None and time.time() - heartbeat < RUNNING_WITHIN_SECONDS,
        last_error=metrics.get("last_error") or None,
    )


async def read_status(redis: Redis, store: CdcStore, source: str) -> CdcStatus:
    """The CDC worker's status: its metrics in Redis, its position and dead letters in
    PostgreSQL."""
    metrics = await read_metrics(redis, source)
    offsets = await store.offsets()
    position, applied, _ = offsets.get(source, ({}, 0, None))
    stored = ",".join(f"{k}={v}" for k, v in sorted(position.items())) or None
    return status_from(
        source,
        metrics,
        position=stored,
        events_applied_total=applied,
        dead_letters_pending=await store.pending_dead_letters(),
    )
