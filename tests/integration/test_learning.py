"""The nightly learned rates against the real databases (issue 14's "done when"): on a fixed
synthetic history whose true rates are known (a seeded draw per attempt with a probability
that depends on the claimant's region and the queue), the job counts exactly what was
written, its learned rates hold the true rates within their intervals, a small segment
shrinks towards the overall rate, and the version it saves is the one the scorer reads;
through LearnRatesWorkflow on a real worker too, where a second run over the same window
saves nothing twice.

What must not count: calls outside the window, a claimant ringing back (inbound), the AI's
triage of an inbound text; a call credited with two conversions converts once."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.learning import LearningActivities
from adapters import learned_rates as store
from adapters.replica_reader import ReplicaReader
from config.settings import Settings
from domain.learned_rates import age_band, age_on, day_of_week, hour_of_day, region_of
from schemas import dialler_db as db
from schemas import replica
from schemas.learned_rates import (
    ClaimantAttributes,
    GatherRequest,
    LearnedRate,
    LearnRatesInput,
    RateInput,
    SaveRates,
)
from tests.workflows.conftest import running_harness, scratch_databases
from workflows.learning import LearnRatesWorkflow

UK = "Europe/London"
NOW = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)
WINDOW = timedelta(days=180)
SEED = 14
# postcode, P(reached), P(converted | reached), claimants
REGIONS = (
    ("M1 1AA", 0.25, 0.10, 90),
    ("EH1 1AA", 0.45, 0.20, 90),
    ("B1 1AA", 0.35, 0.15, 90),
    ("SW1A 1AA", 0.55, 0.08, 90),
    ("CF10 1AA", 0.30, 0.25, 90),
    ("LS1 4DY", 0.40, 0.12, 90),
)
SMALL_REGION = "IM1 1AA"  # two claimants who always answer: a small segment far from the rest
QUEUE_FACTOR = {"unsigned": 1.0, "outstanding": 0.8, "callback": 1.4}
LENDERS = ("Black Horse", "Close Brothers", "MotoNovo", "Santander", "Barclays")
CALLS_PER_CLAIMANT = 14
SMS_PER_CLAIMANT = 2
SMS_REACH = 0.3
SMS_CONVERT = 0.2


@dataclass
class Truth:
    """Per segment: the attempts written, the sum of their probabilities (the expected
    count: the segment's true rate is it over the attempts), and what was drawn."""

    attempts: int = 0
    p_reach: float = 0.0
    p_convert: float = 0.0
    reached: int = 0
    converted: int = 0


@dataclass
class History:
    truths: dict[tuple[str, str], Truth] = field(default_factory=lambda: defaultdict(Truth))
    claimants: int = 0


Keys = list[tuple[str, str]]
Drawn = tuple[float, float, bool, bool, Keys]  # P(reached), P(converted), reached, converted


def _add(history: History, drawn: Drawn) -> None:
    p, q, reached, converted, keys = drawn
    for key in keys:
        t = history.truths[key]
        t.attempts += 1
        t.p_reach += p
        t.p_convert += q
        t.reached += reached
        t.converted += converted


def _conversion(user_id: int, key: str, at: datetime, kind: str, ref: str, **more: Any) -> Any:
    row = {"event_id": f"e-{key}", "subject_key": key, "user_id": user_id, "kind": "signed",
           "occurred_at": at + timedelta(hours=1), "contact_kind": kind, "contact_ref": ref,
           "contact_at": at, "queue": None, "agent_id": None}  # fmt: skip
    return {**row, **more}


async def _claimants(replica_db: AsyncEngine, rng: random.Random) -> list[tuple[Any, ...]]:
    """(user id, postcode, P(reached), P(converted | reached), lenders, born) each."""
    users: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    people: list[tuple[Any, ...]] = []
    user_id = 5_000_000
    for postcode, reach, convert, count in [*REGIONS, (SMALL_REGION, 1.0, 0.5, 2)]:
        for _ in range(count):
            user_id += 1
            born = date(rng.randint(1940, 2000), rng.randint(1, 12), rng.randint(1, 28))
            lenders = tuple(sorted(rng.sample(LENDERS, rng.choice((1, 1, 2)))))
            users.append({"id": user_id, "first_name": "T", "last_name": f"L{user_id}",
                          "date_of_birth": born, "postcode": postcode})  # fmt: skip
            claims += [{"id": user_id * 10 + n, "user_id": user_id, "status": "in_progress",
                        "lender_id": LENDERS.index(lender) + 1}
                       for n, lender in enumerate(lenders)]  # fmt: skip
            people.append((user_id, postcode, reach, convert, lenders, born))
    async with replica_db.begin() as conn:
        await conn.execute(
            insert(replica.lenders), [{"id": i + 1, "name": n} for i, n in enumerate(LENDERS)]
        )
        await conn.execute(insert(replica.users), users)
        await conn.execute(insert(replica.claims), claims)
    return people


async def write_history(dialler: AsyncEngine, replica_db: AsyncEngine) -> History:
    """The claimants in the replica, their calls, AI SMS conversations and conversions in
    the dialler database, and what the job must find (module docstring)."""
    rng = random.Random(SEED)
    people = await _claimants(replica_db, rng)
    async with dialler.begin() as conn:
        ai_agent = await conn.scalar(
            insert(db.agents)
            .values(email="ai@learning.test", display_name="AI", role="agent", is_ai=True)
            .returning(db.agents.c.id)
        )
    calls: list[dict[str, Any]] = []
    call_draws: list[Drawn] = []
    texts: list[dict[str, Any]] = []
    text_draws: list[Drawn] = []
    for user_id, postcode, reach, convert, lenders, born in people:
        who = [("region", region_of(postcode)),
               ("age_band", age_band(age_on(born, NOW.date()))),
               *[("lender", lender) for lender in lenders]]  # fmt: skip
        for _ in range(CALLS_PER_CLAIMANT):
            queue = rng.choice(tuple(QUEUE_FACTOR))
            p = min(1.0, reach * QUEUE_FACTOR[queue])
            reached = rng.random() < p
            converted = reached and rng.random() < convert
            started = NOW - timedelta(days=rng.uniform(0.5, 175), minutes=rng.randint(0, 59))
            calls.append({
                "user_id": user_id, "queue": queue, "provider": "twilio",
                "to_number": "+447700900001", "status": "completed", "started_at": started,
                "answered_at": started + timedelta(seconds=10) if reached else None,
                "answered_by": "human" if reached else None,
                "agent_seconds": 120 if reached else None, "direction": "outbound",
            })  # fmt: skip
            keys = [*who, ("overall", "all"), ("channel", "call"), ("queue", queue),
                    ("hour", hour_of_day(started, UK)),
                    ("weekday", day_of_week(started, UK))]  # fmt: skip
            call_draws.append((p, p * convert, reached, converted, keys))
        for _ in range(SMS_PER_CLAIMANT):
            reached = rng.random() < SMS_REACH
            converted = reached and rng.random() < SMS_CONVERT
            started = NOW - timedelta(days=rng.uniform(0.5, 175))
            texts.append({
                "user_id": user_id, "agent_id": ai_agent, "channel": "sms", "queue": "unsigned",
                "workflow_id": f"ai-sms-{user_id}-{len(texts)}", "status": "finished",
                "turns": 2 if reached else 0, "started_at": started,
                "ended_at": started + timedelta(hours=1),
            })  # fmt: skip
            keys = [*who, ("overall", "all"), ("channel", "sms"), ("queue", "unsigned")]
            text_draws.append((SMS_REACH, SMS_REACH * SMS_CONVERT, reached, converted, keys))

    # what must not count: a call before the window, a claimant ringing back, a triage
    rang_back = NOW - timedelta(days=2)
    outside = {**calls[0], "started_at": NOW - WINDOW - timedelta(days=1)}
    inbound = {**calls[1], "direction": "inbound", "answered_at": rang_back,
               "started_at": rang_back, "answered_by": "human", "agent_seconds": 60}  # fmt: skip
    triage = {**texts[0], "channel": "triage", "workflow_id": "ai-triage-1", "turns": 1}
    c, a = db.calls.c, db.ai_conversations.c
    conversions: list[dict[str, Any]] = []
    async with dialler.begin() as conn:
        written = await conn.execute(
            insert(db.calls).returning(c.id, sort_by_parameter_order=True), calls
        )
        for call_id, call, drawn in zip(written.scalars(), calls, call_draws, strict=True):
            # a signature, and for some the documents too: the call converted once
            kinds = ("signature", "documents") if call_id % 3 == 0 else ("signature",)
            conversions += [
                _conversion(call["user_id"], f"{kind}:{call_id}", call["started_at"], "call",
                            str(call_id), queue=call["queue"])
                for kind in kinds if drawn[3]
            ]  # fmt: skip
        for row in await conn.execute(
            insert(db.calls).returning(c.id, c.user_id, c.started_at), [outside, inbound]
        ):  # credited to calls that are not attempts of the window
            conversions.append(
                _conversion(row.user_id, f"x:{row.id}", row.started_at, "call", str(row.id))
            )
        written = await conn.execute(
            insert(db.ai_conversations).returning(a.id, sort_by_parameter_order=True), texts
        )
        for conversation_id, text, drawn in zip(written.scalars(), texts, text_draws, strict=True):
            if drawn[3]:  # a text the AI sent during the conversation
                sent = text["started_at"] + timedelta(minutes=10)
                conversions.append(
                    _conversion(text["user_id"], f"t:{conversation_id}", sent, "sms",
                                str(900_000 + conversation_id), agent_id=ai_agent)
                )  # fmt: skip
        await conn.execute(insert(db.ai_conversations), [triage])
        await conn.execute(insert(db.conversions), conversions)
    history = History(claimants=len(people))
    for drawn in call_draws + text_draws:
        _add(history, drawn)
    history.truths = dict(history.truths)
    return history


@pytest.fixture(scope="module")
async def databases() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with scratch_databases("learning") as engines:
        yield engines


@pytest.fixture(scope="module")
async def history(databases: tuple[AsyncEngine, AsyncEngine]) -> History:
    return await write_history(*databases)


def _window() -> GatherRequest:
    return GatherRequest(NOW - WINDOW, NOW, UK)


async def test_the_job_counts_what_was_written_and_recovers_the_true_rates(
    databases: tuple[AsyncEngine, AsyncEngine], history: History
) -> None:
    dialler, replica_db = databases
    activities = LearningActivities(dialler, replica_db)
    env = ActivityEnvironment()

    gathered = await env.run(activities.gather, _window())
    counted = {(c.dimension, c.segment): (c.attempts, c.reached, c.conversions)
               for c in [gathered.overall, *gathered.counts]}  # fmt: skip
    written = {key: (t.attempts, t.reached, t.converted) for key, t in history.truths.items()}
    assert counted == written  # every segment, exactly: the database counted what was written
    assert gathered.claimants == history.claimants == 542
    assert counted[("channel", "call")][0] == 542 * CALLS_PER_CLAIMANT

    learned = await env.run(activities.learn, RateInput(gathered.overall, gathered.counts))
    rates = learned.rates
    assert len(rates) == len(written)

    def true_rates(key: tuple[str, str]) -> tuple[float, float]:
        t = history.truths[key]
        return t.p_reach / t.attempts, t.p_convert / t.attempts

    contact_in = [r.contact_low <= true_rates((r.dimension, r.segment))[0] <= r.contact_high
                  for r in rates]  # fmt: skip
    conversion_in = [
        r.conversion_low <= true_rates((r.dimension, r.segment))[1] <= r.conversion_high
        for r in rates
    ]
    assert sum(contact_in) >= 0.9 * len(rates), [
        (r.dimension, r.segment, r.contact_low, true_rates((r.dimension, r.segment))[0],
         r.contact_high) for r, ok in zip(rates, contact_in, strict=True) if not ok
    ]  # fmt: skip
    assert sum(conversion_in) >= 0.9 * len(rates)

    by = {(r.dimension, r.segment): r for r in rates}
    overall = by[("overall", "all")]
    small = by[("region", "Isle of Man")]
    assert small.attempts == 2 * (CALLS_PER_CLAIMANT + SMS_PER_CLAIMANT)
    # the two who always answer a call: far above the rest, and pulled a good part of the way
    # back (k / (n + k) of it), where a big region keeps nearly its own rate

    def pull(r: LearnedRate) -> float:
        return (r.contact_rate - r.shrunk_contact_rate) / (r.contact_rate - overall.contact_rate)

    assert small.contact_rate > 0.7 > 0.5 > overall.contact_rate
    k = next(p.contact for p in learned.priors if p.dimension == "region")
    assert pull(small) == pytest.approx(k / (small.attempts + k)) and pull(small) > 0.3
    big = [r for r in rates if r.dimension == "region" and r.attempts > 1000]
    assert len(big) == 6 and all(0 < pull(r) < 0.05 for r in big)

    seconds = 1.25
    saved = await env.run(
        activities.save,
        SaveRates(gathered.window_start, gathered.window_end, overall.attempts, overall.reached,
                  overall.conversions, seconds, rates),
    )  # fmt: skip
    assert saved.new and saved.segments == len(rates)
    async with dialler.connect() as conn:
        table = await store.newest_rates(conn)
    assert table.version_id == saved.version_id
    assert table.rates == by
    assert table.overall_contact_rate == overall.contact_rate
    again = await env.run(
        activities.save,
        SaveRates(gathered.window_start, gathered.window_end, overall.attempts, overall.reached,
                  overall.conversions, seconds, rates),
    )  # fmt: skip
    assert (again.version_id, again.new) == (saved.version_id, False)


async def test_the_workflow_saves_a_version_the_scorer_reads_once_per_window(
    databases: tuple[AsyncEngine, AsyncEngine],
    history: History,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    dialler, replica_db = databases
    later = NOW + timedelta(hours=1)
    async with running_harness(temporal_env, settings, dialler, replica_db) as h:
        first = await h.client.execute_workflow(
            LearnRatesWorkflow.run,
            LearnRatesInput(now=later),
            id=f"learn-rates-test-{datetime.now(UTC).timestamp()}",
            task_queue=h.task_queue,
        )
        second = await h.client.execute_workflow(
            LearnRatesWorkflow.run,
            LearnRatesInput(now=later),
            id=f"learn-rates-test-again-{datetime.now(UTC).timestamp()}",
            task_queue=h.task_queue,
        )
    assert first.version_id == second.version_id  # the same window is saved once
    assert first.window_end == later and first.window_start == later - WINDOW
    assert first.attempts == history.truths[("overall", "all")].attempts
    assert first.claimants == 542 and first.segments == len(history.truths)
    assert {p.dimension for p in first.priors} == {
        "channel",
        "queue",
        "region",
        "lender",
        "age_band",
        "hour",
        "weekday",
    }
    async with dialler.connect() as conn:
        table = await store.newest_rates(conn)
        versions = await store.versions(conn)
        rows = (
            await conn.execute(select(db.rate_versions.c.id).where(
                db.rate_versions.c.window_end == later))
        ).all()  # fmt: skip
    assert len(rows) == 1
    assert table.version_id == first.version_id == versions[0].id
    assert versions[0].seconds == first.seconds >= 0
    region = table.rate("region", "Scotland")
    assert region is not None and region.attempts == history.truths[("region", "Scotland")].attempts
    assert region.contact_low < region.contact_rate < region.contact_high
    assert table.rate("age_band", "unknown") is None  # everyone here has a birth date


async def test_a_bad_window_fails_the_run_without_retrying(
    databases: tuple[AsyncEngine, AsyncEngine],
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    from temporalio.client import WorkflowFailureError

    dialler, replica_db = databases
    async with running_harness(temporal_env, settings, dialler, replica_db) as h:
        with pytest.raises(WorkflowFailureError) as failed:
            await h.client.execute_workflow(
                LearnRatesWorkflow.run,
                LearnRatesInput(window_days=0),
                id=f"learn-rates-bad-{datetime.now(UTC).timestamp()}",
                task_queue=h.task_queue,
            )
    assert "at least a day" in str(failed.value.cause)


async def test_claimant_attributes_come_from_the_replica_one_row_each(
    databases: tuple[AsyncEngine, AsyncEngine], history: History
) -> None:
    _, replica_db = databases
    async with replica_db.begin() as conn:
        await conn.execute(insert(replica.users), [
            {"id": 6_000_001, "first_name": "A", "last_name": "A", "postcode": "EH1 1AA",
             "date_of_birth": date(1950, 1, 2)},
            {"id": 6_000_002, "first_name": "B", "last_name": "B", "postcode": None,
             "date_of_birth": None},
        ])  # fmt: skip
        # two claims at one lender and one at another: each lender once
        await conn.execute(insert(replica.claims), [
            {"id": 60_000_011, "user_id": 6_000_001, "lender_id": 4, "status": "in_progress"},
            {"id": 60_000_012, "user_id": 6_000_001, "lender_id": 4, "status": "in_progress"},
            {"id": 60_000_013, "user_id": 6_000_001, "lender_id": 1, "status": "in_progress"},
        ])  # fmt: skip
    found = await ReplicaReader(replica_db).claimant_attributes(
        [6_000_002, 6_000_001, 6_000_001, 6_999_999], batch=1
    )
    assert found == {
        6_000_001: ClaimantAttributes("EH1 1AA", date(1950, 1, 2), ("Black Horse", "Santander")),
        6_000_002: ClaimantAttributes(None, None, ()),  # no claims; 6_999_999: not there
    }
