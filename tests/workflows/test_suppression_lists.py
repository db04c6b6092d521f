"""Imported suppressions end to end, with the real outreach worker: an import withdraws the
claimant's task, an SMS START afterwards does not bring it back, and only a dated, audited
removal does. And the two commands as an operator runs them (exit codes, listed lines)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from adapters.context_cache import ContextCache
from adapters.messaging import SimulatedSms
from adapters.sms_outbox import SmsOutbox
from schemas import dialler_db as db
from schemas.outreach import ChangeKind
from services.claimant_loader import ClaimantLoader
from services.sms_conversations import InboundSms, SmsConversations
from services.suppression_lists import SuppressionLists
from tests.conftest import REDIS_URL
from tests.factories import add_claimant
from tests.workflows.conftest import Harness
from tests.workflows.helpers import event, start, task_in
from workflows.outreach_client import OutreachClient

DIALLER = str(Path(sys.executable).parent / "dialler")


def _numbers() -> tuple[str, str]:
    digits = f"{uuid.uuid4().int % 100_000:05d}"
    return f"+4477009{digits}", f"077009{digits}"


async def test_an_import_is_final_until_an_audited_removal(harness: Harness) -> None:
    e164, national = _numbers()
    user_id = await add_claimant(harness.replica, signed=False, pending=1, phone=national)
    await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    outreach = OutreachClient.over(harness.client, harness.task_queue)
    lists = SuppressionLists(harness.dialler, harness.replica, outreach)

    # the list spells the number in E.164, the replica nationally: the same number
    report = await lists.import_lines(
        [b"number,reason\n", f"{e164},complaint to the FCA\n".encode()],
        source="import:e2e.csv",
        by="tester",
    )
    assert (report.added, report.telling.claimants, report.telling.running) == (1, 1, 1)
    await task_in(harness, user_id, None)

    # the claimant texts START: refused (an imported suppression is final), nothing lifted
    redis = Redis.from_url(REDIS_URL)
    try:
        loader = ClaimantLoader(ContextCache(redis, harness.replica, 60), harness.dialler)
        sms = SmsConversations(
            harness.dialler, harness.replica, SmsOutbox(harness.dialler, SimulatedSms()), loader
        )
        received = await sms.receive(
            InboundSms(sid=f"SM{uuid.uuid4().hex}", from_number=national,
                       to_number="+447700900000", body="START")
        )  # fmt: skip
    finally:
        await redis.aclose()
    assert received.resubscribed == ()
    assert "list" in received.refused[user_id]
    # even a fresh run that reloads everything (reconcile's REFRESH) keeps it withdrawn
    await outreach.deliver(event(ChangeKind.REFRESH, user_id))
    await asyncio.sleep(1)
    await task_in(harness, user_id, None)

    async with harness.dialler.connect() as conn:
        [suppression_id] = (
            await conn.execute(
                select(db.suppressions.c.id).where(db.suppressions.c.source == "import:e2e.csv",
                                                   db.suppressions.c.phone_number == e164)
            )
        ).scalars()  # fmt: skip
    removal = await lists.remove(suppression_id, reason="listed in error", by="Dana Ops")
    assert removal.telling.running == 1
    await task_in(harness, user_id, "unsigned")
    async with harness.dialler.connect() as conn:
        actions = (
            await conn.execute(
                select(db.audit_log.c.action).where(
                    db.audit_log.c.id.in_([report.audit_id, removal.audit_id])
                )
            )
        ).scalars()
        assert sorted(actions) == ["suppression_removed", "suppressions_imported"]


async def _dialler(h: Harness, env: WorkflowEnvironment, *args: str) -> tuple[int, str, str]:
    environment = {
        **os.environ,
        "DATABASE_URL": h.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": h.replica.url.render_as_string(hide_password=False),
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": h.task_queue,
    }
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_commands_list_bad_lines_and_say_what_they_did(
    harness: Harness, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    e164, _ = _numbers()
    user_id = await add_claimant(harness.replica, signed=False, pending=1, phone=e164)
    await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    listing = tmp_path / "list.csv"
    listing.write_bytes(
        b"number,email,reason\n"
        + f"{e164},,complaint\n".encode()
        + b"12345,,typo\n"
        + b",someone@@example.com,bad address\n"
    )

    rc, out, err = await _dialler(harness, temporal_env, "compliance", "suppress", str(listing),
                                  "--by", "tester")  # fmt: skip
    assert rc == 3, out + err
    assert "3 line(s) read: 1 suppression(s) added, 0 already held, 2 line(s) rejected" in out
    assert "line 3: number is not a possible phone number" in err
    assert "line 4: email is not a valid address" in err
    assert e164 not in out + err  # numbers are not echoed
    await task_in(harness, user_id, None)

    bad = tmp_path / "bad.csv"
    bad.write_text("number,phone,reason\n07700900123,,x\n")
    rc, out, err = await _dialler(harness, temporal_env, "compliance", "suppress", str(bad))
    assert rc == 2
    assert "line 1: unknown column 'phone'" in err and "nothing was imported" in err

    async with harness.dialler.connect() as conn:
        suppression_id = await conn.scalar(
            select(db.suppressions.c.id).where(db.suppressions.c.phone_number == e164)
        )
    rc, out, err = await _dialler(
        harness, temporal_env, "compliance", "unsuppress", "--id", str(suppression_id),
        "--reason", "claimant consented again", "--by", "Dana Ops", "--effective", "2099-01-01",
    )  # fmt: skip
    assert rc == 2 and "in the future" in err
    rc, out, err = await _dialler(
        harness, temporal_env, "compliance", "unsuppress", "--id", str(suppression_id),
        "--reason", "claimant consented again", "--by", "Dana Ops", "--effective", "2026-01-02",
    )  # fmt: skip
    assert rc == 0, out + err
    assert f"suppression {suppression_id} removed" in out
    await task_in(harness, user_id, "unsigned")
