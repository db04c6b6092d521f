"""Activities of the reconcile workflow: compare the seed's queue queries with the queue
projection, and nudge the workflows that disagree."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client

from adapters import task_store
from adapters.queue_queries import (
    ALL_IDS,
    due_callback_user_ids,
    outstanding_user_ids,
    page_end,
    unsigned_user_ids,
)
from adapters.rules_source import RulesSource, as_source
from domain.rules import DiallerRules
from schemas.enums import TaskStatus
from schemas.outreach import ChangeEvent, ChangeKind, Stage
from schemas.reconcile import ReconcilePlan, ReconcilePlanRequest, RefreshBatch, RefreshDone
from workflows.outreach_client import OutreachClient

SIGNALS_IN_FLIGHT = 16
SETTLED_RECHECK = timedelta(days=1)


def expected_queues(
    callback: set[int], unsigned: set[int], outstanding: set[int], priority: list[Stage]
) -> dict[int, str]:
    """Each claimant's queue by the seed's queries, resolving overlaps by stage priority."""
    members = {Stage.CALLBACK: callback, Stage.UNSIGNED: unsigned, Stage.OUTSTANDING: outstanding}
    expected: dict[int, str] = {}
    for stage in reversed(priority):  # higher priority written last wins
        expected.update(dict.fromkeys(members[stage], stage.value))
    return expected


class ReconcileActivities:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica_db: AsyncEngine,
        client: Client,
        task_queue: str,
        rules: RulesSource | DiallerRules,
    ) -> None:
        self._dialler = dialler
        self._replica = replica_db
        self._outreach = OutreachClient.over(client, task_queue)
        self._rules = as_source(rules)

    @activity.defn
    async def plan(self, request: ReconcilePlanRequest) -> ReconcilePlan:
        """One page: the replica users from `from_user_id`, `page_size` of them, and the
        tasks of user ids in the same range (the last page takes every id above)."""
        end = await page_end(self._replica, request.from_user_id, request.page_size)
        ids = (request.from_user_id, ALL_IDS[1] if end is None else end)
        unsigned, outstanding, callback = await asyncio.gather(
            unsigned_user_ids(self._replica, ids),
            outstanding_user_ids(self._replica, ids),
            due_callback_user_ids(self._dialler, self._replica, request.now, ids),
        )
        priority = (await self._rules.current()).stage_priority
        expected = expected_queues(callback, unsigned, outstanding, priority)
        published: dict[int, str] = {}
        lapsed: set[int] = set()  # claims or reservations past their lease
        for task in await task_store.live_tasks(self._dialler, ids):
            published[task.user_id] = task.queue
            lease = task.lease_expires_at
            if task.status == TaskStatus.CLAIMED.value and lease and lease < request.now:
                lapsed.add(task.user_id)
        # A claimant in a queue whose workflow withdrew the task recently (no live-call
        # consent, a wrong number...) agrees with the projection: refreshing them every five
        # minutes would reload a sixth of the claimants for nothing. Once a day they are
        # refreshed all the same, which heals a missed consent or phone change.
        settled = await task_store.recently_withdrawn(
            self._dialler, request.now - SETTLED_RECHECK, ids
        )
        counts = {stage: 0 for stage in ("callback", "unsigned", "outstanding")}
        for queue in expected.values():
            counts[queue] += 1
        return ReconcilePlan(
            counts=counts,
            to_refresh=sorted(
                u
                for u, q in expected.items()
                if (published.get(u) != q and settled.get(u) != q) or u in lapsed
            ),
            to_withdraw=sorted(u for u in published if u not in expected),
            next_from_user_id=end,
        )

    @activity.defn
    async def refresh(self, batch: RefreshBatch) -> RefreshDone:
        """Signal-with-start each claimant's workflow with a REFRESH event: a running one
        reloads its facts, a missing one starts and builds them."""
        gate = asyncio.Semaphore(SIGNALS_IN_FLIGHT)
        now = datetime.now(UTC)

        async def one(user_id: int) -> None:
            async with gate:
                event = ChangeEvent(
                    event_id=f"{batch.batch_id}:{user_id}",
                    kind=ChangeKind.REFRESH,
                    user_id=user_id,
                    occurred_at=now,
                    reason=batch.reason,
                )
                await self._outreach.deliver(event)
            activity.heartbeat()

        await asyncio.gather(*(one(u) for u in batch.user_ids))
        return RefreshDone(signalled=len(batch.user_ids))

    @activity.defn
    async def withdraw(self, batch: RefreshBatch) -> RefreshDone:
        """Tasks of claimants who belong in no queue: a running workflow is asked to
        reconsider; a task with no workflow behind it is withdrawn here."""
        signalled, direct = 0, []
        now = datetime.now(UTC)
        for user_id in batch.user_ids:
            event = ChangeEvent(f"{batch.batch_id}:{user_id}", ChangeKind.REFRESH, user_id, now)
            if await self._outreach.nudge(event):
                signalled += 1
            else:
                direct.append(user_id)
        if direct:
            await task_store.withdraw_without_workflow(self._dialler, direct, "in no queue")
        return RefreshDone(signalled=signalled, withdrawn_directly=len(direct))
