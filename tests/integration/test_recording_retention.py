"""Recording retention (issue 11): the daily clean-up's activity deletes exactly the
recordings and transcripts of calls started before the retention cut-off, wherever they are
kept (a local file, an S3 object on moto, a recording at a fake Twilio through the real
client), marks each call and audits each one; a provider failure leaves that one for the
next run without stopping the others; a rerun does nothing more."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.maintenance import MaintenanceActivities
from adapters.recording_store import S3Recordings, local_key_for, write_tone
from config.settings import Settings
from domain.recordings import months_before, retention_cutoff
from domain.rules import ComplianceRules, DiallerRules
from schemas import dialler_db as db
from schemas.recordings import RecordingRetentionRequest
from tests.factories import next_id
from tests.recording_fakes import (
    FakeTwilioRecordings,
    fake_twilio,  # noqa: F401  (fixture)
    new_bucket,
    recording_settings,
    s3_endpoint,  # noqa: F401  (fixture)
    s3_keys,
)

# A fixed clock long ago, so no other test's calls are ever past this run's cut-off.
NOW = datetime(2020, 6, 15, 12, 0, tzinfo=UTC)
MONTHS = 18
CUTOFF = datetime(2018, 12, 15, 12, 0, tzinfo=UTC)


def test_the_cut_off_is_whole_calendar_months_back() -> None:
    assert retention_cutoff(NOW, MONTHS) == CUTOFF
    assert months_before(datetime(2021, 3, 31, 9, tzinfo=UTC), 1) == datetime(
        2021, 2, 28, 9, tzinfo=UTC
    )
    assert months_before(datetime(2024, 3, 31, tzinfo=UTC), 13) == datetime(2023, 2, 28, tzinfo=UTC)
    assert months_before(datetime(2024, 1, 15, tzinfo=UTC), 24) == datetime(2022, 1, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        months_before(NOW, -1)


@dataclass
class Row:
    name: str
    started_at: datetime
    store: str | None
    key: str | None
    transcript: str | None = None
    call_id: int = 0


async def _insert(engine: AsyncEngine, rows: list[Row]) -> None:
    user_id = next_id()
    async with engine.begin() as conn:
        for row in rows:
            sid = ("RE" + uuid.uuid4().hex) if row.store else None
            row.call_id = int(
                await conn.scalar(
                    insert(db.calls)
                    .values(
                        user_id=user_id,
                        provider="twilio" if row.store == "twilio" else "simulated",
                        to_number="+447700900123",
                        status="completed",
                        started_at=row.started_at,
                        recording_sid=row.key if row.store == "twilio" else sid,
                        recording_url="https://api.twilio.com/recording" if row.store else None,
                        recording_duration_seconds=2 if row.store else None,
                        recording_store=row.store,
                        recording_key=row.key,
                        transcript=row.transcript,
                    )
                    .returning(db.calls.c.id)
                )
                or 0
            )


async def _state(engine: AsyncEngine, rows: list[Row]) -> dict[str, tuple[bool, bool]]:
    """name -> (recording deleted, transcript kept)."""
    ids = {row.call_id: row.name for row in rows}
    async with engine.connect() as conn:
        found = await conn.execute(
            select(db.calls.c.id, db.calls.c.recording_deleted_at, db.calls.c.transcript).where(
                db.calls.c.id.in_(ids)
            )
        )
        return {ids[r.id]: (r.recording_deleted_at is not None, r.transcript is not None)
                for r in found}  # fmt: skip


async def _audited(engine: AsyncEngine, rows: list[Row]) -> dict[str, int]:
    """name -> how many `recording_deleted` audit rows name the call."""
    names = {str(row.call_id): row.name for row in rows}
    async with engine.connect() as conn:
        found = await conn.execute(
            select(db.audit_log).where(
                db.audit_log.c.action == "recording_deleted",
                db.audit_log.c.subject_type == "call",
                db.audit_log.c.subject_id.in_(names),
            )
        )
        counts: dict[str, int] = {}
        for audit in found:
            assert audit.actor_type == "system" and audit.detail["retention_months"] == MONTHS
            counts[names[audit.subject_id]] = counts.get(names[audit.subject_id], 0) + 1
    return counts


def _activities(
    settings: Settings, dialler: AsyncEngine, replica: AsyncEngine
) -> MaintenanceActivities:
    rules = DiallerRules(compliance=ComplianceRules(recording_retention_months=MONTHS))
    return MaintenanceActivities(settings, dialler, replica, cast(Client, None), "unused", rules)


async def _run(activities: MaintenanceActivities) -> Any:
    return await ActivityEnvironment().run(
        activities.expire_recordings, RecordingRetentionRequest(NOW)
    )


async def test_retention_deletes_exactly_what_is_past_the_window_and_audits_each(
    dialler_db: AsyncEngine,
    replica: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    fake_twilio: FakeTwilioRecordings,  # noqa: F811
    s3_endpoint: str,  # noqa: F811
) -> None:
    recordings_dir = tmp_path / "recordings"
    bucket = await new_bucket(s3_endpoint)
    config = recording_settings(
        settings, recordings_dir=recordings_dir, twilio=fake_twilio, s3_endpoint=s3_endpoint
    )
    second = timedelta(seconds=1)
    old_sid, failing_sid, kept_sid = ("RE" + uuid.uuid4().hex for _ in range(3))
    local_old, local_edge, local_kept = (local_key_for("RE" + uuid.uuid4().hex) for _ in range(3))
    rows = [
        # past the window: deleted
        Row("local, a second before the cut-off", CUTOFF - second, "local", local_old),
        Row("s3, years before", CUTOFF - timedelta(days=800), "s3", f"{bucket}/old.wav",
            transcript="Hello, this is Resolve My Claim"),
        Row("twilio, a month before", CUTOFF - timedelta(days=31), "twilio", old_sid),
        Row("transcript only, a day before", CUTOFF - timedelta(days=1), None, None,
            transcript="AI call transcript"),
        Row("twilio, failing", CUTOFF - timedelta(days=2), "twilio", failing_sid),
        # within it: kept
        Row("local, at the cut-off", CUTOFF, "local", local_edge, transcript="kept"),
        Row("s3, a second after", CUTOFF + second, "s3", f"{bucket}/edge.wav"),
        Row("twilio, last week", NOW - timedelta(days=7), "twilio", kept_sid),
        Row("local, after", CUTOFF + timedelta(days=1), "local", local_kept),
    ]  # fmt: skip
    for key in (local_old, local_edge, local_kept):
        write_tone(recordings_dir / key, 1)
    s3 = S3Recordings(config)
    for name in ("old.wav", "edge.wav"):
        await s3.put(f"{bucket}/{name}", b"RIFF....WAVE")
    fake_twilio.media = {old_sid: b"old", failing_sid: b"failing", kept_sid: b"kept"}
    fake_twilio.failing = {failing_sid}
    await _insert(dialler_db, rows)
    activities = _activities(config, dialler_db, replica)

    result = await _run(activities)

    assert (result.deleted, result.failed, result.cutoff) == (4, 1, CUTOFF)
    past = {r.name for r in rows[:4]}
    state = await _state(dialler_db, rows)
    assert {name for name, (deleted, _) in state.items() if deleted} == past
    assert not any(kept for name, (_, kept) in state.items() if name in past)  # transcripts gone
    assert state["local, at the cut-off"] == (False, True)  # the boundary is kept, whole
    assert await _audited(dialler_db, rows) == dict.fromkeys(past, 1)
    # ...and gone from where they were kept, the rest untouched
    assert not (recordings_dir / local_old).exists()
    assert (recordings_dir / local_edge).exists() and (recordings_dir / local_kept).exists()
    assert await s3_keys(s3_endpoint, bucket) == {"edge.wav"}
    assert fake_twilio.deleted == [old_sid]
    assert set(fake_twilio.media) == {failing_sid, kept_sid}

    # the provider is back the next day: the one that failed goes, nothing else happens
    fake_twilio.failing = set()
    again = await _run(activities)
    assert (again.deleted, again.failed) == (1, 0)
    assert fake_twilio.deleted == [old_sid, failing_sid]
    assert await _audited(dialler_db, rows) == dict.fromkeys(past | {"twilio, failing"}, 1)

    # and a third run finds nothing left to do
    third = await _run(activities)
    assert (third.deleted, third.failed) == (0, 0)
    assert await _audited(dialler_db, rows) == dict.fromkeys(past | {"twilio, failing"}, 1)
    state = await _state(dialler_db, rows)
    assert {name for name, (deleted, _) in state.items() if deleted} == past | {"twilio, failing"}


async def test_a_recording_already_gone_from_its_store_is_still_marked_and_audited(
    dialler_db: AsyncEngine,
    replica: AsyncEngine,
    settings: Settings,
    tmp_path: Path,
    fake_twilio: FakeTwilioRecordings,  # noqa: F811
) -> None:
    """A run that deleted at the provider but stopped before marking the row (a crash) is
    finished by the next: Twilio's 404 and a missing file count as deleted."""
    config = recording_settings(settings, recordings_dir=tmp_path, twilio=fake_twilio)
    rows = [
        Row("twilio, gone", CUTOFF - timedelta(days=3), "twilio", f"RE{uuid.uuid4().hex}"),
        Row("local, file gone", CUTOFF - timedelta(days=3), "local", local_key_for("REgone")),
    ]  # fmt: skip
    await _insert(dialler_db, rows)
    result = await _run(_activities(config, dialler_db, replica))
    assert (result.deleted, result.failed) == (2, 0)
    assert await _audited(dialler_db, rows) == dict.fromkeys((r.name for r in rows), 1)


async def test_an_unreachable_bucket_fails_that_recording_only(
    dialler_db: AsyncEngine, replica: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    config = recording_settings(settings, recordings_dir=tmp_path)
    config = config.model_copy(
        update={"aws_endpoint_url": "http://127.0.0.1:9", "aws_access_key_id": "x"}
    )
    write_tone(tmp_path / local_key_for("RElocal"), 1)
    rows = [
        Row("s3, unreachable", CUTOFF - timedelta(days=3), "s3", "some-bucket/a.wav"),
        Row("local", CUTOFF - timedelta(days=3), "local", local_key_for("RElocal")),
    ]
    await _insert(dialler_db, rows)
    try:
        result = await _run(_activities(config, dialler_db, replica))
        assert (result.deleted, result.failed) == (1, 1)
        state = await _state(dialler_db, rows)
        assert state["s3, unreachable"][0] is False and state["local"][0] is True
    finally:  # the undeletable row would fail the other tests' counts
        async with dialler_db.begin() as conn:
            await conn.execute(delete(db.calls).where(db.calls.c.id.in_([r.call_id for r in rows])))
