"""Agent actions on OutreachWorkflow through the claim protocol: claims, outcomes,
cooldowns, caps, callbacks, leases, stale claims, notes, routing and opt-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from temporalio.client import WorkflowUpdateFailedError

from schemas import dialler_db as db
from schemas.enums import LinkChannel, Queue
from schemas.outreach import (
    ChangeKind,
    ClaimGranted,
    ClaimRequest,
    MagicLinkRequest,
    NoteRequest,
    OutcomeRequest,
    ReleaseRequest,
    Stage,
)
from schemas.reconcile import ReconcileInput
from tests.factories import add_claimant
from tests.workflows.conftest import Harness
from tests.workflows.helpers import (
    assessment,
    claim_task,
    ensure_agents,
    event,
    eventually,
    start,
    task_in,
    task_row,
)
from workflows.outreach import OutreachWorkflow
from workflows.outreach_client import OutreachRefused
from workflows.reconcile import ReconcileWorkflow

AGENT = 1


@pytest.fixture(scope="module", autouse=True)
async def agents(harness: Harness) -> None:
    await ensure_agents(harness)


async def _claim(h: Harness, user_id: int, queue: Queue) -> ClaimGranted:
    return await claim_task(h, user_id, queue, agent_id=AGENT)


async def test_no_answer_sets_a_cooldown_and_returns_the_task(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    granted = await _claim(harness, user_id, Queue.UNSIGNED)
    assert granted.user_id == user_id

    recorded = await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="no_answer", notes="rang out")
    )
    assert recorded.stage is Stage.UNSIGNED
    assert recorded.not_before is not None
    hours = (recorded.not_before - datetime.now(UTC)).total_seconds() / 3600
    assert 3.9 < hours <= 4.0
    assert "cooldown after no_answer" in recorded.reason

    row = await task_in(harness, user_id, "unsigned")
    assert row.claimed_by is None
    assert row.not_before == recorded.not_before
    async with harness.dialler.connect() as conn:
        call = (await conn.execute(select(db.calls).where(db.calls.c.user_id == user_id))).one()
    assert (call.disposition, call.notes, call.agent_id) == ("no_answer", "rang out", AGENT)


async def test_daily_cap_pushes_the_next_call_to_tomorrow(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    now = datetime.now(UTC)
    async with harness.dialler.begin() as conn:
        await conn.execute(
            insert(db.calls),
            [
                {"user_id": user_id, "provider": "manual", "to_number": "+447700900001",
                 "started_at": now - timedelta(minutes=m), "status": "completed"}
                for m in (1, 2, 3)
            ],
        )  # fmt: skip
    handle = await start(harness, user_id)
    found = await eventually(lambda: assessment(handle), lambda a: a is not None)
    assert found is not None
    assert "daily cap" in found.not_before_reason
    assert found.not_before is not None and found.not_before > now + timedelta(minutes=1)


async def test_stale_claim_is_rejected_and_claim_next_moves_on(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=1)
    handle = await start(harness, user_id)
    first = await task_in(harness, user_id, "outstanding")
    await handle.signal(
        "change",
        event(ChangeKind.REQUIREMENT_ADDED, user_id, claim_id=user_id,
              requirement_id=user_id * 10 + 5, requirement_type="photo_id",
              requirement_status="PENDING"),
    )  # fmt: skip
    await handle.signal(
        "change", event(ChangeKind.VULNERABILITY_CHANGED, user_id, is_vulnerable=True)
    )
    newer = await eventually(
        lambda: task_row(harness, user_id),
        lambda r: r.version > first.version and r.route_to_people_only,
    )
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update(
            OutreachWorkflow.claim,
            ClaimRequest(agent_id=AGENT, queue=Queue.OUTSTANDING, task_version=first.version),
        )
    assert "stale task" in str(raised.value.cause)
    granted = await handle.execute_update(
        OutreachWorkflow.claim,
        ClaimRequest(agent_id=AGENT, queue=Queue.OUTSTANDING, task_version=newer.version),
    )
    assert granted.task_version == newer.version
    await harness.claims.release(user_id, ReleaseRequest(agent_id=AGENT))


async def test_vulnerable_claimants_are_for_people_only(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1, vulnerable=True)
    handle = await start(harness, user_id)
    row = await task_in(harness, user_id, "unsigned")
    assert row.route_to_people_only
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update(
            OutreachWorkflow.claim,
            ClaimRequest(
                agent_id=AGENT, queue=Queue.UNSIGNED, task_version=row.version, is_ai=True
            ),
        )
    assert "people only" in str(raised.value.cause)


async def test_lease_expiry_returns_the_task(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await claim_task(harness, user_id, Queue.UNSIGNED, agent_id=7, lease_seconds=2)
    await task_in(harness, user_id, "unsigned", status="claimed")
    returned = await task_in(harness, user_id, "unsigned", status="ready")
    assert returned.claimed_by is None
    async with harness.dialler.connect() as conn:
        actions = (
            (
                await conn.execute(
                    select(db.audit_log.c.action).where(db.audit_log.c.subject_id == str(user_id))
                )
            )
            .scalars()
            .all()
        )
    assert "lease_expired" in actions
    with pytest.raises(OutreachRefused, match="not claimed by you"):
        await harness.claims.record_outcome(user_id, OutcomeRequest(agent_id=7, disposition="busy"))


async def test_callback_fires_at_its_time_then_is_completed(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=1)
    await start(harness, user_id)
    await _claim(harness, user_id, Queue.OUTSTANDING)
    at = datetime.now(UTC) + timedelta(seconds=3)
    recorded = await harness.claims.record_outcome(
        user_id,
        OutcomeRequest(
            agent_id=AGENT, disposition="callback_requested", notes="after 6", callback_at=at
        ),
    )
    assert recorded.not_before is not None and recorded.not_before >= at - timedelta(seconds=1)
    assert "callback" in recorded.reason
    await task_in(harness, user_id, "callback")
    await _claim(harness, user_id, Queue.CALLBACK)
    await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="promised_documents")
    )
    await task_in(harness, user_id, "outstanding")
    async with harness.dialler.connect() as conn:
        statuses = (
            (
                await conn.execute(
                    select(db.callbacks.c.status).where(db.callbacks.c.user_id == user_id)
                )
            )
            .scalars()
            .all()
        )
    assert statuses == ["completed"]


async def test_callback_needs_a_future_time(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await _claim(harness, user_id, Queue.UNSIGNED)
    with pytest.raises(OutreachRefused, match="needs a time"):
        await harness.claims.record_outcome(
            user_id, OutcomeRequest(agent_id=AGENT, disposition="callback_requested")
        )
    with pytest.raises(OutreachRefused, match="unknown disposition"):
        await harness.claims.record_outcome(
            user_id, OutcomeRequest(agent_id=AGENT, disposition="hung_up_rudely")
        )
    await harness.claims.release(user_id, ReleaseRequest(agent_id=AGENT))


async def test_notes_are_stored(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    added = await handle.execute_update(
        OutreachWorkflow.add_note, NoteRequest(agent_id=AGENT, text="prefers evenings")
    )
    async with harness.dialler.connect() as conn:
        body = await conn.scalar(
            select(db.claimant_notes.c.body).where(db.claimant_notes.c.id == added.note_id)
        )
    assert body == "prefers evenings"
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            OutreachWorkflow.add_note, NoteRequest(agent_id=AGENT, text=" ")
        )


async def test_do_not_call_is_final(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await _claim(harness, user_id, Queue.UNSIGNED)
    recorded = await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="do_not_call")
    )
    assert recorded.stage is Stage.DONE
    assert (await handle.result()).final_stage is Stage.DONE
    await task_in(harness, user_id, None)

    # a later change starts a fresh run: it rebuilds its facts and stops at once
    again = await start(harness, user_id)
    await again.signal(
        "change",
        event(ChangeKind.REQUIREMENT_ADDED, user_id, claim_id=user_id,
              requirement_id=user_id * 10 + 7, requirement_status="PENDING"),
    )  # fmt: skip
    result = await again.result()
    assert result.final_stage is Stage.DONE
    assert "opted out" in result.reason


async def test_sms_stop_opt_out_is_final(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=2)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "outstanding")
    await handle.signal("change", event(ChangeKind.OPTED_OUT, user_id, reason="sms_stop"))
    await task_in(harness, user_id, None)
    assert (await handle.result()).final_stage is Stage.DONE
    async with harness.dialler.connect() as conn:
        reasons = (
            (
                await conn.execute(
                    select(db.suppressions.c.reason).where(db.suppressions.c.user_id == user_id)
                )
            )
            .scalars()
            .all()
        )
    assert reasons == ["sms_stop"]


async def test_magic_link_by_sms_keeps_personal_data_out_of_the_history(harness: Harness) -> None:
    phone = "+447700912345"
    user_id = await add_claimant(harness.replica, signed=False, pending=1, phone=phone)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    sent = await handle.execute_update(
        OutreachWorkflow.send_magic_link,
        MagicLinkRequest(agent_id=AGENT, channel=LinkChannel.SMS, purpose="signature"),
    )
    assert sent.delivered_via is LinkChannel.SMS
    async with harness.dialler.connect() as conn:
        link = (
            await conn.execute(select(db.magic_links).where(db.magic_links.c.id == sent.link_id))
        ).one()
        sms = (
            await conn.execute(select(db.sms_messages).where(db.sms_messages.c.user_id == user_id))
        ).one()
    assert link.user_id == user_id and link.created_by == AGENT and link.used_at is None
    assert sms.to_number == phone and "/m/[link" in sms.body
    history = (await handle.fetch_history()).to_json()
    assert phone not in history and phone.removeprefix("+") not in history
    assert f"Claimant{user_id}" not in history


async def test_a_lapsed_reservation_is_handed_back_by_reconcile(harness: Harness) -> None:
    """An agent's process died between reserving a task and the workflow confirming it."""
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    async with harness.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id == user_id)
            .values(status="claimed", claimed_by=AGENT,
                    lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )  # fmt: skip
    await harness.client.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(),
        id=f"reconcile-lapsed-{user_id}",
        task_queue=harness.task_queue,
    )
    row = await task_in(harness, user_id, "unsigned", status="ready")
    assert row.claimed_by is None
