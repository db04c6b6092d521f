"""A running outreach worker takes a saved rules version without a restart.

The worker here reads its rules like a deployed one (a `RulesSource` over its own database)
but checks for a new version only once an hour and hears no announcement: only the save's
rollout (a RULES_CHANGED event to every claimant with a task, by the RulesRollout workflow)
and the reload it causes can bring the new version in, so these tests see that path alone.
The announcement over Redis has its own test, between two sources. A version that does not
parse (written past the editor's checks) leaves the worker running on the rules it had."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.rules_rollout import rules_changed_event
from adapters import rules_versions
from adapters.redis_client import connect_redis
from adapters.rules_source import RulesSource, announce_saved
from config.settings import Settings
from domain.rules import DiallerRules
from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.rules import RulesRolledOut
from services.rules_editing import Actor, RulesEditor
from tests.conftest import REDIS_URL
from tests.factories import add_claimant
from tests.workflows.conftest import (
    Harness,
    open_rules,
    running_harness,
    scratch_databases,
)
from tests.workflows.helpers import eventually, start, task_in, task_row
from workflows.outreach import OutreachWorkflow
from workflows.outreach_client import OutreachClient
from workflows.rules_rollout_client import RulesRolloutClient, rollout_id_for

RULES_FILE = Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml"
SHIPPED = RULES_FILE.read_text(encoding="utf-8")
OPERATOR = Actor("operator", "test")
HOUR = 3600.0


def _with(key: str, value: str) -> str:
    line = next(line for line in SHIPPED.splitlines() if line.startswith(f"{key} = "))
    return SHIPPED.replace(line, f"{key} = {value}", 1)


@pytest.fixture(scope="module")
async def slow_harness(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[Harness]:
    async with scratch_databases("rulesreload") as (dialler, replica):
        source = RulesSource(dialler, open_rules(), check_every=HOUR)
        async with running_harness(temporal_env, settings, dialler, replica, source) as h:
            yield h


def _editor(h: Harness) -> RulesEditor:
    return RulesEditor(
        h.dialler,
        # the editor's own process: a source of its own, as the web app has
        RulesSource(h.dialler, h.rules),
        RULES_FILE,
        redis=None,
        rollout=RulesRolloutClient.over(h.client, h.task_queue),
    )


async def _score(h: Harness, user_id: int) -> Decimal:
    row = await task_row(h, user_id)
    assert row is not None
    return Decimal(row.score)


async def _rollout_done(client: Client, version: int) -> RulesRolledOut:
    handle = client.get_workflow_handle(rollout_id_for(version), result_type=RulesRolledOut)
    result = await handle.result()
    assert isinstance(result, RulesRolledOut)
    return result


async def test_a_saved_version_re_scores_a_running_claimant_without_a_restart(
    slow_harness: Harness,
) -> None:
    h = slow_harness
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Monzo")
    await start(h, user_id)
    await task_in(h, user_id, Queue.UNSIGNED.value)
    before = await _score(h, user_id)

    # unlisted lenders (Monzo is not in the matrix) now get 40 points
    saved = await _editor(h).save(
        _with("default_lender_boost", "40"), "unlisted lenders", actor=OPERATOR, base_version=0
    )
    assert saved.rollout_id == rollout_id_for(saved.version.id)
    rolled = await _rollout_done(h.client, saved.version.id)
    assert (rolled.claimants, rolled.told, rolled.refused) == (1, 1, 0)
    after = await eventually(lambda: _score(h, user_id), lambda s: s != before)
    assert after == before + 40
    assert (await h.rules_source.in_force()).version == saved.version.id
    row = await task_row(h, user_id)
    lender = next(f for f in row.score_breakdown if f["name"] == "lender")
    assert lender["contribution"] == 40 and "Monzo" in lender["detail"]


async def test_a_version_that_does_not_parse_leaves_the_worker_on_the_rules_it_had(
    slow_harness: Harness,
) -> None:
    h = slow_harness
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Monzo")
    handle = await start(h, user_id)
    await task_in(h, user_id, Queue.UNSIGNED.value)
    score = await _score(h, user_id)
    in_force = (await h.rules_source.newest()).version

    # written past the editor (by hand, or before a check was added to parse_rules)
    async with h.dialler.begin() as conn:
        broken = await rules_versions.save_version(
            conn, "[scoring]\nconversion_weight = 'lots'\n", saved_by=None, note="by hand",
            base_version=None,
        )  # fmt: skip
    outreach = OutreachClient.over(h.client, h.task_queue)
    await outreach.deliver(rules_changed_event(broken.id, user_id, datetime.now(UTC)))
    state = await eventually(
        lambda: handle.query(OutreachWorkflow.state),
        lambda s: s is not None and f"rules-{broken.id}-{user_id}" in s.seen_event_ids,
    )
    assert state is not None
    assert (await h.rules_source.in_force()).version == in_force
    rejected = h.rules_source.rejected
    assert rejected is not None and rejected.version == broken.id
    assert await _score(h, user_id) == score  # still listed, as scored before
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING

    # the next valid version is taken as usual
    saved = await _editor(h).save(
        _with("default_lender_boost", "25"), "fixed", actor=OPERATOR, base_version=broken.id
    )
    await _rollout_done(h.client, saved.version.id)
    await eventually(lambda: h.rules_source.in_force(), lambda f: f.version == saved.version.id)
    assert h.rules_source.rejected is None


async def test_an_announced_version_reaches_another_process_at_once(
    slow_harness: Harness,
) -> None:
    """Two processes: the saving one announces on Redis; the listening one, which would
    otherwise not look for an hour, checks at once."""
    h = slow_harness
    redis = connect_redis(REDIS_URL, decode_responses=False)
    listening = RulesSource(h.dialler, DiallerRules(), check_every=HOUR)
    async with listening.listening(redis):
        await asyncio.sleep(0.3)  # subscribed (which makes the next read check once)
        first = (await listening.in_force()).version
        async with h.dialler.begin() as conn:
            text = _with("conversion_weight", "33")
            saved = await rules_versions.save_version(
                conn, text, saved_by=None, note="announced", base_version=None
            )
        assert (await listening.current()).scoring.conversion_weight != 33  # not looked yet
        assert await announce_saved(redis, saved.id) >= 1
        found = await eventually(listening.in_force, lambda f: f.version == saved.id, seconds=5)
        assert found.rules.scoring.conversion_weight == 33 and found.version != first
    await redis.aclose()


# --- the operator's commands -------------------------------------------------------------------

DIALLER = str(Path(sys.executable).parent / "dialler")


async def _dialler(h: Harness, env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    environment = {
        **os.environ,
        "DATABASE_URL": h.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": h.replica.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_TASK_QUEUE": h.task_queue,
    }
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode()


async def test_an_operator_saves_shows_and_lists_versions_from_the_command_line(
    slow_harness: Harness, temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    h = slow_harness
    bad = tmp_path / "bad.toml"
    bad.write_text(_with("recording_retention_months", "6"))
    before = (await h.rules_source.newest()).version
    rc, out = await _dialler(
        h, temporal_env, "scoring", "rules-save", str(bad), "--note", "too short", "--by", "ops"
    )
    assert rc == 1, out
    assert "not saved" in out and "compliance.recording_retention_months" in out
    assert (await h.rules_source.newest()).version == before

    good = tmp_path / "good.toml"
    good.write_text(_with("conversion_weight", "27"))
    rc, out = await _dialler(h, temporal_env, "scoring", "test", "--rules", str(good))
    assert rc == 0, out
    assert f"compared with the rules in force (version {before})" in out and "unsigned: top" in out
    rc, out = await _dialler(
        h, temporal_env, "scoring", "rules-save", str(good), "--note", "weight 27", "--by", "ops"
    )
    assert rc == 0, out
    saved = before + 1
    assert f"saved version {saved}" in out and f"rules-rollout-{saved}" in out
    await _rollout_done(h.client, saved)
    async with h.dialler.connect() as conn:
        audit = (
            await conn.execute(
                select(db.audit_log).where(
                    db.audit_log.c.action == "rules_saved",
                    db.audit_log.c.subject_id == str(saved),
                )
            )
        ).one()
    assert (audit.actor_type, audit.actor_id, audit.detail["note"]) == (
        "operator",
        "ops",
        "weight 27",
    )

    rc, out = await _dialler(h, temporal_env, "scoring", "rules-history")
    assert rc == 0, out
    assert out.startswith(f"in force: version {saved}\n")
    assert "operator: weight 27" in out
    rc, out = await _dialler(h, temporal_env, "scoring", "rules-show")
    assert rc == 0 and out == good.read_text()
    rc, out = await _dialler(h, temporal_env, "scoring", "rules-show", "999999")
    assert rc == 1 and "no rules version 999999" in out
