"""The batch schedules behind CDC: provisioned once, and what each of their workflows does
(catch-up by watermark, cache warming, integrity check with repair, retention clean-up)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from temporalio.client import ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_store import CdcStore
from adapters.context_cache import context_key
from config.settings import Settings
from schemas import dialler_db as db
from schemas.cdc import (
    CacheWarmInput,
    CatchUpInput,
    CleanupInput,
    IntegrityInput,
    IntegrityResult,
)
from tests.cdc.conftest import cdc_harness
from tests.factories import add_claimant, set_user
from tests.workflows.helpers import eventually, start, task_in, task_row
from workers.schedules import (
    CACHE_WARM_EVERY,
    CATCH_UP_EVERY,
    CLEANUP_ZONE,
    INTEGRITY_EVERY,
    RECONCILE_EVERY,
    ensure_schedules,
    planned_schedules,
)
from workflows.maintenance import (
    CacheWarmWorkflow,
    CatchUpWorkflow,
    CleanupWorkflow,
    IntegrityCheckWorkflow,
)


def _id(name: str) -> str:
    return f"{name}-test-{uuid.uuid4().hex[:6]}"


async def test_schedules_are_provisioned_once_with_their_cadence(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "sched") as ch:
        client, queue = ch.h.client, ch.h.task_queue
        ids = [planned.schedule_id for planned in planned_schedules()]
        for schedule_id in ids:  # another test may have provisioned them on its own queue
            with contextlib.suppress(RPCError):
                await client.get_schedule_handle(schedule_id).delete()
        try:
            assert await ensure_schedules(client, queue, cache_warm_per_queue=7) == ids
            assert await ensure_schedules(client, queue) == []
            described = {i: await client.get_schedule_handle(i).describe() for i in ids}
            intervals = {
                i: d.schedule.spec.intervals[0].every
                for i, d in described.items()
                if d.schedule.spec.intervals
            }
            assert intervals == {
                "reconcile-queues": RECONCILE_EVERY,
                "cdc-catch-up": CATCH_UP_EVERY,
                "cache-warm": CACHE_WARM_EVERY,
                "integrity-check": INTEGRITY_EVERY,
            }
            cleanup = described["daily-cleanup"].schedule.spec
            assert cleanup.time_zone_name == CLEANUP_ZONE
            assert cleanup.calendars[0].hour[0].start == 3
            assert cleanup.calendars[0].minute[0].start == 30
            learn = described["learn-rates"].schedule.spec  # issue 14: the learned rates
            assert learn.time_zone_name == CLEANUP_ZONE
            assert (learn.calendars[0].hour[0].start, learn.calendars[0].minute[0].start) == (2, 30)
            warm = described["cache-warm"].schedule.action
            assert isinstance(warm, ScheduleActionStartWorkflow)
            assert warm.workflow == "CacheWarm" and warm.task_queue == queue
            assert all(d.schedule.policy.overlap.name == "SKIP" for d in described.values())
        finally:
            for schedule_id in ids:
                await client.get_schedule_handle(schedule_id).delete()


async def test_catch_up_refreshes_claimants_changed_since_the_watermark(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    """No CDC here: a signature added in the replica reaches the queue through catch-up."""
    async with cdc_harness(temporal_env, settings, redis, "catchup") as ch:
        h = ch.h
        user_id = await add_claimant(h.replica, signed=False, pending=1)
        await start(h, user_id)
        await task_in(h, user_id, "unsigned")
        await set_user(h.replica, user_id, current_signature_file_id=9)
        assert (await task_row(h, user_id)).queue == "unsigned"  # nobody told the workflow

        result = await h.client.execute_workflow(
            CatchUpWorkflow.run, CatchUpInput(), id=_id("catch-up"), task_queue=h.task_queue
        )
        assert result.refreshed == 1 and not result.capped
        await task_in(h, user_id, "outstanding")
        stored = await CdcStore(h.dialler).load_position("catchup")
        assert stored == {"updated_at": result.watermark.replace(tzinfo=None).isoformat()}

        # the next run starts from that watermark (less a small overlap for late commits)
        again = await h.client.execute_workflow(
            CatchUpWorkflow.run, CatchUpInput(), id=_id("catch-up"), task_queue=h.task_queue
        )
        assert again.scanned_from is not None
        assert again.scanned_from == result.watermark - timedelta(minutes=2)


async def test_cache_warming_loads_the_top_of_each_queue(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "warm") as ch:
        h = ch.h
        unsigned = [await add_claimant(h.replica, signed=False) for _ in range(3)]
        outstanding = [await add_claimant(h.replica, signed=True, pending=1) for _ in range(2)]
        for user_id in unsigned + outstanding:
            await start(h, user_id)
        for user_id in unsigned:
            await task_in(h, user_id, "unsigned")
        for user_id in outstanding:
            await task_in(h, user_id, "outstanding")
        await redis.delete(*(context_key(u) for u in unsigned + outstanding))

        result = await h.client.execute_workflow(
            CacheWarmWorkflow.run,
            CacheWarmInput(per_queue=2),
            id=_id("cache-warm"),
            task_queue=h.task_queue,
        )
        assert result.per_queue == {"unsigned": 2, "outstanding": 2, "callback": 0}
        cached = [u for u in unsigned + outstanding if await redis.exists(context_key(u))]
        assert len(cached) == 4 and set(outstanding) <= set(cached)
        context = await ch.cache().get(outstanding[0])
        assert context is not None and context.signed and context.claims[0].requirements


async def test_integrity_check_counts_drift_audits_it_and_repairs_it(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "integrity") as ch:
        h = ch.h
        healthy = await add_claimant(h.replica, signed=False)
        await start(h, healthy)
        await task_in(h, healthy, "unsigned")
        # in the seed's unsigned queue, but no workflow and no task (its change was missed)
        missing = await add_claimant(h.replica, signed=False)
        # a task nobody stands behind: no workflow, and the replica says nothing to chase
        orphan = await add_claimant(h.replica, signed=True)
        async with h.dialler.begin() as conn:
            await conn.execute(
                insert(db.call_tasks).values(
                    user_id=orphan,
                    workflow_id=f"outreach-{orphan}",
                    queue="unsigned",
                    score=10,
                    not_before=datetime.now(UTC),
                    status="ready",
                    version=1,
                )
            )

        async def check(repair: bool) -> IntegrityResult:
            return await h.client.execute_workflow(
                IntegrityCheckWorkflow.run,
                IntegrityInput(repair=repair),
                id=_id("integrity"),
                task_queue=h.task_queue,
            )

        # visibility (the running-workflows list) lags a little behind
        first = await eventually(
            lambda: check(repair=False), lambda r: r.plan.running_workflows == 1
        )
        plan = first.plan
        assert (plan.expected, plan.published_tasks) == (2, 2)
        assert plan.missing_workflows == 1 and plan.orphan_tasks == 1
        assert plan.replica_vs_projection == 2  # missing has no task; orphan should have none
        assert plan.workflow_vs_projection == 0
        assert plan.to_refresh == sorted([missing, orphan])

        repaired = await check(repair=True)
        assert repaired.repaired == 2
        await task_in(h, missing, "unsigned")
        await task_in(h, orphan, None)
        clean = await eventually(
            lambda: check(repair=False),
            lambda r: r.plan.to_refresh == [] and r.plan.running_workflows == 2,
        )
        assert clean.plan.replica_vs_projection == 0
        async with h.dialler.connect() as conn:
            audits = (
                await conn.execute(
                    select(db.audit_log.c.detail).where(db.audit_log.c.action == "integrity_check")
                )
            ).scalars()
            [audit] = [detail for detail in audits if detail["repaired"] == "2"]
        assert audit["orphan_tasks"] == "1" and audit["missing_workflows"] == "1"


async def test_daily_cleanup_applies_the_retention_rules(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cleanup") as ch:
        h = ch.h
        now = datetime.now(UTC)
        old, recent = now - timedelta(days=40), now - timedelta(days=1)
        async with h.dialler.begin() as conn:
            agent = await conn.scalar(
                insert(db.agents)
                .values(email="retention@demo.rmc", display_name="R", role="agent")
                .returning(db.agents.c.id)
            )
            link = {"user_id": 1, "channel": "sms", "purpose": "signature"}
            await conn.execute(
                insert(db.magic_links),
                [
                    {**link, "token_hash": "a" * 64, "expires_at": old},
                    {**link, "token_hash": "b" * 64, "expires_at": recent},
                ],
            )
            later = now + timedelta(hours=8)
            await conn.execute(
                insert(db.agent_sessions).values(agent_id=agent),
                [
                    {"token_hash": "c" * 64, "expires_at": later, "revoked_at": old},
                    {"token_hash": "d" * 64, "expires_at": old, "revoked_at": None},
                    {"token_hash": "e" * 64, "expires_at": later, "revoked_at": None},
                ],
            )
        store = CdcStore(h.dialler)
        replayed_long_ago = await store.add_dead_letter("sqs", "{}", "test")
        await store.record_replay(replayed_long_ago, ok=True)
        pending = await store.add_dead_letter("sqs", "{}", "test")
        async with h.dialler.begin() as conn:
            await conn.execute(
                db.cdc_dead_letters.update()
                .where(db.cdc_dead_letters.c.id == replayed_long_ago)
                .values(replayed_at=old)
            )

        # transcripts of calls either side of the 24-month recording retention (issue 11)
        async with h.dialler.begin() as conn:
            call = {"user_id": 1, "provider": "manual", "to_number": "+447700900123",
                    "status": "completed", "transcript": "Hello"}  # fmt: skip
            past_call, kept_call = [
                await conn.scalar(
                    insert(db.calls).values(**call, started_at=at).returning(db.calls.c.id)
                )
                for at in (now - timedelta(days=24 * 31), now - timedelta(days=23 * 30))
            ]

        result = await h.client.execute_workflow(
            CleanupWorkflow.run, CleanupInput(), id=_id("cleanup"), task_queue=h.task_queue
        )
        # an expired link loses its token hash but stays for attribution (issue 11)
        assert (result.magic_links, result.magic_link_secrets) == (0, 1)
        assert (result.agent_sessions, result.dead_letters) == (2, 1)
        assert (result.recordings_deleted, result.recordings_failed) == (1, 0)
        async with h.dialler.connect() as conn:
            transcripts = dict(
                (await conn.execute(
                    select(db.calls.c.id, db.calls.c.transcript)
                    .where(db.calls.c.id.in_([past_call, kept_call]))
                )).all()
            )  # fmt: skip
            recording_audits = await conn.scalar(
                select(func.count()).where(
                    db.audit_log.c.action == "recording_deleted",
                    db.audit_log.c.subject_id == str(past_call),
                )
            )
        assert transcripts == {past_call: None, kept_call: "Hello"} and recording_audits == 1
        async with h.dialler.connect() as conn:
            links = await conn.scalar(select(func.count()).select_from(db.magic_links))
            sessions = await conn.scalar(select(func.count()).select_from(db.agent_sessions))
            audited = await conn.scalar(
                select(db.audit_log.c.detail).where(db.audit_log.c.action == "retention_cleanup")
            )
        assert (links, sessions) == (2, 1)
        assert [letter.id for letter in await store.dead_letters(pending_only=False)] == [pending]
        assert audited == {"magic_links": "0", "agent_sessions": "2", "dead_letters": "1",
                           "magic_link_secrets": "1", "conversions": "0",
                           "recordings_deleted": "1", "recordings_failed": "0",
                           "ai_transcripts_deleted": "0"}  # fmt: skip
