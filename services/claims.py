"""The claim protocol: how an agent (person or AI) takes the next call.

`call_tasks` is only an index. Claim-next reserves the best ready task in one atomic
statement (`FOR UPDATE SKIP LOCKED`, then status 'claimed'), and asks the claimant's
workflow to confirm with the `claim` Update. The workflow is the source of truth: if it
says the task is stale, the reservation is handed back and the next task tried. The
atomic reservation makes two agents racing for one task impossible; the Update makes a
claim on an outdated task impossible.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import task_store
from schemas.enums import Queue, TaskStatus
from schemas.messaging import MagicLinkCreated
from schemas.outreach import (
    CallbackRequest,
    CallbackScheduled,
    ClaimGranted,
    ClaimRequest,
    MagicLinkRequest,
    NoteAdded,
    NoteRequest,
    OutcomeRecorded,
    OutcomeRequest,
    Released,
    ReleaseRequest,
)
from workflows.outreach_client import (
    OutreachClient,
    OutreachNotRunning,
    OutreachRefused,
    OutreachUnavailable,
)

MAX_ATTEMPTS = 8  # stale rows skipped before giving up on this call

# The reservation expires after RESERVE_SECONDS if this process dies before confirming
# (reconcile hands such rows back to their workflows). The statements are the task store's.
RESERVE_SECONDS = 30
SETTLE_SECONDS = 5.0  # how long a claim cut short may take to learn what the workflow did


@dataclass(frozen=True)
class ClaimedTask:
    task_id: int
    user_id: int
    queue: Queue
    score: float
    score_breakdown: list[dict[str, Any]]
    reason: str
    lease_expires_at: datetime


class ClaimEvents(Protocol):
    """Told after each change to the queue commits (live views: queue depth, released tasks).
    Implementations must not raise: the agent's action has already happened."""

    async def claimed(self, task: ClaimedTask) -> None: ...

    async def outcome_recorded(self, user_id: int, result: OutcomeRecorded) -> None: ...

    async def released(self, user_id: int, agent_id: int, result: Released) -> None: ...


class ClaimService:
    def __init__(
        self,
        engine: AsyncEngine,
        outreach: OutreachClient,
        *,
        lease_seconds: int = 1200,
        events: ClaimEvents | None = None,
        session_idle_seconds: int = 1800,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self._engine = engine
        # The reservation and its settling are one statement each, atomic by themselves: no
        # BEGIN and COMMIT round trips around them.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._outreach = outreach
        self._lease_seconds = lease_seconds
        self._events = events
        self._idle_seconds = session_idle_seconds  # a session idle this long is signed out
        self._settle_seconds = settle_seconds

    async def claim_next(
        self, agent_id: int, queue: Queue, *, is_ai: bool = False
    ) -> ClaimedTask | None:
        """The task this agent already holds, else the best task they may take now,
        confirmed by its workflow; None if none."""
        task = await self._claim_next(agent_id, queue, is_ai)
        if task is not None and self._events is not None:
            await self._events.claimed(task)
        return task

    async def _claim_next(self, agent_id: int, queue: Queue, is_ai: bool) -> ClaimedTask | None:
        async with self._autocommit.connect() as conn:
            held = await task_store.held_reservation(conn, agent_id, queue)
        if held is not None:
            task = await self._resumed(held, agent_id)
            if task is not None:
                return task
        skipped: list[int] = []
        for _ in range(MAX_ATTEMPTS):
            async with self._autocommit.connect() as conn:
                row = await task_store.reserve_next(
                    conn,
                    agent_id=agent_id,
                    queue=queue,
                    people=not is_ai,
                    skip=skipped,
                    hold_seconds=RESERVE_SECONDS,
                    session_idle_seconds=self._idle_seconds,
                )
            if row is None:
                return None
            task = await self._confirmed(row, agent_id, is_ai)
            if task is not None:
                return task
            skipped.append(row.id)
        return None

    async def _resumed(self, row: Any, agent_id: int) -> ClaimedTask | None:
        """The claim this agent holds on `row`, as its workflow knows it (a retry after a
        lost response), or None: then the row is the workflow's to rewrite (its lease ended,
        or the reservation is another request's still being confirmed), so it is left as it
        is rather than handed back over a claim the workflow may hold."""
        claim = await self._outreach.current_claim(row.user_id)
        if claim is None or claim.agent_id != agent_id:
            return None
        # the workflow's lease, on the row too (a no-op once the first answer settled it)
        await self._settle(row, agent_id, lease_expires_at=claim.lease_expires_at)
        return self._claimed_task(row, claim.lease_expires_at)

    def _claimed_task(self, row: Any, lease_expires_at: datetime) -> ClaimedTask:
        return ClaimedTask(
            task_id=row.id,
            user_id=row.user_id,
            queue=Queue(row.queue),
            score=float(row.score),
            score_breakdown=list(row.score_breakdown),
            reason=row.not_before_reason,
            lease_expires_at=lease_expires_at,
        )

    async def _confirmed(self, row: Any, agent_id: int, is_ai: bool) -> ClaimedTask | None:
        """Ask the workflow to confirm this agent's reservation of `row`; the claimed task,
        or None when it refused (the row is then handed back)."""
        granted = await self._confirm(row, agent_id, is_ai)
        if granted is None:
            return None
        await self._settle(row, agent_id, lease_expires_at=granted.lease_expires_at)
        return self._claimed_task(row, granted.lease_expires_at)

    async def _settle(self, row: Any, agent_id: int, *, lease_expires_at: datetime | None) -> None:
        """Record the workflow's lease on this agent's reservation of `row`, unless the
        workflow has written a newer version since (its write wins)."""
        async with self._autocommit.connect() as conn:
            await task_store.confirm_reservation(
                conn, row, agent_id, lease_expires_at=lease_expires_at
            )

    def _claim_request(self, row: Any, agent_id: int, is_ai: bool) -> ClaimRequest:
        return ClaimRequest(
            agent_id=agent_id,
            queue=Queue(row.queue),
            task_version=row.version,
            is_ai=is_ai,
            lease_seconds=self._lease_seconds,
            owner_away=bool(row.owner_away),
        )

    async def _confirm(self, row: Any, agent_id: int, is_ai: bool) -> ClaimGranted | None:
        request = self._claim_request(row, agent_id, is_ai)
        try:
            return await self._outreach.claim(row.user_id, request)
        except OutreachNotRunning:
            # No running workflow behind the row (it ended): the row is an orphan.
            await self._hand_back(row, agent_id, TaskStatus.WITHDRAWN, "workflow ended")
            return None
        except OutreachRefused:
            # stale: hand the row back; the workflow has moved on and will republish
            await self._hand_back(row, agent_id)
            return None
        except (OutreachUnavailable, asyncio.CancelledError):
            # No answer in time, or the caller gave up (a dropped connection): the workflow
            # may have granted the claim already. Handing the row back blindly would list
            # as ready a task the workflow refuses to everyone else until the lease ends, so
            # settle with the workflow first (shielded: the caller is gone).
            await asyncio.shield(self._settle_unanswered(row, agent_id, is_ai))
            raise

    async def _settle_unanswered(self, row: Any, agent_id: int, is_ai: bool) -> None:
        """Make the row agree with the workflow after a claim whose answer was lost. The
        claim is asked again: it is idempotent for the same agent and task version, so the
        answer says whether the agent holds the task. Held: the row records the lease (the
        agent's retry of claim-next returns this task). Refused: the row is handed back.
        No answer within `settle_seconds` either (Temporal unreachable): handed back, and
        the workflow's lease, if any, lapses by itself."""
        request = self._claim_request(row, agent_id, is_ai)
        try:
            async with asyncio.timeout(self._settle_seconds):
                granted = await self._outreach.claim(row.user_id, request)
        except (OutreachRefused, OutreachUnavailable, TimeoutError):
            await self._hand_back(row, agent_id)
            return
        await self._settle(row, agent_id, lease_expires_at=granted.lease_expires_at)

    async def _hand_back(
        self,
        row: Any,
        agent_id: int,
        status: TaskStatus = TaskStatus.READY,
        reason: str | None = None,
    ) -> None:
        """End this agent's reservation of `row` without a claim (unless the workflow has
        written a newer version since): back to `ready`, or withdrawn when orphaned."""
        async with self._autocommit.connect() as conn:
            await task_store.end_reservation(conn, row, agent_id, status=status, reason=reason)

    async def record_outcome(self, user_id: int, request: OutcomeRequest) -> OutcomeRecorded:
        result = await self._outreach.record_outcome(user_id, request)
        if self._events is not None:
            await self._events.outcome_recorded(user_id, result)
        return result

    async def release(self, user_id: int, request: ReleaseRequest) -> Released:
        result = await self._outreach.release(user_id, request)
        if self._events is not None:
            await self._events.released(user_id, request.agent_id, result)
        return result

    async def send_magic_link(self, user_id: int, request: MagicLinkRequest) -> MagicLinkCreated:
        """A single-use link by SMS or email, sent by the claimant's workflow."""
        return await self._outreach.send_magic_link(user_id, request)

    async def schedule_callback(self, user_id: int, request: CallbackRequest) -> CallbackScheduled:
        """A callback, personal or shared, booked by the claimant's workflow (no claim or
        outcome needed); it replaces a pending one."""
        return await self._outreach.schedule_callback(user_id, request)

    async def add_note(self, user_id: int, request: NoteRequest) -> NoteAdded:
        return await self._outreach.add_note(user_id, request)

    async def claimed_by(self, agent_id: int) -> list[int]:
        return await task_store.claimed_user_ids(self._engine, agent_id)
