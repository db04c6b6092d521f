"""The SQS source end to end: AWS DMS records (their JSON format) on a moto SQS queue, the
CDC consumer, a real Temporal server and the outreach worker. The replica is written as the
main app would have it (DMS reads the main database; the replica has the same rows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import insert, select
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_store import CdcStore
from config.settings import Settings
from schemas import replica
from services.dead_letters import replay
from tests.cdc.conftest import (
    CdcHarness,
    cdc_harness,
    dialler_cli,
    queue_counts,
    running_consumer,
    sqs_queue,
    sqs_source,
)
from tests.factories import add_claimant, ensure_lender, next_id, set_requirements, set_user
from tests.workflows.helpers import eventually, task_in
from workers.cdc import temporal_deliver

_transactions = count(8_589_934_592)


def dms(
    operation: str,
    table: str,
    data: dict[str, Any],
    before: dict[str, Any] | None = None,
) -> str:
    """A DMS change record as DMS writes it (with a before image when given)."""
    record: dict[str, Any] = {
        "data": data,
        "metadata": {
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "record-type": "data",
            "operation": operation,
            "partition-key-type": "schema-table",
            "schema-name": "rmc_main",
            "table-name": table,
            "transaction-id": next(_transactions),
        },
    }
    if before is not None:
        record["before-image"] = before
    return json.dumps(record, default=str)


async def _row(ch: CdcHarness, table: Any, key: int) -> dict[str, Any]:
    async with ch.h.replica.connect() as conn:
        row = (await conn.execute(select(table).where(table.c.id == key))).one()
    return dict(row._mapping)


async def send(client: Any, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        await client.send_message(QueueUrl=queue_url, MessageBody=body)


async def test_dms_records_on_sqs_move_a_claimant_unsigned_outstanding_done(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis, sqs_endpoint: str
) -> None:
    async with (
        cdc_harness(temporal_env, settings, redis, "sqs_journey") as ch,
        sqs_queue(sqs_endpoint) as (client, queue_url),
    ):
        h = ch.h
        source = sqs_source(ch, client, queue_url)
        await source.start()
        async with running_consumer(ch, source):
            user_id = await add_claimant(h.replica, signed=False)
            await send(
                client, queue_url, dms("insert", "claims", await _row(ch, replica.claims, user_id))
            )
            await task_in(h, user_id, "unsigned")

            unsigned = await _row(ch, replica.users, user_id)
            await set_user(h.replica, user_id, current_signature_file_id=77)
            requirement = user_id * 10
            async with h.replica.begin() as conn:
                await conn.execute(
                    insert(replica.claim_requirements).values(
                        id=requirement, claim_id=user_id, type="payslip", status="PENDING"
                    )
                )
            await send(
                client,
                queue_url,
                dms("update", "users", await _row(ch, replica.users, user_id), before=unsigned),
                dms(
                    "insert",
                    "claim_requirements",
                    await _row(ch, replica.claim_requirements, requirement),
                ),
            )
            await task_in(h, user_id, "outstanding")

            await set_requirements(h.replica, user_id, "RECEIVED")
            # no before image: DMS without BeforeImageSettings
            await send(
                client,
                queue_url,
                dms(
                    "update",
                    "claim_requirements",
                    await _row(ch, replica.claim_requirements, requirement),
                ),
            )
            await task_in(h, user_id, None)
            # every message was deleted once its signal succeeded
            await eventually(lambda: queue_counts(client, queue_url), lambda c: c == (0, 0))
        stored = await CdcStore(h.dialler).offsets()
        position, applied, _ = stored["sqs"]
        assert applied >= 4 and position["message_id"]


async def test_unreadable_messages_become_dead_letters_and_good_ones_keep_flowing(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis, sqs_endpoint: str
) -> None:
    async with (
        cdc_harness(temporal_env, settings, redis, "sqs_dead") as ch,
        sqs_queue(sqs_endpoint) as (client, queue_url),
    ):
        h = ch.h
        source = sqs_source(ch, client, queue_url)
        await source.start()
        first = await add_claimant(h.replica, signed=False)
        second = await add_claimant(h.replica, signed=True, pending=1)
        lost_claim = next_id()
        good = dms("insert", "claims", await _row(ch, replica.claims, first))
        async with running_consumer(ch, source) as consumer:
            await send(
                client,
                queue_url,
                '{"data": {"id": 1}, "metadata": {"operation": "upd',  # truncated
                good,
                "<xml>not json</xml>",
                dms("insert", "sessions", {"id": "abc", "payload": "x"}),
                dms("update", "users", {"id": second, "is_enabled": 1}),  # most columns missing
                dms(
                    "insert",
                    "claim_requirements",
                    {
                        "id": next_id(),
                        "claim_id": lost_claim,
                        "type": "payslip",
                        "status": "PENDING",
                    },
                ),
                dms("insert", "claims", await _row(ch, replica.claims, second)),
            )
            await task_in(h, first, "unsigned")
            await task_in(h, second, "outstanding")
            await eventually(lambda: queue_counts(client, queue_url), lambda c: c == (0, 0))
            assert consumer.metrics.dead_letters == 5
        store = CdcStore(h.dialler)
        letters = {letter.reason: letter for letter in await store.dead_letters()}
        unresolved_reason = f"unresolved claim: claim {lost_claim} was not found on the replica"
        unreadable = {
            "truncated message: the JSON ends early at character 46 (Unterminated string "
            "starting at)",
            "malformed JSON: Expecting value at line 1 column 1",
            "unknown table rmc_main.sessions",
            "users.current_signature_file_id is missing",
        }
        assert set(letters) == unreadable | {unresolved_reason}
        truncated = next(r for r in letters if r.startswith("truncated"))
        assert (
            letters[truncated].raw_payload == '{"data": {"id": 1}, "metadata": {"operation": "upd'
        )
        assert all(letter.source == "sqs" for letter in letters.values())

        # the missing claim reaches the replica: its dead letter replays; the rest do not
        lender = await ensure_lender(h.replica)
        async with h.replica.begin() as conn:
            await conn.execute(
                insert(replica.claims).values(
                    id=lost_claim, user_id=first, lender_id=lender, status="in_progress"
                )
            )
        rc, out = await dialler_cli(ch, temporal_env, "sync", "dead-letters")
        assert rc == 0, out
        assert unresolved_reason in out and "pending" in out
        unresolved = letters[unresolved_reason].id
        rc, out = await dialler_cli(
            ch, temporal_env, "sync", "dead-letters", "--replay", str(unresolved)
        )
        assert rc == 0, out
        assert f"{unresolved}: replayed, 1 claimant(s) refreshed" in out
        outcomes = await replay(
            await store.dead_letters(),
            store=store,
            lookups=ReplicaLookups(h.replica),
            deliver=temporal_deliver(h.client, h.task_queue),
        )
        assert [o.replayed for o in outcomes] == [False] * 4
        assert {o.reason for o in outcomes} == unreadable
        remaining = await store.dead_letters()
        assert [letter.replay_count for letter in remaining] == [1, 1, 1, 1]
        [replayed] = await store.dead_letters(pending_only=False, ids=[unresolved])
        assert replayed.replayed_at is not None
