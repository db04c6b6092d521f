"""RulesRolloutWorkflow (`rules-rollout-<version>`): after a rules version is saved, every
claimant with a task re-assesses under it, so the queues show the new order. Durable: a web
process that restarts after the save does not lose it, and the Temporal UI shows its
progress."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.rules_rollout import RulesRolloutActivities
    from schemas.rules import RulesRolledOut, RulesRollout


def rollout_id_for(version: int) -> str:
    return f"rules-rollout-{version}"


@workflow.defn(name="RulesRollout")
class RulesRolloutWorkflow:
    @workflow.run
    async def run(self, request: RulesRollout) -> RulesRolledOut:
        workflow.set_current_details(
            f"telling claimants that rules version {request.version} is saved"
        )
        result = await workflow.execute_activity_method(
            RulesRolloutActivities.tell_claimants,
            request,
            # 100,000 claimants at a few hundred signals a second; the heartbeat says it lives
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        workflow.set_current_details(
            f"rules version {result.version}: {result.told} of {result.claimants} claimants told"
        )
        return result
