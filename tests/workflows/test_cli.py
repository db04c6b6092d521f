"""The operator commands end to end, as subprocesses against a running worker:
`dialler queue refresh`, `dialler scoring explain`, `dialler scoring test`; and the
schedule provisioning they rely on."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from adapters import rules_versions, scoring_splits
from domain.scoring_split import arm_of
from tests.factories import add_claimant
from tests.workflows.ai_stack import ai_agent_on_duty
from tests.workflows.conftest import Harness, scratch_databases
from workers.schedules import RECONCILE_EVERY, RECONCILE_SCHEDULE_ID, ensure_schedules

DIALLER = str(Path(sys.executable).parent / "dialler")


async def _dialler(
    h: Harness, env: WorkflowEnvironment, *args: str, env_extra: dict[str, str] | None = None
) -> tuple[int, str]:
    environment = {
        **os.environ,
        **(env_extra or {}),
        "DATABASE_URL": h.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": h.replica.url.render_as_string(hide_password=False),
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": h.task_queue,
    }
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode()


async def test_scoring_explain_says_why_this_claimant_and_why_now(
    harness: Harness, temporal_env: WorkflowEnvironment
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1, lender="Barclays")
    rc, out = await _dialler(harness, temporal_env, "scoring", "explain", str(user_id))
    assert rc == 0, out
    assert f"claimant {user_id}: stage unsigned" in out
    assert "Barclays (high-value lender) +15" in out
    assert "not before" in out
    # who would make the contact, explained like the score (no model here: a person)
    assert "contact by a person: no AI model configured" in out


async def test_scoring_explain_says_when_the_ai_would_make_the_contact(
    harness: Harness, temporal_env: WorkflowEnvironment
) -> None:
    user_id = await add_claimant(
        harness.replica, signed=True, pending=1, consents=("live_call", "sms")
    )
    rc, out = await _dialler(harness, temporal_env, "scoring", "explain", str(user_id))
    assert rc == 0, out
    assert "contact by a person: no AI model configured" in out
    await ai_agent_on_duty(harness.dialler, "explain-ai@rmc.example")
    rc, out = await _dialler(
        harness, temporal_env, "scoring", "explain", str(user_id),
        env_extra={"OPENAI_MODEL": "any-model"},
    )  # fmt: skip
    assert rc == 0, out
    assert "contact by the AI: AI agent by SMS (no automated-call consent" in out


async def test_scoring_explain_names_the_claimants_live_split_arm(
    harness: Harness, temporal_env: WorkflowEnvironment
) -> None:
    """On databases of its own: a split changes the rules in force for whatever reads them."""
    async with scratch_databases("explainsplit") as (dialler, replica):
        user_id = await add_claimant(replica, signed=True, pending=1)
        async with dialler.begin() as conn:
            candidate = await rules_versions.save_version(
                conn, "", saved_by=None, note="candidate", base_version=None
            )
            await rules_versions.save_version(
                conn, "", saved_by=None, note="in force", base_version=None
            )
            split = await scoring_splits.start(
                conn, rules_version_id=candidate.id, share=0.5, note="test", started_by=None
            )
        own = Harness(harness.client, dialler, replica, harness.task_queue, harness.claims,
                      harness.rules, harness.rules_source)  # fmt: skip
        rc, out = await _dialler(own, temporal_env, "scoring", "explain", str(user_id))
        assert rc == 0, out
        arm = arm_of(user_id, split.id, 0.5).value
        assert f"live split: {arm} arm" in out


async def test_scoring_test_rejects_a_bad_rules_file(
    harness: Harness, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[scoring.lenders]\nSantander = "lots"\n')
    rc, out = await _dialler(harness, temporal_env, "scoring", "test", "--rules", str(bad))
    assert rc == 1
    assert "scoring.lenders.Santander" in out
    rc, out = await _dialler(harness, temporal_env, "scoring", "test", "--top", "2")
    assert rc == 0, out
    assert "rules file OK" in out and "unsigned: top" in out


async def test_queue_refresh_runs_reconcile_now(
    harness: Harness, temporal_env: WorkflowEnvironment
) -> None:
    await add_claimant(harness.replica, signed=True, pending=1)
    rc, out = await _dialler(harness, temporal_env, "queue", "refresh")
    assert rc == 0, out
    assert "claimants per queue" in out and "outstanding" in out
    assert "workflows refreshed" in out


async def test_schedule_provisioning_is_idempotent(harness: Harness) -> None:
    first = await ensure_schedules(harness.client, harness.task_queue)
    again = await ensure_schedules(harness.client, harness.task_queue)
    assert RECONCILE_SCHEDULE_ID in first or RECONCILE_SCHEDULE_ID not in again
    assert again == []
    description = await harness.client.get_schedule_handle(RECONCILE_SCHEDULE_ID).describe()
    assert description.schedule.spec.intervals[0].every == RECONCILE_EVERY
