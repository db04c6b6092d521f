"""32 claims at a time over 500 tasks: every task is claimed exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime

from sqlalchemy import func, insert, select
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.enums import Queue
from schemas.outreach import OutreachInput
from tests.workflows.conftest import running_harness, scratch_databases
from tests.workflows.helpers import eventually
from workflows.outreach import OutreachWorkflow, workflow_id_for

TASKS = 500
FIRST_ID = 2_000_000
CLAIMERS = 32


async def test_every_task_is_claimed_exactly_once(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        scratch_databases("race") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as h,
    ):
        # ids of their own: workflow ids (outreach-<id>) are shared by every test on this server
        users = range(FIRST_ID, FIRST_ID + TASKS)
        async with replica.begin() as conn:
            await conn.execute(insert(rp.lenders).values(id=1, name="Lloyds"))
            await conn.execute(
                insert(rp.users),
                [{"id": u, "first_name": "A", "last_name": "B",
                  "phone_number": f"+44770090{u % 10000:04d}", "date_of_birth": date(1960, 1, 1),
                  "is_enabled": True, "status": "active", "is_vulnerable": False} for u in users],
            )  # fmt: skip
            await conn.execute(
                insert(rp.claims),
                [{"id": u, "user_id": u, "lender_id": 1, "status": "in_progress"} for u in users],
            )
            await conn.execute(  # live-call consent (PECR 21A), or none would be offered
                insert(rp.consents),
                [{"user_id": u, "channel": "live_call", "source": "web_form", "wording": "yes",
                  "given_at": datetime(2025, 1, 1)} for u in users],
            )  # fmt: skip
        async with dialler.begin() as conn:
            await conn.execute(
                insert(db.agents),
                [{"id": a, "email": f"agent{a}@t", "display_name": f"Agent {a}", "role": "agent"}
                 for a in range(1, TASKS + CLAIMERS + 1)],
            )  # fmt: skip

        gate = asyncio.Semaphore(20)

        async def start(user_id: int) -> None:
            async with gate:
                await h.client.start_workflow(
                    OutreachWorkflow.run,
                    OutreachInput(user_id),
                    id=workflow_id_for(user_id),
                    task_queue=h.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                )

        await asyncio.gather(*(start(u) for u in users))

        async def ready() -> int:
            async with dialler.connect() as conn:
                return int(
                    await conn.scalar(select(func.count()).where(db.call_tasks.c.status == "ready"))
                    or 0
                )

        await eventually(ready, lambda n: n == TASKS, seconds=600)

        # An agent who holds a claim is given it again (claim-next is idempotent), so each
        # claim is made by an agent of its own: a claimer is a desk where agents take turns.
        agents = iter(range(1, TASKS + CLAIMERS + 1))

        async def claimer() -> list[int]:
            mine = []
            while (task := await h.claims.claim_next(next(agents), Queue.UNSIGNED)) is not None:
                mine.append(task.user_id)
            return mine

        results = await asyncio.gather(*(claimer() for _ in range(CLAIMERS)))
        claimed = Counter(u for mine in results for u in mine)
        assert len(claimed) == TASKS
        assert max(claimed.values()) == 1, "a task was claimed twice"
        assert sum(1 for mine in results if mine) > 1, "the claimers did not run concurrently"
        async with dialler.connect() as conn:
            rows = (
                await conn.execute(select(db.call_tasks.c.status, db.call_tasks.c.claimed_by))
            ).all()
        assert all(status == "claimed" and agent is not None for status, agent in rows)
        # the workflows agree: each holds exactly the claim the projection shows
        sample = [h.client.get_workflow_handle(workflow_id_for(u)) for u in (users[0], users[-1])]
        for handle in sample:
            state = await handle.query(OutreachWorkflow.state)
            assert state is not None and state.claim is not None
