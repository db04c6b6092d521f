"""The live split against the real databases: one split runs at a time (`adapters.
scoring_splits`); the outreach worker's activities score the candidate arm by the candidate
version's [scoring] and everyone else by the rules in force, record each claimant's arm on
their task (stable across refreshes), and a call's outcome carries its task's arm. When the
split ends, the tasks lose their arm at their next refresh (a write, even where the score
did not move).

The split needs a saved rules version, which would become the rules in force of every test
sharing the session's database: this module has databases of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.outreach import OutreachActivities
from adapters import call_log, rules_versions, scoring_splits
from adapters.scoring_splits import SplitRunning, SplitSource
from domain.rules import parse_rules
from domain.scoring_split import Arm, arm_of, scored_by
from schemas import dialler_db as db
from schemas.enums import Queue
from schemas.outreach import AssessRequest, LoadFactsRequest, RecordOutcome, RefreshTask
from tests.factories import add_claimant
from tests.workflows.conftest import open_rules, scratch_databases

CANDIDATE_TEXT = "[scoring]\ndefault_lender_boost = 40\n"  # unlisted lenders first


@pytest.fixture(scope="module")
async def dbs() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with scratch_databases("splits") as engines:
        yield engines


async def _version(dialler: AsyncEngine, text: str = CANDIDATE_TEXT) -> int:
    async with dialler.begin() as conn:
        saved = await rules_versions.save_version(
            conn, text, saved_by=None, note="candidate", base_version=None
        )
    return saved.id


async def _start(dialler: AsyncEngine, version: int, share: float) -> scoring_splits.Split:
    async with dialler.begin() as conn:
        return await scoring_splits.start(
            conn, rules_version_id=version, share=share, note="try it", started_by=None
        )


async def _end(dialler: AsyncEngine, split_id: int) -> scoring_splits.Split | None:
    async with dialler.begin() as conn:
        return await scoring_splits.end(conn, split_id, ended_by=None)


async def test_one_split_runs_at_a_time_and_ends_once(
    dbs: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, _ = dbs
    version = await _version(dialler)
    first = await _start(dialler, version, 0.2)
    assert first.running and first.share == 0.2 and first.rules_version_id == version
    with pytest.raises(SplitRunning) as refused:
        await _start(dialler, version, 0.3)
    assert refused.value.running.id == first.id
    with pytest.raises(ValueError, match="between 1% and 50%"):
        await _start(dialler, version, 0.8)
    ended = await _end(dialler, first.id)
    assert ended is not None and not ended.running and ended.ended_at is not None
    assert await _end(dialler, first.id) is None  # ended already
    second = await _start(dialler, version, 0.3)
    async with dialler.connect() as conn:
        assert (await scoring_splits.running(conn)) == second
        assert [s.id for s in await scoring_splits.history(conn)] == [second.id, first.id]
    await _end(dialler, second.id)


async def test_two_starts_at_once_leave_one_split_running(
    dbs: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Both pass the check before either inserts: the unique index refuses the second."""
    dialler, _ = dbs
    version = await _version(dialler)
    async with dialler.connect() as one, dialler.connect() as two:
        await one.begin()
        await two.begin()
        started = await scoring_splits.start(
            one, rules_version_id=version, share=0.1, note="", started_by=None
        )
        await one.commit()
        with pytest.raises(SplitRunning) as refused:
            await scoring_splits.start(
                two, rules_version_id=version, share=0.1, note="", started_by=None
            )
        await two.rollback()
    assert refused.value.running.id == started.id
    await _end(dialler, started.id)


async def test_a_worker_sees_a_split_within_its_check_period(
    dbs: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, _ = dbs
    ticks = [0.0]
    source = SplitSource(dialler, check_every=5.0, clock=lambda: ticks[0])
    assert await source.current() is None
    split = await _start(dialler, await _version(dialler), 0.25)
    ticks[0] = 4.9
    assert await source.current() is None  # cached: no query per claimant
    ticks[0] = 5.0
    # claimants assessed together: none may go on with what was seen before the check
    seen = await asyncio.gather(*(source.current() for _ in range(10)))
    assert all(found is not None and found.id == split.id for found in seen)
    running = await source.current()
    assert running is not None and running.id == split.id and running.share == 0.25
    assert running.rules.scoring.default_lender_boost == 40
    await _end(dialler, split.id)
    ticks[0] = 10.0
    assert await source.current() is None


async def test_the_arms_are_scored_recorded_on_tasks_and_carried_by_calls(
    dbs: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, replica = dbs
    in_force = open_rules()
    candidate = scored_by(in_force, parse_rules(CANDIDATE_TEXT))
    split = await _start(dialler, await _version(dialler), 0.5)
    splits = SplitSource(dialler, check_every=0.0)  # every assessment checks (a test)
    worker = OutreachActivities(dialler, replica, in_force, splits=splits)
    plain = OutreachActivities(dialler, replica, in_force)  # no split: the rules in force
    tried = OutreachActivities(dialler, replica, candidate)  # the candidate's score
    env = ActivityEnvironment()
    users = [await add_claimant(replica, signed=False, lender="Monzo") for _ in range(40)]
    now = datetime.now(UTC)
    arms: dict[int, Arm] = {}
    for user_id in users:
        facts = await env.run(worker.load_facts, LoadFactsRequest(user_id))
        request = RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=1)
        refreshed = await env.run(worker.refresh_task, request)
        arms[user_id] = arm_of(user_id, split.id, 0.5)
        assert refreshed.assessment.score_arm == arms[user_id].value
        assert refreshed.written is not None
        assert refreshed.written.score_arm == arms[user_id].value
        scorer = tried if arms[user_id] is Arm.CANDIDATE else plain
        expected = await scorer.assess(AssessRequest(facts, now))
        assert refreshed.assessment.score == expected.score
        # the same claimant again: the same arm, nothing to write
        request = RefreshTask(
            user_id, f"outreach-{user_id}", facts, now, version=2, written=refreshed.written
        )
        again = await env.run(worker.refresh_task, request)
        assert not again.wrote and again.assessment.score_arm == arms[user_id].value
    assert set(arms.values()) == {Arm.CANDIDATE, Arm.CONTROL}  # 40 at 50 %: both arms drawn
    candidate_user = next(u for u in users if arms[u] is Arm.CANDIDATE)
    control_user = next(u for u in users if arms[u] is Arm.CONTROL)
    # the unlisted lender's +40 is the candidate's alone
    tasks = await _tasks(dialler, users)
    assert tasks[candidate_user][1] - tasks[control_user][1] == pytest.approx(40)
    assert {u: t[0] for u, t in tasks.items()} == {u: a.value for u, a in arms.items()}

    agent_id = await _agent(dialler)
    for user_id in (candidate_user, control_user):
        await env.run(
            worker.record_outcome,
            RecordOutcome(
                user_id=user_id,
                agent_id=agent_id,
                queue=Queue.UNSIGNED,
                disposition="no_answer",
                notes="",
                at=now,
                outcome_key=f"split-{user_id}",
            ),
        )
    assert await _call_arms(dialler, [candidate_user, control_user]) == {
        candidate_user: "candidate",
        control_user: "control",
    }
    # an AI agent's call takes the arm with the outcome its conversation recorded
    async with dialler.begin() as conn:
        ai_call = await call_log.insert_ai_call(
            conn, user_id=candidate_user, agent_id=agent_id, queue="unsigned",
            provider="simulated", to_number="+447700900123", from_number=None,
        )  # fmt: skip
        await call_log.finish_ai_call(conn, ai_call, transcript=None, disposition="no_answer")
        found = await conn.scalar(select(db.calls.c.score_arm).where(db.calls.c.id == ai_call))
    assert found == "candidate"

    await _end(dialler, split.id)
    for user_id in (candidate_user, control_user):
        facts = await env.run(worker.load_facts, LoadFactsRequest(user_id))
        written = (
            await env.run(
                worker.refresh_task,
                RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=3),
            )
        ).written
        after = await env.run(
            worker.refresh_task,
            RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=4, written=written),
        )
        assert after.assessment.score_arm is None and not after.wrote
    assert {
        u: t[0] for u, t in (await _tasks(dialler, [candidate_user, control_user])).items()
    } == {candidate_user: None, control_user: None}


async def test_a_control_task_loses_its_arm_when_the_split_ends_though_its_score_stays(
    dbs: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, replica = dbs
    split = await _start(dialler, await _version(dialler), 0.01)
    worker = OutreachActivities(
        dialler, replica, open_rules(), splits=SplitSource(dialler, check_every=0.0)
    )
    env = ActivityEnvironment()
    user_id = next(
        u
        for u in [await add_claimant(replica, signed=False) for _ in range(5)]
        if arm_of(u, split.id, 0.01) is Arm.CONTROL
    )
    facts = await env.run(worker.load_facts, LoadFactsRequest(user_id))
    now = datetime.now(UTC)
    first = await env.run(
        worker.refresh_task, RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=1)
    )
    await _end(dialler, split.id)
    second = await env.run(
        worker.refresh_task,
        RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=2, written=first.written),
    )
    assert second.assessment.score == first.assessment.score
    assert second.wrote  # only the arm changed: the task must stop saying "control"
    assert (await _tasks(dialler, [user_id]))[user_id][0] is None


async def _tasks(dialler: AsyncEngine, users: list[int]) -> dict[int, tuple[str | None, float]]:
    t = db.call_tasks.c
    async with dialler.connect() as conn:
        rows = await conn.execute(
            select(t.user_id, t.score_arm, t.score).where(t.user_id.in_(users))
        )
        return {int(r.user_id): (r.score_arm, float(r.score)) for r in rows}


async def _call_arms(dialler: AsyncEngine, users: list[int]) -> dict[int, str | None]:
    c = db.calls.c
    async with dialler.connect() as conn:
        rows = await conn.execute(select(c.user_id, c.score_arm).where(c.user_id.in_(users)))
        return {int(r.user_id): r.score_arm for r in rows}


async def _agent(dialler: AsyncEngine) -> int:
    async with dialler.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=f"split-{datetime.now(UTC).timestamp()}@t", display_name="A", role="agent"
            )
            .returning(db.agents.c.id)
        )
    return int(agent_id or 0)
