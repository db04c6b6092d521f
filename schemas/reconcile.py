"""Messages of the reconcile workflow (the 5-minute batch that heals missed changes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class ReconcileInput:
    # set by tests; the workflow uses its own deterministic clock otherwise
    now: datetime | None = None


@dataclass
class ReconcilePlanRequest:
    now: datetime


@dataclass
class ReconcilePlan:
    """Seed-query memberships per queue and what disagrees with the queue projection."""

    counts: dict[str, int]
    to_refresh: list[int] = field(default_factory=list)
    to_withdraw: list[int] = field(default_factory=list)


@dataclass
class RefreshBatch:
    user_ids: list[int]
    reason: str
    batch_id: str


@dataclass
class RefreshDone:
    signalled: int
    withdrawn_directly: int = 0


@dataclass
class ReconcileResult:
    counts: dict[str, int]
    refreshed: int
    withdrawn: int
