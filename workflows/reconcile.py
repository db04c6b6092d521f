"""ReconcileWorkflow: every 5 minutes (a Temporal Schedule), the seed's three queue queries
are compared with the queue projection, and every claimant who disagrees is nudged, so a
missed change event heals itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities
    from schemas.reconcile import (
        ReconcileInput,
        ReconcilePlan,
        ReconcilePlanRequest,
        ReconcileResult,
        RefreshBatch,
    )

BATCH = 1000
PARALLEL_BATCHES = 4
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


@workflow.defn(name="Reconcile")
class ReconcileWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileResult:
        now = input.now or workflow.now()
        counts: dict[str, int] = {}
        refreshed = withdrawn = 0
        from_user_id: int | None = 0
        while from_user_id is not None:
            plan = await workflow.execute_activity_method(
                ReconcileActivities.plan,
                ReconcilePlanRequest(now, from_user_id, input.page_size),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
            workflow.set_current_details(
                f"users from {from_user_id}: queues {plan.counts}; "
                f"refreshing {len(plan.to_refresh)}, withdrawing {len(plan.to_withdraw)}"
            )
            await self._nudge(plan)
            for queue, count in plan.counts.items():
                counts[queue] = counts.get(queue, 0) + count
            refreshed += len(plan.to_refresh)
            withdrawn += len(plan.to_withdraw)
            from_user_id = plan.next_from_user_id
        return ReconcileResult(counts=counts, refreshed=refreshed, withdrawn=withdrawn)

    async def _nudge(self, plan: ReconcilePlan) -> None:
        """Refresh and withdraw in batches, a few batches at a time."""
        run_id = workflow.info().run_id
        batches = [
            (ReconcileActivities.refresh, plan.to_refresh[i : i + BATCH], i)
            for i in range(0, len(plan.to_refresh), BATCH)
        ] + [
            (ReconcileActivities.withdraw, plan.to_withdraw[i : i + BATCH], i)
            for i in range(0, len(plan.to_withdraw), BATCH)
        ]
        for start in range(0, len(batches), PARALLEL_BATCHES):
            await asyncio.gather(
                *(
                    workflow.execute_activity_method(
                        method,
                        # event ids add the user id: unique across pages too
                        RefreshBatch(ids, "reconcile", f"reconcile-{run_id}-{method.__name__}-{i}"),
                        start_to_close_timeout=timedelta(minutes=10),
                        heartbeat_timeout=timedelta(minutes=1),
                        retry_policy=RETRY,
                    )
                    for method, ids, i in batches[start : start + PARALLEL_BATCHES]
                )
            )
