"""The new score factors through the outreach activity against real databases of their own
(a learned version here must not reach other tests): the claimant's region read from the
replica's postcode, the newest learned version read (and cached per worker) into the
breakdown, and the previous successful agent read from the call log, a person only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.outreach import OutreachActivities
from adapters import learned_rates
from domain.rules import parse_rules
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.enums import AgentRole, Queue
from schemas.learned_rates import LearnedRate
from schemas.outreach import AssessRequest, LoadFactsRequest, ScoreFactor, Stage
from tests.factories import add_claimant
from tests.web.conftest import make_staff
from tests.workflows.conftest import scratch_databases

RULES = parse_rules('[scoring.regions]\n"North West" = 5\n')


@pytest.fixture(scope="module")
async def databases() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    async with scratch_databases("learned_factors") as engines:
        yield engines


def _rate(dimension: str, segment: str, contact: float, conversion: float) -> LearnedRate:
    return LearnedRate(
        dimension, segment, 1000, int(contact * 1000), int(conversion * 1000),
        contact, contact, contact, conversion, conversion - 0.01, conversion + 0.01,
        contact, conversion,
    )  # fmt: skip


async def _save_version(dialler: AsyncEngine) -> int:
    now = datetime.now(UTC)
    async with dialler.begin() as conn:
        return await learned_rates.save_version(
            conn,
            window_start=now - timedelta(days=180),
            window_end=now,
            attempts=1000,
            reached=300,
            conversions=100,
            seconds=1.0,
            rates=[
                _rate("overall", "all", 0.3, 0.1),
                _rate("region", "North West", 0.3, 0.12),
                _rate("lender", "Santander", 0.3, 0.18),
                _rate("queue", "unsigned", 0.3, 0.06),
                _rate("age_band", "75 and over", 0.3, 0.9),
                _rate("channel", "call", 0.3, 0.1),
                _rate("channel", "sms", 0.2, 0.05),
            ],
        )


def _factor(factors: list[ScoreFactor], name: str) -> ScoreFactor:
    return next(f for f in factors if f.name == name)


async def test_region_learned_rates_and_regional_team_reach_the_breakdown(
    databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, replica = databases
    user_id = await add_claimant(replica, signed=False, pending=1)  # postcode M1 4AB
    env = ActivityEnvironment()

    before = OutreachActivities(dialler, replica, RULES)
    facts = await env.run(before.load_facts, LoadFactsRequest(user_id))
    assert facts.region == "North West"
    assessment = await before.assess(AssessRequest(facts, datetime.now(UTC)))
    assert _factor(assessment.factors, "conversion").detail.startswith(
        "segment conversion rate: no data yet"
    )
    assert _factor(assessment.factors, "region") == ScoreFactor(
        "region", 5.0, "North West (regional team) +5"
    )

    await _save_version(dialler)
    # the worker that read no version a moment ago keeps that answer for ten minutes...
    cached = await before.assess(AssessRequest(facts, datetime.now(UTC)))
    assert _factor(cached.factors, "conversion") == _factor(assessment.factors, "conversion")
    # ...a fresh one reads the new version: the mean of 12%, 18% and 6% (never the age band)
    fresh = OutreachActivities(dialler, replica, RULES)
    assessment = await fresh.assess(AssessRequest(facts, datetime.now(UTC)))
    conversion = _factor(assessment.factors, "conversion")
    assert conversion.contribution == pytest.approx(0.12 * 20)
    assert conversion.detail.startswith(
        "expected conversion 12.0% (region North West 12% [11-13%], lender Santander 18%"
    )
    assert "age" not in conversion.detail
    assert _factor(assessment.factors, "best_channel").detail == (
        "call now: no SMS consent (calls 30%) +0"
    )


async def test_an_unplaceable_postcode_has_no_region(
    databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, replica = databases
    user_id = await add_claimant(replica, signed=False, pending=1)
    async with replica.begin() as conn:
        await conn.execute(update(rp.users).where(rp.users.c.id == user_id).values(postcode="??"))
    facts = await ActivityEnvironment().run(
        OutreachActivities(dialler, replica, RULES).load_facts, LoadFactsRequest(user_id)
    )
    assert facts.region is None


async def _call(
    dialler: AsyncEngine, user_id: int, agent_id: int, disposition: str, ago: int
) -> None:
    at = datetime.now(UTC) - timedelta(days=ago)
    async with dialler.begin() as conn:
        await conn.execute(
            insert(db.calls).values(
                user_id=user_id, agent_id=agent_id, queue=Queue.UNSIGNED.value,
                provider="simulated", to_number="+447700900321", status="completed",
                started_at=at, ended_at=at, disposition=disposition,
            )
        )  # fmt: skip


async def test_the_previous_successful_agent_is_the_person_of_the_latest_positive_outcome(
    databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    dialler, replica = databases
    first = await make_staff(dialler, AgentRole.AGENT, Queue.UNSIGNED)
    second = await make_staff(dialler, AgentRole.AGENT, Queue.UNSIGNED)
    ai = await make_staff(dialler, AgentRole.AGENT, Queue.UNSIGNED)
    async with dialler.begin() as conn:
        await conn.execute(update(db.agents).where(db.agents.c.id == ai.id).values(is_ai=True))
    user_id = await add_claimant(replica, signed=False, pending=1)
    activities = OutreachActivities(dialler, replica, RULES)
    facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))

    async def previous() -> int | None:
        async with dialler.connect() as conn:
            history = await activities.contact_history(
                conn, facts, datetime.now(UTC), stage=Stage.UNSIGNED, rules=RULES
            )
        return history.previous_agent_id

    assert await previous() is None
    await _call(dialler, user_id, first.id, "promised_to_sign", ago=6)
    await _call(dialler, user_id, second.id, "no_answer", ago=5)  # not a positive outcome
    assert await previous() == first.id
    await _call(dialler, user_id, second.id, "promised_documents", ago=4)
    assert await previous() == second.id
    await _call(dialler, user_id, ai.id, "promised_to_sign", ago=3)
    assert await previous() is None  # the latest success was the AI's: no one is preferred
    await _call(dialler, user_id, first.id, "magic_link_sent", ago=2)
    assert await previous() == first.id
    async with dialler.begin() as conn:  # a disabled agent is no one's preference
        await conn.execute(
            update(db.agents).where(db.agents.c.id == first.id).values(is_active=False)
        )
    assert await previous() is None
