"""RulesRolloutWorkflow (`rules-rollout-<version>`): after a rules version is saved, every
claimant with a task re-assesses under it, so the queues show the new order. Durable: a web
process that restarts after the save does not lose it, and the Temporal UI shows its
progress.

The same workflow re-scores the queues when a live split of the score starts or ends
(`split-rollout-<split>-<started|ended>`, issue 14): it first waits a few seconds (a durable
timer) so that every worker has seen the split, which they check every few seconds."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.rules_rollout import RulesRolloutActivities
    from domain.scoring_split import SPLIT_SETTLE_SECONDS
    from schemas.rules import RulesRolledOut, RulesRollout


def rollout_id_for(version: int) -> str:
    return f"rules-rollout-{version}"


def split_rollout_id_for(split_id: int, change: str) -> str:
    return f"split-rollout-{split_id}-{change}"


@workflow.defn(name="RulesRollout")
class RulesRolloutWorkflow:
    @workflow.run
    async def run(self, request: RulesRollout) -> RulesRolledOut:
        if request.split_id is not None:
            workflow.set_current_details(
                f"live split {request.split_id} {request.split_change}: waiting for the "
                "workers to see it"
            )
            await workflow.sleep(timedelta(seconds=SPLIT_SETTLE_SECONDS))
            workflow.set_current_details(
                f"telling claimants that live split {request.split_id} {request.split_change}"
            )
        else:
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
        what = (
            f"rules version {result.version}"
            if request.split_id is None
            else f"live split {request.split_id} {request.split_change}"
        )
        workflow.set_current_details(f"{what}: {result.told} of {result.claimants} claimants told")
        return result
