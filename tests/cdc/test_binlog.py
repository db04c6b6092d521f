"""The binlog source end to end: a real MariaDB with the binlog on, the CDC consumer, a real
Temporal server and the outreach worker. Only the binlog moves the claimants here: nothing
else signals their workflows."""

from __future__ import annotations

import asyncio
from collections import Counter
from functools import partial

from redis.asyncio import Redis
from sqlalchemy import insert, select, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_binlog import BinlogConnection, server_position
from adapters.cdc_metrics import read_metrics
from adapters.cdc_store import CdcStore
from adapters.local_mariadb import RunningMariaDB
from config.settings import Settings
from schemas import dialler_db as db
from schemas import replica
from schemas.outreach import ChangeEvent, OutreachResult, OutreachState
from tests.cdc.conftest import CdcHarness, cdc_harness, running_consumer
from tests.factories import add_claimant, ensure_lender, next_id, set_requirements, set_user
from tests.workflows.helpers import eventually, task_in, task_row
from workers.cdc import temporal_deliver
from workflows.outreach import OutreachWorkflow, workflow_id_for


async def _state(ch: CdcHarness, user_id: int, run_id: str | None = None) -> OutreachState:
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = ch.h.client.get_workflow_handle_for(
        OutreachWorkflow.run, workflow_id_for(user_id), run_id=run_id
    )
    state: OutreachState | None = await handle.query(OutreachWorkflow.state)
    assert state is not None
    return state


async def _signals(ch: CdcHarness, user_id: int, run_id: str | None = None) -> Counter[str]:
    """Event ids of every `change` signal in a run's history."""
    ids: Counter[str] = Counter()
    handle = ch.h.client.get_workflow_handle(workflow_id_for(user_id), run_id=run_id)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            [payload] = event.workflow_execution_signaled_event_attributes.input.payloads
            decoded = ch.h.client.data_converter.payload_converter.from_payload(
                payload, ChangeEvent
            )
            ids[decoded.event_id] += 1
    return ids


async def test_a_claimant_moves_unsigned_outstanding_done_as_the_replica_changes(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    binlog_server: RunningMariaDB,
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cdc_journey", binlog_server) as ch:
        h = ch.h
        source = ch.binlog()
        start = await source.start()
        async with running_consumer(ch, source) as consumer:
            # a new claimant with an open claim and no signature: the claim's insert starts
            # their outreach
            user_id = await add_claimant(h.replica, signed=False, lender="Barclays")
            await task_in(h, user_id, "unsigned")
            # they sign, and the main app asks for documents
            await set_user(h.replica, user_id, current_signature_file_id=501)
            async with h.replica.begin() as conn:
                await conn.execute(
                    insert(replica.claim_requirements).values(
                        id=user_id * 10, claim_id=user_id, type="id_document", status="PENDING"
                    )
                )
            await task_in(h, user_id, "outstanding")
            # the documents arrive: nothing left to chase
            await set_requirements(h.replica, user_id, "RECEIVED")
            await task_in(h, user_id, None)

            await eventually(lambda: _position(ch), lambda p: p not in (None, start))
            metrics = await eventually(
                lambda: read_metrics(redis, "binlog"),
                lambda m: int(m.get("events_applied", 0)) >= 4,
            )
            assert consumer.metrics.dead_letters == 0
            assert float(metrics["heartbeat_at"]) > 0 and metrics["lag_seconds"] != ""

        signals = await _signals(ch, user_id)
        assert all(event_id.startswith("binlog:") for event_id in signals)
        assert {event_id.split(":")[-2] for event_id in signals} >= {
            "claim_added",
            "signature_added",
            "requirement_added",
            "requirement_changed",
        }
        row = await task_row(h, user_id)
        assert row.status == "withdrawn"


async def _position(ch: CdcHarness) -> str | None:
    stored = await CdcStore(ch.h.dialler).load_position("binlog")
    return str(stored["gtid"]) if stored else None


async def test_restart_mid_stream_loses_nothing_and_applies_nothing_twice(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    binlog_server: RunningMariaDB,
) -> None:
    """The first consumer delivers everything except one claimant's events (that lane
    hangs), so the stored position cannot pass them; it is stopped mid-stream. The second
    resumes from the stored GTID: the hung claimant's events arrive, everyone else's arrive
    again and are ignored by id."""
    async with cdc_harness(temporal_env, settings, redis, "cdc_restart", binlog_server) as ch:
        h = ch.h
        await ensure_lender(h.replica)  # before the stream starts: the hung claim comes first
        first = ch.binlog()
        start = await first.start()
        deliver_for_real = temporal_deliver(h.client, h.task_queue)
        hung = next_id() + 1  # the id the factories give the next claimant

        async def deliver(event: ChangeEvent) -> None:
            if event.user_id == hung:
                await _forever()
            await deliver_for_real(event)

        # eight lanes: the six claimants get one each, so only the hung one waits
        async with running_consumer(ch, first, deliver=deliver, lanes=8, drain_seconds=0.5):
            users = [await add_claimant(h.replica, signed=False) for _ in range(6)]
            assert users[0] == hung
            for user_id in users[1:3]:
                await set_user(h.replica, user_id, current_signature_file_id=user_id)
            for user_id in users[3:]:
                await task_in(h, user_id, "unsigned")
            for user_id in users[1:3]:  # signed: nothing to chase
                await eventually(partial(_state, ch, user_id), lambda s: s.facts.signed)
        assert await _position(ch) == start  # nothing after the hung claimant was committed
        assert await task_row(h, hung) is None

        second = ch.binlog()
        assert await second.start() == start
        async with running_consumer(ch, second) as consumer:
            await task_in(h, hung, "unsigned")
            end = await _server_position(ch)
            await eventually(lambda: _position(ch), lambda p: p == end)
            assert consumer.metrics.dead_letters == 0

        # Within a run, a repeated event is ignored by id. A claimant whose run had ended
        # (signed: nothing to chase) gets a fresh run from the repeat, which rebuilds its
        # facts from the replica first (DESIGN.md section 6), so the repeat changes nothing.
        repeated = 0
        for user_id in users:
            runs = await _runs(ch, user_id)
            delivered: Counter[str] = Counter()
            for run_id in runs:
                state = await _state(ch, user_id, run_id)
                seen = [e for e in state.seen_event_ids if e.startswith("binlog:")]
                assert len(seen) == len(set(seen)), f"claimant {user_id} applied an event twice"
                signals = await _signals(ch, user_id, run_id)
                assert set(seen) == set(signals), f"claimant {user_id} left a signal unapplied"
                delivered.update(signals)
            kinds = {event_id.split(":")[-2] for event_id in delivered}
            # each test claimant's live-call consent row is a change too (CONSENT_CHANGED)
            expected = {"claim_added", "consent_changed"} | (
                {"signature_added"} if user_id in users[1:3] else set()
            )
            assert kinds == expected, f"claimant {user_id}: {kinds}"
            repeated += sum(1 for count in delivered.values() if count > 1)
            latest = await _state(ch, user_id, runs[-1])
            row = await task_row(h, user_id)
            if row is not None:  # signed before their first run: never published
                assert row.version == latest.task_version  # projection matches the workflow
        # every event the first consumer delivered came again: five claimants' claim and
        # consent (10) and two signatures
        assert repeated == 12


async def _server_position(ch: CdcHarness) -> str:
    assert ch.server is not None
    connection = BinlogConnection("127.0.0.1", ch.server.port, "root", "", ch.database)
    position, _ = await server_position(connection)
    return position


async def _runs(ch: CdcHarness, user_id: int) -> list[str]:
    """Run ids of the claimant's workflow, oldest first (visibility catches up shortly)."""
    workflow_id = workflow_id_for(user_id)
    latest = (await ch.h.client.get_workflow_handle(workflow_id).describe()).run_id

    async def listed() -> list[tuple[float, str]]:
        return [
            (execution.start_time.timestamp(), execution.run_id)
            async for execution in ch.h.client.list_workflows(f"WorkflowId = '{workflow_id}'")
        ]

    found = await eventually(listed, lambda runs: latest in {run for _, run in runs})
    return [run for _, run in sorted(found)]


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_requirement_of_an_unknown_claim_is_a_dead_letter_and_the_stream_goes_on(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    binlog_server: RunningMariaDB,
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cdc_dead", binlog_server) as ch:
        h = ch.h
        source = ch.binlog()
        await source.start()
        async with running_consumer(ch, source) as consumer:
            await ensure_lender(h.replica)
            async with h.replica.begin() as conn:
                await conn.execute(text("SET foreign_key_checks = 0"))
                await conn.execute(
                    insert(replica.claim_requirements).values(
                        id=next_id(), claim_id=987_654_321, type="payslip", status="PENDING"
                    )
                )
            user_id = await add_claimant(h.replica, signed=True, pending=1)
            await task_in(h, user_id, "outstanding")
            assert consumer.metrics.dead_letters == 1
        [letter] = await CdcStore(h.dialler).dead_letters()
        assert letter.source == "binlog"
        assert letter.reason == "unresolved claim: claim 987654321 was not found on the replica"
        assert '"claim_id": 987654321' in letter.raw_payload
        async with h.dialler.connect() as conn:
            pending = await conn.scalar(select(db.cdc_dead_letters.c.id))
        assert pending == letter.id
