"""A live split through the real workflows: starting it (`services.live_split`) re-scores the
queued claimants by the rules rollout workflow (its own run, after the workers' few seconds
to see the split), so each running claimant's task takes its arm and the candidate arm its
score (an unlisted lender's +40); ending it takes the arms away again. The outreach worker is
not restarted: it reads the split as a deployed one does (`SplitSource`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from adapters import rules_versions
from adapters.rules_source import RulesSource
from config.settings import Settings
from domain.scoring_split import Arm, arm_of
from schemas.enums import Queue
from schemas.rules import RulesRolledOut
from services.live_split import LiveSplits
from services.rules_editing import Actor
from tests.factories import add_claimant
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import eventually, start, task_in, task_row
from workflows.rules_rollout_client import RulesRolloutClient, split_rollout_id_for

SHIPPED = (Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml").read_text(
    encoding="utf-8"
)
OPERATOR = Actor("operator", "test")


def _with(key: str, value: str) -> str:
    line = next(line for line in SHIPPED.splitlines() if line.startswith(f"{key} = "))
    return SHIPPED.replace(line, f"{key} = {value}", 1)


@pytest.fixture(scope="module")
async def split_harness(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[Harness]:
    async with (
        scratch_databases("splitroll") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica) as h,
    ):
        yield h


async def _arms(h: Harness, users: list[int]) -> dict[int, tuple[str | None, Decimal]]:
    found = {}
    for user_id in users:
        row = await task_row(h, user_id)
        assert row is not None
        found[user_id] = (row.score_arm, Decimal(row.score))
    return found


async def _rolled_out(h: Harness, split_id: int, change: str) -> RulesRolledOut:
    handle = h.client.get_workflow_handle(
        split_rollout_id_for(split_id, change), result_type=RulesRolledOut
    )
    result = await handle.result()
    assert isinstance(result, RulesRolledOut)
    return result


async def test_starting_and_ending_a_split_re_scores_the_queued_claimants(
    split_harness: Harness,
) -> None:
    h = split_harness
    async with h.dialler.begin() as conn:
        candidate = await rules_versions.save_version(
            conn, _with("default_lender_boost", "40"), saved_by=None, note="unlisted first",
            base_version=None,
        )  # fmt: skip
        await rules_versions.save_version(
            conn, SHIPPED, saved_by=None, note="the shipped rules", base_version=None
        )
    split_id = 1  # the first split in this database: the arms can be drawn beforehand
    users: list[int] = []
    while (
        sum(arm_of(u, split_id, 0.5) is Arm.CANDIDATE for u in users) < 2
        or sum(arm_of(u, split_id, 0.5) is Arm.CONTROL for u in users) < 2
    ):
        users.append(await add_claimant(h.replica, signed=False, pending=1, lender="Monzo"))
    for user_id in users:
        await start(h, user_id)
    for user_id in users:
        await task_in(h, user_id, Queue.UNSIGNED.value)
    # in force everywhere: the shipped rules (the worker checks every few seconds)
    await eventually(h.rules_source.in_force, lambda f: f.version == candidate.id + 1)
    before = await eventually(
        lambda: _arms(h, users), lambda found: len({score for _, score in found.values()}) == 1
    )
    base = next(iter(before.values()))[1]

    splits = LiveSplits(
        h.dialler,
        RulesSource(h.dialler, h.rules),
        rollout=RulesRolloutClient.over(h.client, h.task_queue),
    )
    started = await splits.start(candidate.id, "50", "a fair trial", actor=OPERATOR)
    assert started.split.id == split_id
    assert started.rollout_id == split_rollout_id_for(split_id, "started")
    rolled = await _rolled_out(h, split_id, "started")
    assert (rolled.claimants, rolled.told, rolled.refused) == (len(users), len(users), 0)
    expected = {
        u: (a.value, base + 40 if a is Arm.CANDIDATE else base)
        for u in users
        for a in [arm_of(u, split_id, 0.5)]
    }
    assert await eventually(lambda: _arms(h, users), lambda found: found == expected) == expected

    await splits.end(split_id, actor=OPERATOR)
    rolled = await _rolled_out(h, split_id, "ended")
    assert rolled.told == len(users)
    after = {u: (None, base) for u in users}
    assert await eventually(lambda: _arms(h, users), lambda found: found == after) == after
