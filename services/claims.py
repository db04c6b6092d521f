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
from typing import Any, Protocol, TypeVar

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from schemas import dialler_db as db
from schemas.enums import Queue, TaskStatus
from schemas.messaging import MagicLinkCreated
from schemas.outreach import (
    ClaimGranted,
    ClaimRequest,
    MagicLinkRequest,
    OutcomeRecorded,
    OutcomeRequest,
    Released,
    ReleaseRequest,
)
from workflows.outreach import OutreachWorkflow, workflow_id_for

Request = TypeVar("Request")
Response = TypeVar("Response")
MAX_ATTEMPTS = 8  # stale rows skipped before giving up on this call

# Reserve the best ready task in one statement: no row lock is held while the workflow is
# asked to confirm, so the workflow's own writes to the row never wait on this agent.
# The reservation expires after RESERVE_SECONDS if this process dies before confirming
# (reconcile hands such rows back to their workflows).
RESERVE_SECONDS = 30
_RESERVE_NEXT = text(
    """
    UPDATE call_tasks
    SET status = 'claimed', claimed_by = :agent, claimed_at = now(),
        lease_expires_at = now() + make_interval(secs => :hold)
    WHERE id = (
        SELECT id FROM call_tasks
        WHERE status = 'ready' AND queue = :queue AND not_before <= now()
          AND (:people OR NOT route_to_people_only)
          AND NOT (id = ANY(:skip))
        ORDER BY score DESC
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id, user_id, workflow_id, version, score, score_breakdown, not_before_reason
    """
)


@dataclass(frozen=True)
class ClaimedTask:
    task_id: int
    user_id: int
    queue: Queue
    score: float
    score_breakdown: list[dict[str, Any]]
    reason: str
    lease_expires_at: datetime


class ClaimError(Exception):
    """The workflow refused the action; the message says why, for the agent."""


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
        client: Client,
        *,
        lease_seconds: int = 1200,
        events: ClaimEvents | None = None,
    ) -> None:
        self._engine = engine
        # The reservation and its settling are one statement each, atomic by themselves: no
        # BEGIN and COMMIT round trips around them.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._client = client
        self._lease_seconds = lease_seconds
        self._events = events

    async def claim_next(
        self, agent_id: int, queue: Queue, *, is_ai: bool = False
    ) -> ClaimedTask | None:
        """The best task this agent may take now, confirmed by its workflow; None if none."""
        task = await self._claim_next(agent_id, queue, is_ai)
        if task is not None and self._events is not None:
            await self._events.claimed(task)
        return task

    async def _claim_next(self, agent_id: int, queue: Queue, is_ai: bool) -> ClaimedTask | None:
        skipped: list[int] = []
        for _ in range(MAX_ATTEMPTS):
            async with self._autocommit.connect() as conn:
                row = (
                    await conn.execute(
                        _RESERVE_NEXT,
                        {
                            "agent": agent_id,
                            "hold": RESERVE_SECONDS,
                            "queue": queue.value,
                            "people": not is_ai,
                            "skip": skipped,
                        },
                    )
                ).one_or_none()
            if row is None:
                return None
            granted = await self._confirm(row, agent_id, queue, is_ai)
            if granted is None:
                skipped.append(row.id)
                continue
            await self._settle(row, agent_id, lease_expires_at=granted.lease_expires_at)
            return ClaimedTask(
                task_id=row.id,
                user_id=row.user_id,
                queue=queue,
                score=float(row.score),
                score_breakdown=list(row.score_breakdown),
                reason=row.not_before_reason,
                lease_expires_at=granted.lease_expires_at,
            )
        return None

    async def _settle(
        self, row: Any, agent_id: int, *, lease_expires_at: datetime | None, **values: Any
    ) -> None:
        """Finish this agent's reservation of `row`, unless the workflow has written a newer
        version since (its write wins)."""
        tasks = db.call_tasks.c
        async with self._autocommit.connect() as conn:
            await conn.execute(
                update(db.call_tasks)
                .where(
                    tasks.id == row.id,
                    tasks.version == row.version,
                    tasks.claimed_by == agent_id,
                    tasks.status == TaskStatus.CLAIMED.value,
                )
                .values(lease_expires_at=lease_expires_at, **values)
            )

    async def _confirm(
        self, row: Any, agent_id: int, queue: Queue, is_ai: bool
    ) -> ClaimGranted | None:
        handle = self._client.get_workflow_handle_for(OutreachWorkflow.run, row.workflow_id)
        request = ClaimRequest(
            agent_id=agent_id,
            queue=queue,
            task_version=row.version,
            is_ai=is_ai,
            lease_seconds=self._lease_seconds,
        )
        try:
            return await handle.execute_update(OutreachWorkflow.claim, request)
        except WorkflowUpdateFailedError:
            # stale: hand the row back; the workflow has moved on and will republish
            await self._hand_back(row, agent_id)
            return None
        except (RPCTimeoutOrCancelledError, asyncio.CancelledError):
            # No answer in time (or the caller gave up): the task goes back to the queue now
            # rather than when reconcile next looks. Should the workflow still grant the
            # claim, it refuses other agents until its lease ends, and this agent's retry is
            # granted again.
            await asyncio.shield(self._hand_back(row, agent_id))
            raise
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                await self._hand_back(row, agent_id)
                raise
            # No running workflow behind the row (it ended): the row is an orphan.
            await self._settle(
                row,
                agent_id,
                lease_expires_at=None,
                claimed_by=None,
                claimed_at=None,
                status=TaskStatus.WITHDRAWN.value,
                not_before_reason="workflow ended",
            )
            return None

    async def _hand_back(self, row: Any, agent_id: int) -> None:
        await self._settle(
            row,
            agent_id,
            lease_expires_at=None,
            status=TaskStatus.READY.value,
            claimed_by=None,
            claimed_at=None,
        )

    async def record_outcome(self, user_id: int, request: OutcomeRequest) -> OutcomeRecorded:
        result = await self._update(user_id, OutreachWorkflow.record_outcome, request)
        if self._events is not None:
            await self._events.outcome_recorded(user_id, result)
        return result

    async def release(self, user_id: int, request: ReleaseRequest) -> Released:
        result = await self._update(user_id, OutreachWorkflow.release, request)
        if self._events is not None:
            await self._events.released(user_id, request.agent_id, result)
        return result

    async def send_magic_link(self, user_id: int, request: MagicLinkRequest) -> MagicLinkCreated:
        """A single-use link by SMS or email, sent by the claimant's workflow."""
        return await self._update(user_id, OutreachWorkflow.send_magic_link, request)

    async def _update(
        self,
        user_id: int,
        update: UpdateMethodMultiParam[[OutreachWorkflow, Request], Response],
        request: Request,
    ) -> Response:
        handle = self._client.get_workflow_handle_for(
            OutreachWorkflow.run, workflow_id_for(user_id)
        )
        try:
            return await handle.execute_update(update, request)
        except WorkflowUpdateFailedError as error:
            raise ClaimError(_reason(error)) from None

    async def claimed_by(self, agent_id: int) -> list[int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(db.call_tasks.c.user_id).where(
                    db.call_tasks.c.claimed_by == agent_id,
                    db.call_tasks.c.status == TaskStatus.CLAIMED.value,
                )
            )
            return [int(r[0]) for r in rows]


def _reason(error: WorkflowUpdateFailedError) -> str:
    cause = error.cause
    return str(getattr(cause, "message", None) or cause or error)
