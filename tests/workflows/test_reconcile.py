"""Reconcile on seeded demo data: the queue projection ends identical to the seed's SQL,
a second pass finds nothing to do, and a change nobody signalled heals itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from activities.reconcile import expected_queues
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from config.settings import Settings
from demo.data import generate
from demo.load import load_demo_data
from schemas import dialler_db as db
from schemas.outreach import Stage
from schemas.reconcile import PLAN_PAGE, ReconcileInput, ReconcileResult
from tests.factories import set_user
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import eventually
from workflows.reconcile import ReconcileWorkflow

USERS = 400


async def _seed_sql(h: Harness) -> dict[int, str]:
    now = datetime.now(UTC)
    return expected_queues(
        await due_callback_user_ids(h.dialler, h.replica, now),
        await unsigned_user_ids(h.replica),
        await outstanding_user_ids(h.replica),
        list(h.rules.stage_priority),
    )


async def _projection(dialler: AsyncEngine) -> dict[int, str]:
    async with dialler.connect() as conn:
        rows = await conn.execute(
            select(db.call_tasks.c.user_id, db.call_tasks.c.queue).where(
                db.call_tasks.c.status.in_(["ready", "claimed"])
            )
        )
        return {int(user_id): queue for user_id, queue in rows}


async def _reconcile(h: Harness, page_size: int = PLAN_PAGE) -> ReconcileResult:
    return await h.client.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(page_size=page_size),
        id=f"reconcile-test-{uuid.uuid4().hex[:6]}",
        task_queue=h.task_queue,
    )


async def test_reconcile_matches_the_seed_queries(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        scratch_databases("reconcile") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as h,
    ):
        data = generate(USERS, now=datetime.now(UTC))
        await load_demo_data(replica, dialler, data, replace=True)
        in_queues = await _seed_sql(h)
        assert {"callback", "unsigned", "outstanding"} <= set(in_queues.values())
        # only claimants with live-call consent in force are offered (PECR 21A)
        now = datetime.now(UTC).replace(tzinfo=None)
        consented = {
            row["user_id"]
            for row in data.consents
            if row["channel"] == "live_call"
            and (row["withdrawn_at"] is None or row["withdrawn_at"] > now)
        }
        expected = {u: q for u, q in in_queues.items() if u in consented}
        assert 0 < len(expected) < len(in_queues)

        # planned in pages of 37 users (11 pages): together they cover everyone once
        first = await _reconcile(h, page_size=37)
        assert first.refreshed == len(in_queues)
        assert first.counts == {
            q: sum(1 for v in in_queues.values() if v == q)
            for q in ("callback", "unsigned", "outstanding")
        }
        await eventually(lambda: _projection(dialler), lambda p: p == expected, seconds=600)

        second = await _reconcile(h)
        assert (second.refreshed, second.withdrawn) == (0, 0)

        # a signature added in the main app whose change event was lost
        moved = next(u for u, q in expected.items() if q == Stage.UNSIGNED.value)
        await set_user(replica, moved, current_signature_file_id=123)
        healed = await _seed_sql(h)
        assert healed.get(moved) != Stage.UNSIGNED.value
        third = await _reconcile(h)
        assert third.refreshed + third.withdrawn >= 1
        offered = {u: q for u, q in healed.items() if u in consented}
        await eventually(lambda: _projection(dialler), lambda p: p == offered, seconds=300)
