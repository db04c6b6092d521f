"""Re-screening after a TPS/CTPS list changes, end to end with the real outreach worker:
exactly the claimants with a task (any status) whose listed status the import changed get a
REFRESH (`tps list changed`) through the workflow's door, their workflows reload the facts
and see the new screening; nobody else is signalled, and a second run sends nothing."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from temporalio.testing import WorkflowEnvironment

from adapters import tps
from adapters.replica_reader import ReplicaReader
from config.settings import Settings
from schemas import dialler_db as db
from schemas.outreach import ChangeKind, OutreachState
from services.tps_screening import RESCREEN_REASON, rescreen_event, rescreen_pending
from tests.factories import add_claimant
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import eventually, start, task_row
from workflows.outreach import OutreachWorkflow, workflow_id_for
from workflows.outreach_client import OutreachClient


@pytest.fixture(scope="module")
async def h(temporal_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Harness]:
    async with (
        scratch_databases("tps") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as harness,
    ):
        yield harness


async def replace_tps(h: Harness, numbers: list[str]) -> tps.ImportReport:
    data = io.BytesIO(("\n".join(numbers) + "\n").encode())
    return await tps.import_list(
        h.dialler, data, list_name="tps", replace=True, source="tps.txt", allow_empty=True
    )


async def state_of(h: Harness, user_id: int) -> OutreachState | None:
    handle = h.client.get_workflow_handle(workflow_id_for(user_id))
    state: OutreachState | None = await handle.query(OutreachWorkflow.state)
    return state


def national(number: str) -> str:
    """+447700912345 -> 07700 912345: the list spells numbers its own way."""
    return f"0{number[3:7]} {number[7:]}"


async def test_rescreen_refreshes_exactly_the_claimants_whose_listing_changed(
    h: Harness,
) -> None:
    a, b, c, d, e = [await add_claimant(h.replica, signed=False, pending=1) for _ in range(5)]
    phones = await ReplicaReader(h.replica).phone_numbers([a, b, c, d, e])
    door = OutreachClient.over(h.client, h.task_queue)
    now = datetime.now(UTC)

    # The list before: b and d. Nobody has a task yet: nothing to tell.
    await replace_tps(h, [national(phones[b] or ""), national(phones[d] or "")])
    assert [r.changed for r in await rescreen_pending(h.dialler, h.replica, door, now)] == [0]

    for user_id in (a, b, c, d):
        await start(h, user_id)
        await eventually(lambda u=user_id: task_row(h, u), lambda row: row is not None)  # type: ignore[misc]
    async with h.dialler.begin() as conn:  # e: a task withdrawn, no workflow running
        await conn.execute(
            insert(db.call_tasks).values(
                user_id=e, workflow_id=workflow_id_for(e), queue="unsigned", score=0,
                not_before=now, not_before_reason="number on the TPS list", status="withdrawn",
                version=1,
            )
        )  # fmt: skip
    before = {u: await state_of(h, u) for u in (a, b, c, d)}
    assert [s is not None and s.facts.tps_listed for s in before.values()] == [
        False, True, False, True,
    ]  # fmt: skip

    # The list after: a, d and e (b leaves it; c is on neither).
    report = await replace_tps(h, [national(phones[u] or "") for u in (a, d, e)])
    assert report.version_id is not None
    [result] = await rescreen_pending(h.dialler, h.replica, door, now)
    assert (result.now_listed, result.no_longer_listed) == ([a, e], [b])
    assert result.with_task >= 5 and result.refused == []

    wanted = {a: True, b: False, e: True}
    for user_id, listed in wanted.items():
        event_id = rescreen_event(report.version_id, user_id, now).event_id
        found = await eventually(
            lambda u=user_id: state_of(h, u),  # type: ignore[misc]
            lambda s, i=event_id: s is not None and i in s.seen_event_ids,  # type: ignore[misc]
        )
        assert found is not None and found.facts.tps_listed is listed
    for user_id in (c, d):  # unchanged: not signalled
        unchanged = await state_of(h, user_id)
        assert unchanged is not None and unchanged.seen_event_ids == before[user_id].seen_event_ids  # type: ignore[union-attr]
        assert not any(i.startswith("tps-") for i in unchanged.seen_event_ids)

    # Done once: nothing pending, nothing sent again; the retired list's rows are gone.
    assert await rescreen_pending(h.dialler, h.replica, door, now) == []
    assert await tps.pending_rescreens(h.dialler) == []


def test_the_refresh_is_the_one_reload_event() -> None:
    event = rescreen_event(12, 34, datetime(2026, 12, 3, tzinfo=UTC))
    assert (event.kind, event.user_id, event.reason) == (ChangeKind.REFRESH, 34, RESCREEN_REASON)
    assert event.event_id == "tps-12-34"  # the same on a retry: applied once
    assert rescreen_event(13, 34, event.occurred_at).event_id != event.event_id
