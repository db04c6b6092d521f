"""Change events: duplicates applied once, late (older) events never regress a fact, and
continue-as-new under a low suggestion threshold loses neither state nor signals."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import search_attributes
from schemas.outreach import ChangeKind, OutreachState
from tests.factories import add_claimant
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import event, eventually, start, task_in
from workflows.outreach import OutreachWorkflow

EVENTS = 80  # signals, each a few history events: well past the threshold of 40


async def _state(handle) -> OutreachState:  # type: ignore[no-untyped-def]
    state: OutreachState = await handle.query(OutreachWorkflow.state)
    return state


def _requirement(state: OutreachState, requirement_id: int) -> str:
    for claim in state.facts.claims:
        for requirement in claim.requirements:
            if requirement.requirement_id == requirement_id:
                return requirement.status
    raise AssertionError(f"requirement {requirement_id} not in the facts")


async def test_duplicate_and_out_of_order_events(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=True, pending=1)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "outstanding")
    requirement = user_id * 10
    now = datetime.now(UTC)
    received = event(
        ChangeKind.REQUIREMENT_CHANGED, user_id, event_id="e-2", occurred_at=now,
        claim_id=user_id, requirement_id=requirement, requirement_status="RECEIVED",
    )  # fmt: skip
    late_pending = event(
        ChangeKind.REQUIREMENT_CHANGED, user_id, event_id="e-1",
        occurred_at=now - timedelta(seconds=30),
        claim_id=user_id, requirement_id=requirement, requirement_status="PENDING",
    )  # fmt: skip
    await handle.signal("change", received)
    await handle.signal("change", received)  # at-least-once delivery: the same event again
    await handle.signal("change", late_pending)  # older than what is known: ignored

    result = await handle.result()  # nothing pending any more: the run ends
    assert result.reason == "nothing left to chase"
    await task_in(harness, user_id, None)


async def test_duplicates_are_remembered_once(harness: Harness) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    phone = event(ChangeKind.PHONE_CHANGED, user_id, event_id="p-1", phone_key="k" * 64)
    for _ in range(3):
        await handle.signal("change", phone)
    state = await eventually(lambda: _state(handle), lambda s: "p-1" in s.seen_event_ids)
    assert state.seen_event_ids.count("p-1") == 1
    assert state.facts.phone_key == "k" * 64


@pytest.fixture(scope="module")
async def can_env() -> AsyncIterator[WorkflowEnvironment]:
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


async def test_continue_as_new_keeps_state_and_signals(
    can_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        scratch_databases("can") as (dialler, replica),
        running_harness(can_env, settings, dialler, replica) as h,
    ):
        user_id = await add_claimant(replica, signed=True, pending=1)
        handle = await start(h, user_id)
        first_run = (await handle.describe()).run_id
        await task_in(h, user_id, "outstanding")
        base = datetime.now(UTC)
        for n in range(EVENTS):
            await handle.signal(
                "change",
                event(ChangeKind.REQUIREMENT_ADDED, user_id, event_id=f"r-{n}",
                      occurred_at=base + timedelta(seconds=n), claim_id=user_id,
                      requirement_id=user_id * 100 + n, requirement_type="photo_id",
                      requirement_status="PENDING"),
            )  # fmt: skip
        state = await eventually(
            lambda: _state(h.client.get_workflow_handle(handle.id)),
            lambda s: len(s.seen_event_ids) == EVENTS,
            seconds=60,
        )
        latest = h.client.get_workflow_handle(handle.id)
        assert (await latest.describe()).run_id != first_run, "no continue-as-new happened"
        first_history = await h.client.get_workflow_handle(
            handle.id, run_id=first_run
        ).fetch_history()
        assert first_history.events[-1].event_type == (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        )
        assert sorted(state.seen_event_ids) == sorted(f"r-{n}" for n in range(EVENTS))
        assert all(_requirement(state, user_id * 100 + n) == "PENDING" for n in range(EVENTS))
        # the new run still answers: a signal after continue-as-new is applied too
        await latest.signal("change", event(ChangeKind.SIGNATURE_REMOVED, user_id))
        await task_in(h, user_id, "unsigned")


async def test_a_change_that_moves_no_deadline_writes_no_timer_and_no_attributes(
    harness: Harness,
) -> None:
    """Routing to people only changes the task, not the stage, score or any deadline: the
    workflow rewrites the task and leaves its timer and search attributes alone."""
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    before = [e async for e in handle.fetch_history_events()]

    await handle.signal(
        "change", event(ChangeKind.VULNERABILITY_CHANGED, user_id, is_vulnerable=True)
    )
    row = await eventually(
        lambda: task_in(harness, user_id, "unsigned"), lambda r: r.route_to_people_only
    )
    assert row.route_to_people_only
    added = [e.event_type async for e in handle.fetch_history_events()][len(before) :]
    assert EventType.EVENT_TYPE_MARKER_RECORDED in added  # assessed and published
    for unwanted in (
        EventType.EVENT_TYPE_TIMER_STARTED,
        EventType.EVENT_TYPE_TIMER_CANCELED,
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
    ):
        assert unwanted not in added, EventType.Name(unwanted)
