"""AI transcripts fall under the recording retention (issue 13): the daily clean-up deletes
what was said in the AI conversations started before the cut-off (the rules file's
`compliance.recording_retention_months`), keeps the rest, audits the deletion once without
naming anyone, and a rerun deletes nothing more; through the Cleanup workflow too, whose
result and `retention_cleanup` audit row count them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.maintenance import MaintenanceActivities
from adapters import ai_conversations as store
from config.settings import Settings
from domain.recordings import retention_cutoff
from domain.rules import ComplianceRules, DiallerRules
from schemas import dialler_db as db
from schemas.cdc import CleanupInput
from schemas.recordings import RecordingRetentionRequest
from tests.ai_seed import Seeded, conversation, model, replied, said, tool
from tests.workflows.conftest import open_rules, running_harness, scratch_databases
from workflows.maintenance import CleanupWorkflow

NOW = datetime(2020, 6, 15, 12, 0, tzinfo=UTC)
MONTHS = 18
CUTOFF = datetime(2018, 12, 15, 12, 0, tzinfo=UTC)
SAID = "My late husband handled the Barclays claim"


@pytest.fixture
async def databases() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Databases of this test's own: every conversation in them is one it made."""
    async with scratch_databases("ai_retention") as engines:
        yield engines


async def _three(dialler: AsyncEngine) -> dict[str, Seeded]:
    """One conversation started a second before the cut-off, one at it, one after."""
    steps = [
        replied("This is an automated assistant calling for Resolve My Claim."),
        said(SAID),
        model(300, 800, 30),
        tool("hand_off", {"summary": "bereavement"}, "A colleague will call you."),
    ]
    seeded = {}
    for name, at in (("expired", CUTOFF - timedelta(seconds=1)), ("at_cutoff", CUTOFF),
                     ("recent", NOW - timedelta(days=1))):  # fmt: skip
        seeded[name] = await conversation(
            dialler, user_id=7_000_001, agent_id=None, channel="voice", steps=steps,
            status="handed_off", handoff_reason="sensitive", summary="Bereavement.",
            started_at=at,
        )  # fmt: skip
    return seeded


async def _transcripts(dialler: AsyncEngine, seeded: dict[str, Seeded]) -> dict[str, Any]:
    """name -> (transcript deleted, the steps' texts, the steps' details, model latencies)."""
    ids = {s.id: name for name, s in seeded.items()}
    async with dialler.connect() as conn:
        steps = await store.steps_of(conn, list(ids))
        rows = {cid: await store.conversation_by_id(conn, cid) for cid in ids}
    found = {}
    for cid, name in ids.items():
        row = rows[cid]
        assert row is not None
        found[name] = (
            row.transcript_deleted_at is not None,
            [s.text for s in steps[cid]],
            [s.detail for s in steps[cid]],
            [s.latency_ms for s in steps[cid] if s.kind == "model"],
            row.summary,
        )
    return found


async def _audits(dialler: AsyncEngine, action: str) -> list[Any]:
    async with dialler.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(db.audit_log).where(db.audit_log.c.action == action)
                    .order_by(db.audit_log.c.id)
                )
            ).all()
        )  # fmt: skip


async def test_the_clean_up_deletes_ai_transcripts_past_retention_once_and_audits_it(
    databases: tuple[AsyncEngine, AsyncEngine], settings: Settings
) -> None:
    dialler, replica = databases
    assert retention_cutoff(NOW, MONTHS) == CUTOFF
    seeded = await _three(dialler)
    rules = DiallerRules(compliance=ComplianceRules(recording_retention_months=MONTHS))
    activities = MaintenanceActivities(
        settings, dialler, replica, cast(Client, None), "unused", rules
    )

    result = await ActivityEnvironment().run(
        activities.expire_recordings, RecordingRetentionRequest(NOW)
    )
    assert result.cutoff == CUTOFF and result.ai_transcripts_deleted == 1
    state = await _transcripts(dialler, seeded)
    # what was said is gone (the tool's arguments held it too); the timings and outcome stay
    assert state["expired"] == (True, [None] * 4, [None] * 4, [300], "Bereavement.")
    kept_texts = ["This is an automated assistant calling for Resolve My Claim.", SAID, None,
                  "A colleague will call you."]  # fmt: skip
    for name in ("at_cutoff", "recent"):
        deleted, texts, details, _, _ = state[name]
        assert not deleted and texts == kept_texts, name
        assert details[3]["arguments"] == {"summary": "bereavement"}, name

    [audit] = await _audits(dialler, "ai_transcripts_deleted")
    assert (audit.actor_type, audit.actor_id, audit.subject_id) == ("system", "retention", None)
    assert audit.detail == {"conversations": 1, "started_before": CUTOFF.isoformat(),
                            "retention_months": MONTHS}  # fmt: skip
    assert SAID not in str(audit.detail)

    again = await ActivityEnvironment().run(
        activities.expire_recordings, RecordingRetentionRequest(NOW)
    )
    assert again.ai_transcripts_deleted == 0
    assert len(await _audits(dialler, "ai_transcripts_deleted")) == 1


async def test_the_cleanup_workflow_counts_the_ai_transcripts_it_deleted(
    databases: tuple[AsyncEngine, AsyncEngine],
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    dialler, replica = databases
    seeded = await _three(dialler)
    rules = open_rules()
    rules = rules.model_copy(
        update={"compliance": rules.compliance.model_copy(
            update={"recording_retention_months": MONTHS})}
    )  # fmt: skip
    async with running_harness(temporal_env, settings, dialler, replica, rules) as h:
        result = await h.client.execute_workflow(
            CleanupWorkflow.run,
            CleanupInput(now=NOW),
            id=f"cleanup-ai-{seeded['expired'].id}-{datetime.now(UTC).timestamp()}",
            task_queue=h.task_queue,
        )
    assert result.ai_transcripts_deleted == 1
    state = await _transcripts(dialler, seeded)
    assert [state[name][0] for name in ("expired", "at_cutoff", "recent")] == [True, False, False]
    [summary] = await _audits(dialler, "retention_cleanup")
    assert summary.detail["ai_transcripts_deleted"] == "1"
