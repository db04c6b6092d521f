"""What survives a reload of the claimant's facts (a reconcile REFRESH, a new run): the
dialler's own record, a wrong number and the opt-out state, is read back from its DB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from domain.phones import phone_key
from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.outreach import ChangeKind, OutcomeRequest, Stage
from tests.factories import add_claimant, set_user
from tests.workflows.conftest import Harness
from tests.workflows.helpers import (
    assessment,
    claim_task,
    ensure_agents,
    event,
    eventually,
    start,
    task_in,
)
from workflows.outreach import OutreachWorkflow

AGENT = 1
WAITING_FOR_A_NEW_NUMBER = "wrong number reported; waiting for a new phone number"


@pytest.fixture(scope="module", autouse=True)
async def agents(harness: Harness) -> None:
    await ensure_agents(harness)


async def test_a_wrong_number_stays_uncallable_through_a_reload_until_the_number_changes(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await claim_task(harness, user_id, Queue.UNSIGNED, agent_id=AGENT)
    recorded = await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="wrong_number")
    )
    assert (recorded.stage, recorded.not_before) == (Stage.UNSIGNED, None)
    assert recorded.reason == WAITING_FOR_A_NEW_NUMBER
    row = await task_in(harness, user_id, None)
    assert row.not_before_reason == WAITING_FOR_A_NEW_NUMBER  # what the console and API show

    # reconcile: the facts are reloaded from the databases, the number is the same
    await handle.signal("change", event(ChangeKind.REFRESH, user_id, reason="reconcile"))
    reloaded = await eventually(
        lambda: handle.query(OutreachWorkflow.state),
        lambda s: s is not None and len(s.seen_event_ids) == 1,
    )
    assert reloaded is not None
    assert reloaded.facts.wrong_phone_key == reloaded.facts.phone_key is not None
    found = await assessment(handle)
    assert found is not None and found.not_before is None
    assert found.not_before_reason == WAITING_FOR_A_NEW_NUMBER
    assert (await task_in(harness, user_id, None)).status == "withdrawn"

    # the main app records a new number: CDC's phone-hash change makes them callable again
    new_number = f"+4477008{user_id % 100000:05d}"
    await set_user(harness.replica, user_id, phone_number=new_number)
    await handle.signal(
        "change", event(ChangeKind.PHONE_CHANGED, user_id, phone_key=phone_key(new_number))
    )
    row = await task_in(harness, user_id, "unsigned")
    assert row.not_before_reason != WAITING_FOR_A_NEW_NUMBER
    await handle.signal("change", event(ChangeKind.REFRESH, user_id, reason="reconcile"))
    await eventually(
        lambda: assessment(handle),
        lambda a: a is not None and a.not_before is not None,
    )


async def test_an_sms_start_after_a_stop_lifts_the_opt_out_in_a_running_workflow(
    harness: Harness,
) -> None:
    """A future callback keeps the workflow running through the opt-out; the START that
    follows the STOP is the latest event on the SMS channel, so the claimant is back."""
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    async with harness.dialler.begin() as conn:
        await conn.execute(
            insert(db.callbacks).values(
                user_id=user_id, scheduled_for=datetime.now(UTC) + timedelta(days=2)
            )
        )
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")

    async def sms(reason: str) -> None:  # as the SMS webhook does: the row, then the signal
        async with harness.dialler.begin() as conn:
            await conn.execute(
                insert(db.suppressions).values(user_id=user_id, reason=reason, source="sms:SM")
            )

    await sms("sms_stop")
    await handle.signal("change", event(ChangeKind.OPTED_OUT, user_id, reason="sms_stop"))
    stopped = await task_in(harness, user_id, None)
    assert "opted out" in stopped.not_before_reason
    await sms("sms_start")
    await handle.signal("change", event(ChangeKind.REFRESH, user_id, reason="sms_start"))
    back = await task_in(harness, user_id, "unsigned")
    assert back.status == "ready"
    found = await assessment(handle)
    assert found is not None and found.stage is Stage.UNSIGNED
