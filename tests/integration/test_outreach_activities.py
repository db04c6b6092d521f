"""Outreach activities against the real databases: the version guard on the queue
projection, callback times checked against the real calling windows, context loading."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.outreach import OutreachActivities
from adapters.context_cache import ContextCache
from adapters.databases import dialler_engine
from adapters.rules_file import load_rules_file
from adapters.suppressions import suppression_status
from config.settings import Settings
from domain.facts import WRONG_NUMBER_REASON
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.enums import Queue
from schemas.outreach import (
    Assessment,
    Claim,
    LoadFactsRequest,
    RecordOutcome,
    RefreshTask,
    SaveCallback,
    ScoreFactor,
    Stage,
    Suppress,
)
from services.claimant_loader import ClaimantLoader
from tests.conftest import REDIS_URL
from tests.factories import add_claimant, next_id


@pytest.fixture
def activities(
    settings: Settings, dialler_db: AsyncEngine, replica: AsyncEngine
) -> OutreachActivities:
    return OutreachActivities(dialler_db, replica, load_rules_file(settings.rules_file))


def _assessment(user_id: int, score: float) -> Assessment:
    return Assessment(
        user_id=user_id,
        stage=Stage.UNSIGNED,
        score=score,
        factors=[ScoreFactor("queue", score, "base")],
        not_before=datetime.now(UTC),
        not_before_reason="can call now",
        people_only=False,
    )


async def _task(engine: AsyncEngine, user_id: int):  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return (
            await conn.execute(select(db.call_tasks).where(db.call_tasks.c.user_id == user_id))
        ).one()


async def test_an_older_write_never_overwrites_a_newer_one(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    user_id = await add_claimant(replica, signed=False, pending=1)
    env = ActivityEnvironment()
    facts = await env.run(activities.load_facts, LoadFactsRequest(user_id))
    request = RefreshTask(user_id, f"outreach-{user_id}", facts, datetime.now(UTC), version=20)
    assert (await env.run(activities.refresh_task, request)).wrote
    late = replace(request, facts=replace(facts, is_vulnerable=True), version=10)
    await env.run(activities.refresh_task, late)  # a retried, late activity
    row = await _task(dialler_db, user_id)
    assert (row.version, row.status, row.route_to_people_only) == (20, "ready", False)

    done = replace(facts, signed=True, claims=[])
    await env.run(activities.refresh_task, replace(request, facts=done, version=15))
    assert (await _task(dialler_db, user_id)).status == "ready"  # a late withdrawal
    await env.run(activities.refresh_task, replace(request, facts=done, version=30))
    row = await _task(dialler_db, user_id)
    assert (row.version, row.status, row.not_before_reason) == (
        30,
        "withdrawn",
        "nothing left to chase",
    )


async def test_a_wrong_number_survives_a_reload_until_the_number_changes(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """The wrong_number outcome is recorded against the number's key; `load_facts` reads it
    back, so a new run, a continue-as-new or a reconcile REFRESH does not dial it again."""
    user_id = await add_claimant(replica, signed=False, pending=1, phone="+447700900126")
    async with dialler_db.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=f"wrong-{user_id}@t", display_name="Agent", role="agent")
            .returning(db.agents.c.id)
        )
    env = ActivityEnvironment()
    before = await env.run(activities.load_facts, LoadFactsRequest(user_id))
    request = RefreshTask(user_id, f"outreach-{user_id}", before, datetime.now(UTC), version=1)
    listed = await env.run(activities.refresh_task, request)
    assert before.wrong_phone_key is None and listed.assessment.not_before is not None
    outcome = RecordOutcome(
        user_id=user_id,
        agent_id=int(agent_id),
        queue=Queue.UNSIGNED,
        disposition="wrong_number",
        notes="",
        at=datetime.now(UTC),
        outcome_key=f"outreach-{user_id}@wrong",
    )
    await env.run(activities.record_outcome, outcome)
    facts = await env.run(activities.load_facts, LoadFactsRequest(user_id))
    assert facts.phone_key is not None and facts.wrong_phone_key == facts.phone_key
    refreshed = await env.run(
        activities.refresh_task,
        replace(request, facts=facts, version=2, written=listed.written),
    )
    assert refreshed.assessment.not_before is None
    assert refreshed.assessment.not_before_reason == WRONG_NUMBER_REASON
    row = await _task(dialler_db, user_id)  # the reason is what the console and the API show
    assert (row.status, row.not_before_reason) == ("withdrawn", WRONG_NUMBER_REASON)

    async with replica.begin() as conn:  # the main app records a new number
        await conn.execute(
            update(rp.users).where(rp.users.c.id == user_id).values(phone_number="+447700900127")
        )
    moved = await env.run(activities.load_facts, LoadFactsRequest(user_id))
    assert moved.phone_key not in (None, facts.phone_key)
    refreshed = await env.run(
        activities.refresh_task, replace(request, facts=moved, version=3, written=refreshed.written)
    )
    assert refreshed.assessment.not_before is not None
    assert (await _task(dialler_db, user_id)).status == "ready"


async def test_callback_outside_the_calling_windows_is_refused(
    activities: OutreachActivities, dialler_db: AsyncEngine
) -> None:
    async with dialler_db.begin() as conn:
        agent = await conn.scalar(
            insert(db.agents)
            .values(email=f"cb{next_id()}@t", display_name="Agent", role="agent")
            .returning(db.agents.c.id)
        )
    sunday_late = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)  # 22:30 in London, a Sunday
    christmas = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)  # a bank holiday
    for at in (sunday_late, christmas):
        with pytest.raises(ApplicationError, match="outside the calling windows") as raised:
            await ActivityEnvironment().run(
                activities.save_callback, SaveCallback(next_id(), at, "", agent, None)
            )
        assert raised.value.non_retryable
    monday_noon = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    saved = await ActivityEnvironment().run(
        activities.save_callback, SaveCallback(next_id(), monday_noon, "after lunch", agent, None)
    )
    assert saved.callback_id > 0


async def test_facts_are_built_from_the_replica_without_personal_data(
    activities: OutreachActivities, replica: AsyncEngine
) -> None:
    user_id = await add_claimant(
        replica, signed=False, pending=2, phone="+447700900123", born=date(1950, 1, 1)
    )
    second = next_id()  # a claim id no other claimant's factory will take
    async with replica.begin() as conn:  # a second claim, with no requirement (yet)
        lender_id = await conn.scalar(
            select(rp.claims.c.lender_id).where(rp.claims.c.id == user_id)
        )
        await conn.execute(
            insert(rp.claims).values(
                id=second, user_id=user_id, lender_id=lender_id, status="new",
                created_at=datetime(2026, 2, 1, 9, 0),
            )
        )  # fmt: skip
    facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))
    assert not facts.signed and facts.is_enabled
    assert facts.age_years is not None and facts.age_years >= 75
    assert facts.phone_key is not None and "7700900123" not in facts.phone_key
    assert [(c.claim_id, len(c.requirements)) for c in facts.claims] == [
        (user_id, 2),
        (second, 0),
    ]
    assert [r.requirement_id for r in facts.claims[0].requirements] == [
        user_id * 10,
        user_id * 10 + 1,
    ]
    assert facts.claims[0].created_at.tzinfo is not None
    dumped = repr(facts)
    assert f"Claimant{user_id}" not in dumped and "example.com" not in dumped
    assert "+44" not in dumped
    missing = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(next_id()))
    assert not missing.is_enabled and missing.status == "deleted"


async def test_opted_out_follows_the_latest_sms_keyword_in_the_facts_and_the_console(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    number = "+447700900124"
    user_id = await add_claimant(replica, signed=False, pending=1, phone=number)

    async def opted_out() -> bool:
        """What the workflow's facts say, which the console's banner (the context) and so
        the API's `claimant.opted_out` must agree with."""
        facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))
        redis = Redis.from_url(REDIS_URL)
        try:
            loaded = await ClaimantLoader(ContextCache(redis, replica), dialler_db).load(user_id)
        finally:
            await redis.aclose()
        assert loaded is not None and loaded.context.opted_out == facts.opted_out
        return facts.opted_out

    async def add(reason: str, **subject: object) -> None:
        async with dialler_db.begin() as conn:
            await conn.execute(
                insert(db.suppressions).values(reason=reason, source="test", **subject)
            )

    assert not await opted_out()
    await add("sms_stop", phone_number=number)  # by number: the claimant's replica phone
    assert await opted_out()
    await add("sms_start", user_id=user_id, phone_number=number)
    assert not await opted_out()
    await add("do_not_call", user_id=user_id)
    await add("sms_start", user_id=user_id, phone_number=number)
    assert await opted_out()  # final: no START lifts it


async def test_suppress_records_each_reason_once(
    activities: OutreachActivities, dialler_db: AsyncEngine
) -> None:
    """The SMS webhook writes its sms_stop row before telling the workflow; the workflow's
    own suppress then finds it instead of adding a second one (which could outlive a START
    that came in between)."""
    user_id = next_id()
    env = ActivityEnvironment()
    first = await env.run(activities.suppress, Suppress(user_id, "sms_stop", "sms:SM1"))
    again = await env.run(activities.suppress, Suppress(user_id, "sms_stop", "change_event"))
    other = await env.run(activities.suppress, Suppress(user_id, "do_not_call", "agent:1"))
    assert again.suppression_id == first.suppression_id != other.suppression_id
    async with dialler_db.connect() as conn:
        reasons = (
            await conn.scalars(
                select(db.suppressions.c.reason)
                .where(db.suppressions.c.user_id == user_id)
                .order_by(db.suppressions.c.id)
            )
        ).all()
    assert reasons == ["sms_stop", "do_not_call"]

    # STOP, START, then a STOP the workflow hears of: the latest SMS event is a STOP again
    sms_user = next_id()
    stop = await env.run(activities.suppress, Suppress(sms_user, "sms_stop", "sms:SM2"))
    async with dialler_db.begin() as conn:
        await conn.execute(
            insert(db.suppressions).values(user_id=sms_user, reason="sms_start", source="sms:SM3")
        )
    again = await env.run(activities.suppress, Suppress(sms_user, "sms_stop", "change_event"))
    assert again.suppression_id > stop.suppression_id
    async with dialler_db.connect() as conn:
        assert (await suppression_status(conn, sms_user, None)).suppressed


async def test_an_outcome_is_recorded_once_however_often_its_activity_runs(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """A local activity runs again when its workflow task times out before completing: the
    claim's outcome key makes the second run find the first one's call."""
    user_id = await add_claimant(replica, signed=False, pending=1)
    async with dialler_db.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=f"outcome-{user_id}@t", display_name="Agent", role="agent")
            .returning(db.agents.c.id)
        )
    outcome = RecordOutcome(
        user_id=user_id,
        agent_id=int(agent_id),
        queue=Queue.UNSIGNED,
        disposition="no_answer",
        notes="rang out",
        at=datetime.now(UTC),
        outcome_key=f"outreach-{user_id}@2026-11-28T10:00:00+00:00",
    )
    env = ActivityEnvironment()
    first = await env.run(activities.record_outcome, outcome)
    second = await env.run(activities.record_outcome, outcome)
    next_claim = replace(outcome, outcome_key=f"outreach-{user_id}@2026-11-28T11:00:00+00:00")
    third = await env.run(activities.record_outcome, next_claim)
    assert first.call_id == second.call_id != third.call_id
    async with dialler_db.connect() as conn:
        calls = (
            await conn.scalars(select(db.calls.c.id).where(db.calls.c.user_id == user_id))
        ).all()
        audited = (
            await conn.scalars(
                select(db.audit_log.c.id).where(
                    db.audit_log.c.subject_id == str(user_id),
                    db.audit_log.c.action == "outcome_recorded",
                )
            )
        ).all()
    assert len(calls) == 2
    assert len(audited) == 2


async def _add_call(
    engine: AsyncEngine,
    user_id: int,
    at: datetime,
    disposition: str | None,
    key: str | None,
    abandoned: bool = False,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(db.calls).values(
                user_id=user_id,
                provider="simulated",
                to_number="+447700900000",
                phone_key=key,
                status="completed",
                started_at=at,
                ended_at=at + timedelta(minutes=2),
                disposition=disposition,
                abandoned=abandoned,
            )
        )


async def test_contact_history_counts_the_claimant_and_their_number_in_one_read(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    user_id = await add_claimant(replica, signed=False, pending=1, phone="+447700900125")
    facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))
    assert facts.phone_key is not None
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday, 15:00 in London
    await _add_call(
        dialler_db, user_id, now - timedelta(days=9), "promised_to_sign", facts.phone_key
    )
    await _add_call(
        dialler_db, user_id, now - timedelta(days=2), "callback_requested", facts.phone_key
    )
    await _add_call(
        dialler_db, user_id, now - timedelta(days=1), "no_answer", facts.phone_key, True
    )
    await _add_call(dialler_db, user_id, now - timedelta(hours=3), "busy", facts.phone_key)
    await _add_call(dialler_db, user_id, now - timedelta(hours=1), None, facts.phone_key)  # live
    # the same number for someone else (a shared household phone), and a call with no number
    await _add_call(dialler_db, next_id(), now - timedelta(hours=2), "no_answer", facts.phone_key)
    await _add_call(dialler_db, next_id(), now - timedelta(hours=2), "no_answer", None)

    async with dialler_db.connect() as conn:
        history = await activities.contact_history(conn, facts, now, Stage.UNSIGNED)
        nobody = replace(facts, user_id=next_id(), phone_key=None)
        empty = await activities.contact_history(conn, nobody, now, Stage.UNSIGNED)

    assert (history.attempts_today, history.attempts_7d) == (2, 4)
    assert (history.number_attempts_today, history.number_attempts_7d) == (3, 5)
    assert history.last_contact_at == now - timedelta(hours=1)
    assert history.last_disposition == "busy"
    assert history.last_disposition_at == now - timedelta(hours=3) + timedelta(minutes=2)
    assert history.last_abandoned_at == now - timedelta(days=1)
    assert history.consecutive_failed_attempts == 2  # busy, no_answer; then a callback request
    # no calls and no number: nothing counted, not every number-less call
    assert (empty.attempts_today, empty.attempts_7d, empty.number_attempts_7d) == (0, 0, 0)
    assert (empty.last_contact_at, empty.last_disposition) == (None, None)
    assert empty.consecutive_failed_attempts == 0


async def test_refresh_task_writes_only_what_changed(
    activities: OutreachActivities, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """One local activity per change: it assesses, compares with what the task last said,
    and writes (publish or withdraw) only when that moved."""
    user_id = await add_claimant(replica, signed=False, pending=1)
    facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))
    now = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    env = ActivityEnvironment()
    request = RefreshTask(user_id, f"outreach-{user_id}", facts, now, version=10)

    first = await env.run(activities.refresh_task, request)
    assert first.wrote and first.written is not None
    assert (first.written.queue, first.written.people_only) == ("unsigned", False)
    row = await _task(dialler_db, user_id)
    assert (row.version, row.status, row.route_to_people_only) == (10, "ready", False)

    same = await env.run(
        activities.refresh_task, replace(request, version=11, written=first.written)
    )
    assert not same.wrote and same.written == first.written
    assert (await _task(dialler_db, user_id)).version == 10

    vulnerable = replace(facts, is_vulnerable=True)
    flipped = await env.run(
        activities.refresh_task,
        replace(request, facts=vulnerable, version=12, written=first.written),
    )
    assert flipped.wrote and flipped.assessment.people_only
    row = await _task(dialler_db, user_id)
    assert (row.version, row.route_to_people_only) == (12, True)

    # signed and nothing pending: done. Mid-call the claim keeps the task; otherwise withdrawn.
    done = replace(vulnerable, signed=True, claims=[])
    claim = Claim(
        agent_id=7, claimed_at=now, lease_expires_at=now + timedelta(minutes=5), task_version=12
    )
    kept = await env.run(
        activities.refresh_task,
        replace(request, facts=done, version=13, claim=claim, written=flipped.written),
    )
    assert not kept.wrote and kept.assessment.stage is Stage.DONE
    assert (await _task(dialler_db, user_id)).status == "ready"
    withdrawn = await env.run(
        activities.refresh_task, replace(request, facts=done, version=14, written=flipped.written)
    )
    assert withdrawn.wrote and withdrawn.written is not None and withdrawn.written.queue is None
    row = await _task(dialler_db, user_id)
    assert (row.version, row.status) == (14, "withdrawn")


async def test_without_pre_ping_a_dropped_connection_fails_one_attempt_only(
    settings: Settings, migrated_pg: str, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """The worker's engine does not ping on checkout (activities retry instead): after the
    database drops its connections, one attempt fails and the next gets a new connection."""
    engine = dialler_engine(
        settings.model_copy(update={"database_url": migrated_pg}), pre_ping=False
    )
    activities = OutreachActivities(engine, replica, load_rules_file(settings.rules_file))
    user_id = await add_claimant(replica, signed=False, pending=1)
    facts = await ActivityEnvironment().run(activities.load_facts, LoadFactsRequest(user_id))
    request = RefreshTask(user_id, f"outreach-{user_id}", facts, datetime.now(UTC), version=1)
    env = ActivityEnvironment()
    try:
        assert (await env.run(activities.refresh_task, request)).wrote
        async with engine.connect() as conn:  # the pool's one connection
            pid = await conn.scalar(text("select pg_backend_pid()"))
        async with dialler_db.begin() as conn:  # as a database restart would
            assert await conn.scalar(text("select pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError):
            await env.run(activities.refresh_task, replace(request, version=2))
        assert (await env.run(activities.refresh_task, replace(request, version=3))).wrote
    finally:
        await engine.dispose()
