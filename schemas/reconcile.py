"""Messages of the reconcile workflow (the 5-minute batch that heals missed changes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Claimants per plan page: a page's id lists stay far below Temporal's 2 MiB payload limit
# (a cold start at 500,000 claimants planned in one piece was 2.4 MiB).
PLAN_PAGE = 50_000


@dataclass
class ReconcileInput:
    # set by tests; the workflow uses its own deterministic clock otherwise
    now: datetime | None = None
    page_size: int = PLAN_PAGE


@dataclass
class ReconcilePlanRequest:
    """Plan for the replica users from `from_user_id` on, `page_size` of them (and for the
    tasks of user ids in the same range)."""

    now: datetime
    from_user_id: int = 0
    page_size: int = PLAN_PAGE


@dataclass
class ReconcilePlan:
    """Seed-query memberships per queue and what disagrees with the queue projection, for
    one page of user ids; `next_from_user_id` starts the next page (None: this was the last)."""

    counts: dict[str, int]
    to_refresh: list[int] = field(default_factory=list)
    to_withdraw: list[int] = field(default_factory=list)
    next_from_user_id: int | None = None


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
