"""Contracts of change data capture (CDC) and of the batch schedules that back it up.

A CDC source (the MariaDB/MySQL binlog, or AWS DMS records on SQS) turns what it reads into
`RowChange`s: one changed row of the main app, with its before and after images, the
source's commit time and a position that identifies it in the source. `domain.change_events`
turns a `RowChange` into typed `ChangeEvent`s for the claimants' workflows. Anything that
cannot be parsed or applied becomes a `DeadLetter` (raw payload + reason) in PostgreSQL.

The batch workflows (catch-up, cache warming, integrity check, clean-up) take and return the
dataclasses at the bottom, one in and one out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Operation(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    LOAD = "load"  # a DMS full-load row: the row as it is, treated like an insert


class CdcSourceName(StrEnum):
    BINLOG = "binlog"
    SQS = "sqs"
    CATCH_UP = "catchup"  # the 15-minute catch-up's watermark in `cdc_offsets`


@dataclass(frozen=True)
class RowChange:
    """One changed row of the main app's database, as a CDC source saw it.

    `before` is None for inserts (and for DMS updates without a before image); `after` is
    None for deletes. `position` identifies the row change in its source (binlog: the
    transaction's GTID and the row's index in it; DMS: transaction id and record), so the
    change events made from it get the same ids however often it is delivered."""

    source: str
    table: str
    operation: Operation
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    committed_at: datetime  # UTC, the source's commit time
    position: str
    schema: str | None = None


@dataclass
class DeadLetter:
    """A message or row that could not be parsed or applied, kept with the reason."""

    id: int
    source: str
    raw_payload: str
    reason: str
    received_at: datetime
    replayed_at: datetime | None = None
    replay_count: int = 0


@dataclass
class ReplayOutcome:
    dead_letter_id: int
    replayed: bool
    signalled: int = 0
    reason: str = ""


@dataclass
class CdcStatus:
    """What `dialler sync status` and `/api/health` report about the CDC worker."""

    source: str
    position: str | None
    events_applied_total: int
    lag_seconds: float | None  # see workers/cdc.py for how it is measured
    events_per_second: float
    errors: int
    dead_letters_pending: int
    heartbeat_at: datetime | None
    running: bool  # a heartbeat within the last 15 seconds
    last_error: str | None = None


# --- batch schedules ---------------------------------------------------------------------


@dataclass
class CatchUpInput:
    # claimants refreshed per run at most; the watermark stops where the scan stopped
    max_claimants: int = 50_000


@dataclass
class CatchUpScanRequest:
    max_claimants: int


@dataclass
class CatchUpScan:
    """Claimants with replica rows changed since the watermark, and the watermark to store
    once they have been refreshed (the replica's own clock, naive as its DATETIMEs are)."""

    user_ids: list[int]
    scanned_from: datetime | None
    new_watermark: datetime
    capped: bool = False


@dataclass
class WatermarkUpdate:
    watermark: datetime
    refreshed: int


@dataclass
class CatchUpResult:
    refreshed: int
    scanned_from: datetime | None
    watermark: datetime
    capped: bool


@dataclass
class CacheWarmInput:
    per_queue: int = 200


@dataclass
class CacheWarmResult:
    warmed: int
    per_queue: dict[str, int] = field(default_factory=dict)


@dataclass
class IntegrityInput:
    # set by tests; the workflow uses its own deterministic clock otherwise
    now: datetime | None = None
    repair: bool = True


@dataclass
class IntegrityPlanRequest:
    now: datetime


@dataclass
class IntegrityPlan:
    """Drift between the replica (the seed's queue queries), the running outreach workflows
    (their `OutreachQueue` search attribute) and the queue projection (`call_tasks`)."""

    expected: int  # claimants the seed's queries put in a queue
    running_workflows: int
    published_tasks: int
    replica_vs_projection: int  # expected queue differs from the published task's queue
    missing_workflows: int  # expected in a queue, no running workflow
    orphan_tasks: int  # a ready/claimed task with no running workflow
    workflow_vs_projection: int  # the workflow's queue differs from its task's queue
    to_refresh: list[int] = field(default_factory=list)


@dataclass
class IntegrityResult:
    plan: IntegrityPlan
    repaired: int


@dataclass
class CleanupInput:
    # set by tests; the workflow uses its own deterministic clock otherwise
    now: datetime | None = None


@dataclass
class CleanupRequest:
    now: datetime


@dataclass
class CleanupResult:
    magic_links: int  # deleted past the attribution retention (with their events)
    agent_sessions: int
    dead_letters: int
    # attribution (issue 11): token hashes purged after expiry, conversions past retention
    magic_link_secrets: int = 0
    conversions: int = 0
    # recordings and transcripts past retention (issue 11): deleted, and left for tomorrow
    recordings_deleted: int = 0
    recordings_failed: int = 0
    # AI conversations' transcripts past the same retention (issue 13)
    ai_transcripts_deleted: int = 0
