"""The batch workflows behind the CDC stream, each run by a Temporal Schedule
(`workers/schedules.py`) on the outreach task queue:

- CatchUpWorkflow (every 15 minutes): claimants whose replica rows changed since the
  watermark are refreshed, so a change the stream missed heals within minutes;
- CacheWarmWorkflow (hourly): the contexts of the claimants at the top of each queue are
  loaded into the Redis cache before agents ask for them;
- IntegrityCheckWorkflow (every 6 hours): replica vs running workflows vs queue projection;
  drift is counted, written to the audit log and repaired by refreshing those claimants;
- CleanupWorkflow (daily): retention of expired links, old sessions, replayed dead letters,
  and of call recordings and transcripts (each one deleted at its store and audited), with
  the AI conversations' transcripts (issue 13).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.maintenance import MaintenanceActivities
    from activities.outreach import OutreachActivities
    from activities.reconcile import ReconcileActivities
    from schemas.cdc import (
        CacheWarmInput,
        CacheWarmResult,
        CatchUpInput,
        CatchUpResult,
        CatchUpScanRequest,
        CleanupInput,
        CleanupRequest,
        CleanupResult,
        IntegrityInput,
        IntegrityPlanRequest,
        IntegrityResult,
        WatermarkUpdate,
    )
    from schemas.outreach import AuditEntry
    from schemas.reconcile import RefreshBatch
    from schemas.recordings import RecordingRetentionRequest

BATCH = 1000
PARALLEL_BATCHES = 4
RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


async def _refresh_all(user_ids: list[int], reason: str) -> int:
    """Signal-with-start a REFRESH to each claimant (reconcile's activity), in batches."""
    run_id = workflow.info().run_id
    batches = [user_ids[i : i + BATCH] for i in range(0, len(user_ids), BATCH)]
    for start in range(0, len(batches), PARALLEL_BATCHES):
        await asyncio.gather(
            *(
                workflow.execute_activity_method(
                    ReconcileActivities.refresh,
                    RefreshBatch(ids, reason, f"{reason}-{run_id}-{start + n}"),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(minutes=1),
                    retry_policy=RETRY,
                )
                for n, ids in enumerate(batches[start : start + PARALLEL_BATCHES])
            )
        )
    return len(user_ids)


async def _audit(action: str, subject: str, detail: dict[str, str]) -> None:
    await workflow.execute_activity_method(
        OutreachActivities.audit,
        AuditEntry("system", None, action, subject, None, detail),
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RETRY,
    )


@workflow.defn(name="CatchUp")
class CatchUpWorkflow:
    @workflow.run
    async def run(self, input: CatchUpInput) -> CatchUpResult:
        scan = await workflow.execute_activity_method(
            MaintenanceActivities.catch_up_scan,
            CatchUpScanRequest(input.max_claimants),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )
        workflow.set_current_details(
            f"refreshing {len(scan.user_ids)} claimants changed since {scan.scanned_from}"
        )
        refreshed = await _refresh_all(scan.user_ids, "catch-up")
        # the watermark moves only once every claimant before it has been refreshed
        await workflow.execute_activity_method(
            MaintenanceActivities.save_watermark,
            WatermarkUpdate(scan.new_watermark, refreshed),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return CatchUpResult(refreshed, scan.scanned_from, scan.new_watermark, scan.capped)


@workflow.defn(name="CacheWarm")
class CacheWarmWorkflow:
    @workflow.run
    async def run(self, input: CacheWarmInput) -> CacheWarmResult:
        return await workflow.execute_activity_method(
            MaintenanceActivities.warm_cache,
            input,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )


@workflow.defn(name="IntegrityCheck")
class IntegrityCheckWorkflow:
    @workflow.run
    async def run(self, input: IntegrityInput) -> IntegrityResult:
        plan = await workflow.execute_activity_method(
            MaintenanceActivities.integrity_plan,
            IntegrityPlanRequest(input.now or workflow.now()),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        counts = {
            "expected": plan.expected,
            "running_workflows": plan.running_workflows,
            "published_tasks": plan.published_tasks,
            "replica_vs_projection": plan.replica_vs_projection,
            "missing_workflows": plan.missing_workflows,
            "orphan_tasks": plan.orphan_tasks,
            "workflow_vs_projection": plan.workflow_vs_projection,
        }
        workflow.set_current_details(", ".join(f"{name} {value}" for name, value in counts.items()))
        repaired = await _refresh_all(plan.to_refresh, "integrity") if input.repair else 0
        detail = {name: str(value) for name, value in counts.items()}
        detail["repaired"] = str(repaired)
        await _audit("integrity_check", "queue_projection", detail)
        return IntegrityResult(plan=plan, repaired=repaired)


@workflow.defn(name="Cleanup")
class CleanupWorkflow:
    @workflow.run
    async def run(self, input: CleanupInput) -> CleanupResult:
        now = input.now or workflow.now()
        result = await workflow.execute_activity_method(
            MaintenanceActivities.cleanup,
            CleanupRequest(now),
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RETRY,
        )
        detail = {
            "magic_links": str(result.magic_links),
            "agent_sessions": str(result.agent_sessions),
            "dead_letters": str(result.dead_letters),
            "magic_link_secrets": str(result.magic_link_secrets),
            "conversions": str(result.conversions),
        }
        if workflow.patched("recording-retention"):
            # each recording is audited by the activity as it is deleted
            recordings = await workflow.execute_activity_method(
                MaintenanceActivities.expire_recordings,
                RecordingRetentionRequest(now),
                start_to_close_timeout=timedelta(hours=2),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RETRY,
            )
            result = dataclasses.replace(
                result,
                recordings_deleted=recordings.deleted,
                recordings_failed=recordings.failed,
                ai_transcripts_deleted=recordings.ai_transcripts_deleted,
            )
            detail["recordings_deleted"] = str(recordings.deleted)
            detail["recordings_failed"] = str(recordings.failed)
            detail["ai_transcripts_deleted"] = str(recordings.ai_transcripts_deleted)
        await _audit("retention_cleanup", "retention", detail)
        return result
