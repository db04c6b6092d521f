"""Supervisor actions on OutreachWorkflow, through the one door (`OutreachClient`): pause and
resume (across timers, a CDC event while paused, the end of outreach and continue-as-new),
taking back a stuck claim, and giving a callback to another agent or to the shared pool.
Time passes on the time-skipping test server; continue-as-new on a dev server that suggests
it early."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import dialler_db as db
from schemas import search_attributes
from schemas.enums import Queue
from schemas.outreach import (
    CallbackReassignment,
    CallbackRequest,
    ChangeKind,
    ClaimRequest,
    OutcomeRequest,
    OutreachResult,
    OutreachState,
    PauseRequest,
    ResumeRequest,
    Stage,
    SupervisorReleaseRequest,
)
from tests.factories import add_claimant, set_requirements
from tests.workflows.conftest import Harness, running_harness, scratch_databases
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
from workflows.outreach_client import OutreachClient, OutreachRefused

SUPERVISOR = 40
AGENT, OTHER_AGENT, CALLBACK_AGENT = 1, 2, 3
PAUSED = "paused by a supervisor: complaint under review"


@pytest.fixture(scope="module")
async def skipping(skipping_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Harness]:
    async with (
        scratch_databases("supervisor_skip") as (dialler, replica),
        running_harness(skipping_env, settings, dialler, replica) as h,
    ):
        await ensure_agents(h)
        yield h


def door(h: Harness) -> OutreachClient:
    return OutreachClient.over(h.client, h.task_queue)


async def state_of(handle: WorkflowHandle[Any, Any]) -> OutreachState:
    state: OutreachState | None = await handle.query(OutreachWorkflow.state)
    assert state is not None
    return state


async def audit_rows(h: Harness, user_id: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    async with h.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.audit_log.c.action, db.audit_log.c.actor_id, db.audit_log.c.detail)
            .where(db.audit_log.c.subject_id == str(user_id))
            .order_by(db.audit_log.c.id)
        )
        return [(r.action, r.actor_id, dict(r.detail)) for r in rows]


async def test_a_pause_withdraws_the_task_and_holds_through_timers_and_changes(
    skipping: Harness, skipping_env: WorkflowEnvironment
) -> None:
    h, outreach = skipping, door(skipping)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    handle = await start(h, user_id)
    listed = await task_in(h, user_id, "unsigned")

    paused = await outreach.pause(user_id, PauseRequest(SUPERVISOR, " complaint under review "))
    assert (paused.stage, paused.not_before, paused.reason) == (Stage.UNSIGNED, None, PAUSED)
    row = await task_in(h, user_id, None)
    assert (row.queue, row.not_before_reason) == ("unsigned", PAUSED)
    # no agent may claim them, whatever version they saw listed
    with pytest.raises(OutreachRefused, match="paused by a supervisor"):
        await outreach.claim(
            user_id, ClaimRequest(AGENT, Queue.UNSIGNED, task_version=listed.version)
        )
    with pytest.raises(OutreachRefused, match="already paused by supervisor 40"):
        await outreach.pause(user_id, PauseRequest(SUPERVISOR, "again"))

    # a CDC change while paused is applied (the stage moves) but lists no task
    await handle.signal("change", event(ChangeKind.SIGNATURE_ADDED, user_id))
    moved = await eventually(
        lambda: assessment(handle), lambda a: a is not None and a.stage is Stage.OUTSTANDING
    )
    assert moved is not None and (moved.not_before, moved.not_before_reason) == (None, PAUSED)
    row = await eventually(lambda: task_row(h, user_id), lambda r: r.queue == "outstanding")
    assert (row.status, row.not_before_reason) == ("withdrawn", PAUSED)

    # a day of timers (re-scores every six hours) later, still paused
    await skipping_env.sleep(timedelta(days=1))
    await eventually(
        lambda: handle.fetch_history(),
        lambda history: any(
            e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events
        ),
    )
    held = await state_of(handle)
    assert held.facts.paused is not None
    assert (held.facts.paused.supervisor_id, held.facts.paused.reason) == (
        SUPERVISOR,
        "complaint under review",
    )
    assert (await task_row(h, user_id)).status == "withdrawn"

    resumed = await outreach.resume(user_id, ResumeRequest(SUPERVISOR, "complaint closed"))
    assert resumed.stage is Stage.OUTSTANDING and resumed.not_before is not None
    row = await task_in(h, user_id, "outstanding")
    assert row.not_before_reason != PAUSED
    with pytest.raises(OutreachRefused, match="not paused"):
        await outreach.resume(user_id, ResumeRequest(SUPERVISOR, "twice"))
    with pytest.raises(OutreachRefused, match="needs a reason"):
        await outreach.pause(user_id, PauseRequest(SUPERVISOR, "   "))
    with pytest.raises(OutreachRefused, match="at most 160 characters"):
        await outreach.pause(user_id, PauseRequest(SUPERVISOR, "x" * 161))

    audited = [(a, actor, d) for a, actor, d in await audit_rows(h, user_id)
               if a.startswith("outreach_")]  # fmt: skip
    assert audited == [
        ("outreach_paused", str(SUPERVISOR), {"reason": "complaint under review"}),
        ("outreach_resumed", str(SUPERVISOR), {"reason": "complaint closed"}),
    ]


async def test_a_paused_run_waits_for_its_resume_when_nothing_is_left_to_chase(
    skipping: Harness,
) -> None:
    """The claimant's documents arrive while paused: nothing left to chase, but the run
    keeps the pause (a fresh run would start unpaused) until a supervisor resumes it."""
    h, outreach = skipping, door(skipping)
    user_id = await add_claimant(h.replica, signed=True, pending=1)
    handle = await start(h, user_id)
    await task_in(h, user_id, "outstanding")
    await outreach.pause(user_id, PauseRequest(SUPERVISOR, "complaint under review"))
    await set_requirements(h.replica, user_id, "RECEIVED")
    await handle.signal(
        "change",
        event(ChangeKind.REQUIREMENT_CHANGED, user_id, claim_id=user_id,
              requirement_id=user_id * 10, requirement_status="RECEIVED"),
    )  # fmt: skip
    done = await eventually(
        lambda: assessment(handle), lambda a: a is not None and a.stage is Stage.DONE
    )
    assert done is not None
    history = await handle.fetch_history()
    assert history.events[-1].event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED

    await outreach.resume(user_id, ResumeRequest(SUPERVISOR, "complaint closed"))
    result: OutreachResult = await handle.result()
    assert result.final_stage is Stage.DONE


async def test_a_supervisor_takes_back_a_stuck_claim(skipping: Harness) -> None:
    h, outreach = skipping, door(skipping)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    handle = await start(h, user_id)
    await claim_task(h, user_id, Queue.UNSIGNED, agent_id=AGENT, lease_seconds=4 * 3600)
    await task_in(h, user_id, "unsigned", status="claimed")

    with pytest.raises(OutreachRefused, match="changed hands: agent 1 holds it now"):
        await outreach.supervisor_release(
            user_id, SupervisorReleaseRequest(SUPERVISOR, "stuck", seen_agent_id=OTHER_AGENT)
        )
    with pytest.raises(OutreachRefused, match="needs a reason"):
        await outreach.supervisor_release(
            user_id, SupervisorReleaseRequest(SUPERVISOR, "", seen_agent_id=AGENT)
        )
    taken = await outreach.supervisor_release(
        user_id, SupervisorReleaseRequest(SUPERVISOR, "agent went home", seen_agent_id=AGENT)
    )
    assert (taken.user_id, taken.agent_id) == (user_id, AGENT)
    row = await task_in(h, user_id, "unsigned")  # ready again, long before the lease's end
    assert row.claimed_by is None and row.version == taken.task_version
    assert (await state_of(handle)).claim is None
    # the agent's late outcome is refused: the claim is no longer theirs
    with pytest.raises(OutreachRefused, match="not claimed by you"):
        await outreach.record_outcome(user_id, OutcomeRequest(AGENT, "no_answer"))
    with pytest.raises(OutreachRefused, match="nothing to release"):
        await outreach.supervisor_release(user_id, SupervisorReleaseRequest(SUPERVISOR, "again"))

    # a row left claimed although the workflow holds no claim: the row is written afresh
    async with h.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id == user_id)
            .values(status="claimed", claimed_by=OTHER_AGENT)
        )
    repaired = await outreach.supervisor_release(
        user_id, SupervisorReleaseRequest(SUPERVISOR, "row stuck", seen_agent_id=OTHER_AGENT)
    )
    assert repaired.agent_id is None
    row = await task_in(h, user_id, "unsigned")
    assert row.claimed_by is None

    released = [(actor, d) for a, actor, d in await audit_rows(h, user_id)
                if a == "claim_released_by_supervisor"]  # fmt: skip
    assert len(released) == 2
    assert released[0][0] == str(SUPERVISOR)
    assert released[0][1]["agent_id"] == str(AGENT)
    assert released[0][1]["reason"] == "agent went home"
    assert released[1][1] == {"reason": "row stuck", "stuck_row_of_agent": str(OTHER_AGENT)}


async def _pending_callbacks(h: Harness, user_id: int) -> list[Any]:
    async with h.dialler.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(db.callbacks).where(
                        db.callbacks.c.user_id == user_id, db.callbacks.c.status == "pending"
                    )
                )
            ).all()
        )


async def test_a_callback_is_given_to_another_agent_then_shared(
    skipping: Harness, skipping_env: WorkflowEnvironment
) -> None:
    h, outreach = skipping, door(skipping)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    handle = await start(h, user_id)
    with pytest.raises(OutreachRefused, match="no pending callback"):
        await outreach.reassign_callback(user_id, CallbackReassignment(SUPERVISOR, AGENT))

    now = await skipping_env.get_current_time()
    at = (now + timedelta(days=1)).replace(microsecond=0)
    await outreach.schedule_callback(
        user_id, CallbackRequest(AGENT, at, "call about the form", owner_agent_id=AGENT)
    )
    with pytest.raises(OutreachRefused, match="already agent 1's"):
        await outreach.reassign_callback(user_id, CallbackReassignment(SUPERVISOR, AGENT))

    moved = await outreach.reassign_callback(
        user_id, CallbackReassignment(SUPERVISOR, CALLBACK_AGENT, "call about the form")
    )
    assert (moved.at, moved.owner_agent_id) == (at, CALLBACK_AGENT)
    [pending] = await _pending_callbacks(h, user_id)
    assert (pending.scheduled_for, pending.owner_agent_id) == (at, CALLBACK_AGENT)
    assert (pending.notes, pending.created_by) == ("call about the form", SUPERVISOR)
    state = await state_of(handle)
    assert state.facts.callback_owner_agent_id == CALLBACK_AGENT

    # when it falls due, it is held for its new owner
    await skipping_env.sleep(at - now + timedelta(minutes=1))
    row = await task_in(h, user_id, "callback")
    assert row.owner_agent_id == CALLBACK_AGENT and row.held_until is not None
    with pytest.raises(OutreachRefused, match="held for agent 3"):
        await outreach.claim(user_id, ClaimRequest(AGENT, Queue.CALLBACK, task_version=row.version))

    shared = await outreach.reassign_callback(user_id, CallbackReassignment(SUPERVISOR, None))
    assert shared.owner_agent_id is None
    row = await eventually(
        lambda: task_row(h, user_id), lambda r: r.status == "ready" and r.owner_agent_id is None
    )
    assert row.queue == "callback" and row.held_until is None
    with pytest.raises(OutreachRefused, match="already shared"):
        await outreach.reassign_callback(user_id, CallbackReassignment(SUPERVISOR, None))
    granted = await outreach.claim(
        user_id, ClaimRequest(AGENT, Queue.CALLBACK, task_version=row.version)
    )
    assert granted.user_id == user_id

    moves = [d for a, _, d in await audit_rows(h, user_id) if a == "callback_reassigned"]
    assert moves == [
        {"from_agent_id": str(AGENT), "to_agent_id": str(CALLBACK_AGENT)},
        {"from_agent_id": str(CALLBACK_AGENT), "to_agent_id": "shared"},
    ]


# --- continue-as-new ---------------------------------------------------------------------------

EVENTS = 25


@pytest.fixture(scope="module")
async def early_can_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 40 history events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=list(search_attributes.ALL),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=40",
        ],
    )
    yield env
    await env.shutdown()


async def test_a_pause_survives_continue_as_new(
    early_can_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        scratch_databases("supervisor_can") as (dialler, replica),
        running_harness(early_can_env, settings, dialler, replica) as h,
    ):
        outreach = door(h)
        user_id = await add_claimant(replica, signed=True, pending=1)
        handle = await start(h, user_id)
        first_run = (await handle.describe()).run_id
        await task_in(h, user_id, "outstanding")
        await outreach.pause(user_id, PauseRequest(SUPERVISOR, "complaint under review"))
        await task_in(h, user_id, None)
        base = datetime.now(UTC)
        for n in range(EVENTS):
            await handle.signal(
                "change",
                event(ChangeKind.REQUIREMENT_ADDED, user_id, event_id=f"r-{n}",
                      occurred_at=base + timedelta(seconds=n), claim_id=user_id,
                      requirement_id=user_id * 100 + n, requirement_type="photo_id",
                      requirement_status="PENDING"),
            )  # fmt: skip
        latest = h.client.get_workflow_handle(handle.id)
        state = await eventually(
            lambda: state_of(latest), lambda s: len(s.seen_event_ids) == EVENTS, seconds=60
        )
        assert (await latest.describe()).run_id != first_run, "no continue-as-new happened"
        assert state.facts.paused is not None
        assert state.facts.paused.reason == "complaint under review"
        # the new run, told of a change (a reload from the databases), is still paused
        await latest.signal("change", event(ChangeKind.REFRESH, user_id))
        await latest.signal("change", event(ChangeKind.SIGNATURE_REMOVED, user_id))
        row = await eventually(lambda: task_row(h, user_id), lambda r: r.queue == "unsigned")
        assert (row.status, row.not_before_reason) == ("withdrawn", PAUSED)

        await outreach.resume(user_id, ResumeRequest(SUPERVISOR, "complaint closed"))
        await task_in(h, user_id, "unsigned")
