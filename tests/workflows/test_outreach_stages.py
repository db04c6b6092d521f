"""OutreachWorkflow against a real Temporal dev server and real databases: every stage,
the transitions between them, and the change events that cause them."""

from __future__ import annotations

from schemas.outreach import ChangeKind, Stage
from tests.factories import add_claimant, set_requirements, set_user
from tests.workflows.conftest import Harness
from tests.workflows.helpers import event, start, task_in, task_row


async def test_unsigned_claimant_gets_one_task_in_the_unsigned_queue(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    row = await task_in(harness, user_id, "unsigned")
    assert float(row.score) > 0
    assert {f["name"] for f in row.score_breakdown} >= {"lender", "age"}
    assert row.workflow_id == f"outreach-{user_id}"


async def test_unsigned_to_outstanding_to_done(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=2)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")

    await set_user(harness.replica, user_id, current_signature_file_id=99)
    await handle.signal("change", event(ChangeKind.SIGNATURE_ADDED, user_id))
    await task_in(harness, user_id, "outstanding")

    await set_requirements(harness.replica, user_id, "RECEIVED")
    for n in range(2):
        await handle.signal(
            "change",
            event(ChangeKind.REQUIREMENT_CHANGED, user_id, claim_id=user_id,
                  requirement_id=user_id * 10 + n, requirement_status="RECEIVED"),
        )  # fmt: skip
    await task_in(harness, user_id, None)
    result = await handle.result()
    assert result.final_stage is Stage.DONE


async def test_outstanding_back_to_unsigned_when_signature_removed(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=1)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "outstanding")
    await handle.signal("change", event(ChangeKind.SIGNATURE_REMOVED, user_id))
    await task_in(harness, user_id, "unsigned")


async def test_disabled_claimant_leaves_the_queue(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=0)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    await handle.signal("change", event(ChangeKind.ENABLED_CHANGED, user_id, is_enabled=False))
    await task_in(harness, user_id, None)
    assert (await handle.result()).final_stage is Stage.DONE


async def test_claimant_with_nothing_to_chase_never_gets_a_task(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=0)
    handle = await start(harness, user_id)
    result = await handle.result()
    assert result.final_stage is Stage.DONE
    assert result.reason == "nothing left to chase"
    assert await task_row(harness, user_id) is None
