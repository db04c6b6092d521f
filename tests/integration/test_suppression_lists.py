"""Imported suppression lists against the real PostgreSQL and MariaDB (the workflows are a
recording stand-in for the outreach client here; tests/workflows/test_suppression_lists.py
runs the real ones): idempotent imports, bad lines listed with the rest imported, the
removal's table is append-only and every removal audited, and an imported address stops
magic-link emails."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import AnyHttpUrl
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.messaging import MessagingActivities
from adapters.messaging import OutboxEmail, SimulatedSms
from adapters.suppressions import suppressed_users, suppression_status
from config.settings import Settings
from domain.suppressions import LINE_MAX_BYTES
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.enums import LinkChannel
from schemas.messaging import CreateMagicLink
from schemas.outreach import ChangeEvent, ChangeKind
from services.suppression_lists import (
    RemovalRefused,
    SuppressionLists,
    physical_lines,
)
from tests.factories import add_claimant
from workflows.outreach_client import OutreachClient, OutreachUnavailable


class RecordingOutreach(OutreachClient):
    """Records what would be signalled; `running` says which claimants have a run going."""

    def __init__(self, running: set[int] | None = None, away: bool = False) -> None:
        super().__init__(self._no_client, "unused")
        self.delivered: list[ChangeEvent] = []
        self.nudged: list[ChangeEvent] = []
        self.running = running or set()
        self.away = away

    async def _no_client(self) -> Any:
        raise AssertionError("no Temporal here")

    async def deliver(self, event: ChangeEvent) -> None:
        if self.away:
            raise OutreachUnavailable("The outreach service is unavailable (UNAVAILABLE).")
        self.delivered.append(event)

    async def nudge(self, event: ChangeEvent) -> bool:
        if self.away:
            raise OutreachUnavailable("The outreach service is unavailable (UNAVAILABLE).")
        self.nudged.append(event)
        return event.user_id in self.running


def _number() -> tuple[str, str]:
    """A fresh number, as E.164 and as a national spelling."""
    digits = f"{uuid.uuid4().int % 1_000_000:06d}"
    return f"+4477009{digits[:5]}", f"077009{digits[:5]}"


async def _set_email(replica: AsyncEngine, user_id: int, email: str) -> None:
    async with replica.begin() as conn:
        await conn.execute(update(rp.users).where(rp.users.c.id == user_id).values(email=email))


def _lines(content: bytes) -> list[bytes]:
    return list(physical_lines(io.BytesIO(content)))


async def _count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_import_is_idempotent_lists_bad_lines_and_refreshes_the_claimants(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    e164, national = _number()
    # the replica spells the claimant's number nationally: matched all the same
    by_number = await add_claimant(replica, pending=1, phone=national)
    by_email = await add_claimant(replica, pending=1)
    address = f"Mixed.Case.{by_email}@Example.com"
    await _set_email(replica, by_email, address)
    bystander = await add_claimant(replica, pending=1)
    outreach = RecordingOutreach(running={by_number})
    lists = SuppressionLists(dialler_db, replica, outreach)
    content = (
        "number,email,reason\n"
        f"{e164},,complaint\n"
        f",{address.upper()},asked by email\n"
        "0770,,typo\n"  # line 4: too short to be a number
        f'"{national},,unclosed\n'  # line 5
        f"{national},,the same number again\n"  # line 6: nothing new
    ).encode()

    first = await lists.import_lines(_lines(content), source="import:test.csv", by="tester")

    assert (first.lines, first.added, first.already) == (5, 2, 1)
    assert [(r.line, r.error) for r in first.rejected] == [
        (4, "line 4: number is not a possible phone number"),
        (5, "line 5: malformed CSV (an unclosed quote?)"),
    ]
    async with dialler_db.connect() as conn:
        assert (await suppression_status(conn, by_number, national)).reasons == {"list"}
        assert (await suppression_status(conn, by_email, None, address)).reasons == {"list"}
        assert (await suppression_status(conn, bystander, None, "t@example.com")).reasons == set()
        assert await suppressed_users(
            conn, {by_email: None, bystander: None}, {by_email: address}
        ) == {by_email}
        audit = (
            await conn.execute(select(db.audit_log).where(db.audit_log.c.id == first.audit_id))
        ).one()
    assert (audit.actor_type, audit.actor_id, audit.action) == (
        "operator", "tester", "suppressions_imported",
    )  # fmt: skip
    assert audit.detail["rejected_lines"] == [4, 5]
    assert e164 not in str(audit.detail) and address.lower() not in str(audit.detail)
    # the claimants are told (running workflows only: a REFRESH, the rows are written)
    assert {e.user_id for e in outreach.nudged} == {by_number, by_email}
    assert all(e.kind is ChangeKind.REFRESH for e in outreach.nudged)
    assert (first.telling.claimants, first.telling.running) == (2, 1)
    assert outreach.delivered == []

    again = await lists.import_lines(_lines(content), source="import:test.csv", by="tester")
    assert (again.added, again.already, len(again.rejected)) == (0, 3, 2)
    count = await _count(dialler_db, db.suppressions, db.suppressions.c.source == "import:test.csv")
    assert count == 2
    # told again with the same event ids: a workflow that heard it ignores the copy
    assert sorted(e.event_id for e in outreach.nudged[2:]) == sorted(
        e.event_id for e in outreach.nudged[:2]
    )


async def test_a_removal_is_dated_audited_append_only_and_frees_the_claimant(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    e164, _ = _number()
    user_id = await add_claimant(replica, pending=1, phone=e164)
    outreach = RecordingOutreach()
    lists = SuppressionLists(dialler_db, replica, outreach)
    report = await lists.import_lines(
        _lines(f"reason,number\nlisted,{e164}\n".encode()), source="import:r.csv", by="ops"
    )
    async with dialler_db.connect() as conn:
        [suppression_id] = (
            await conn.execute(
                select(db.suppressions.c.id).where(db.suppressions.c.phone_number == e164)
            )
        ).scalars()
    assert report.added == 1

    with pytest.raises(RemovalRefused, match="needs a reason"):
        await lists.remove(suppression_id, reason=" ", by="ops")
    with pytest.raises(RemovalRefused, match="no such suppression"):
        await lists.remove(10**12, reason="x", by="ops")
    removed = await lists.remove(suppression_id, reason="listed in error", by="Dana Ops")
    with pytest.raises(RemovalRefused, match="already removed"):
        await lists.remove(suppression_id, reason="again", by="ops")

    async with dialler_db.connect() as conn:
        assert not (await suppression_status(conn, user_id, e164)).suppressed
        audit = (
            await conn.execute(select(db.audit_log).where(db.audit_log.c.id == removed.audit_id))
        ).one()
    assert (audit.action, audit.actor_id, audit.subject_id) == (
        "suppression_removed", "Dana Ops", str(suppression_id),
    )  # fmt: skip
    assert audit.detail["reason"] == "listed in error"
    # a removal starts the workflow again (signal-with-start), by its own event id
    assert [(e.user_id, e.kind, e.event_id) for e in outreach.delivered] == [
        (user_id, ChangeKind.REFRESH, f"suppression-removal:{removed.removal_id}")
    ]
    # the removals are append-only, like the suppressions themselves
    for statement in (
        "UPDATE suppression_removals SET reason = 'edited'",
        "DELETE FROM suppression_removals",
        "TRUNCATE suppression_removals",
        "DELETE FROM suppressions",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with dialler_db.begin() as conn:
                await conn.execute(text(statement))
    # one removal per suppression, even if two race past the check
    with pytest.raises(IntegrityError):
        async with dialler_db.begin() as conn:
            await conn.execute(
                insert(db.suppression_removals).values(
                    suppression_id=suppression_id, effective_at=func.now(), removed_by="x",
                    reason="y",
                )
            )  # fmt: skip


async def test_only_imported_suppressions_can_be_removed(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    async with dialler_db.begin() as conn:
        dnc = await conn.scalar(
            insert(db.suppressions)
            .values(user_id=4242, reason="do_not_call", source="test")
            .returning(db.suppressions.c.id)
        )
    lists = SuppressionLists(dialler_db, replica, RecordingOutreach())
    with pytest.raises(RemovalRefused, match="only imported suppressions"):
        await lists.remove(int(dnc or 0), reason="x", by="ops")


async def test_temporal_away_keeps_the_rows_and_counts_who_was_not_told(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    e164, _ = _number()
    await add_claimant(replica, pending=1, phone=e164)
    lists = SuppressionLists(dialler_db, replica, RecordingOutreach(away=True))
    report = await lists.import_lines(
        _lines(f"number,reason\n{e164},x\n".encode()), source="import:away.csv", by="ops"
    )
    assert report.added == 1
    assert (report.telling.claimants, report.telling.not_told) == (1, 1)
    assert "unavailable" in str(report.telling.error)


def test_an_over_long_line_is_read_as_one_line_without_holding_it() -> None:
    content = b"number,reason\n" + b"1" * (LINE_MAX_BYTES * 5) + b",x\n07700900123,ok\n"
    lines = _lines(content)
    assert len(lines) == 3
    assert len(lines[1]) == LINE_MAX_BYTES + 1
    assert lines[2] == b"07700900123,ok\n"


async def test_an_imported_address_stops_magic_link_emails(
    dialler_db: AsyncEngine, replica: AsyncEngine, settings: Settings, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    messaging = settings.model_copy(
        update={"public_base_url": AnyHttpUrl("https://dialler.example.test"),
                "email_outbox_dir": outbox},
    )  # fmt: skip
    acts = MessagingActivities(
        dialler_db, SimulatedSms(), OutboxEmail(outbox, messaging.email_from), messaging, replica
    )
    user_id = await add_claimant(replica, pending=1)
    other_id = await add_claimant(replica, pending=1)
    address = f"Listed.{user_id}@Example.com"  # as the main app spells it
    await _set_email(replica, user_id, address)
    lists = SuppressionLists(dialler_db, replica, RecordingOutreach())
    await lists.import_lines(
        _lines(f"email,reason\n{address.lower()},unsubscribed\n".encode()),
        source="import:emails.csv",
        by="ops",
    )
    # the workflow passes ids only: the address is read from the replica at send time
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            acts.create_magic_link, CreateMagicLink(user_id, LinkChannel.EMAIL, "signature")
        )
    assert raised.value.type == "Suppressed" and raised.value.non_retryable
    # an address given by the caller is checked the same way, in any case
    with pytest.raises(ApplicationError, match="opted out"):
        await ActivityEnvironment().run(
            acts.create_magic_link,
            CreateMagicLink(other_id, LinkChannel.EMAIL, "signature", to_email=address.upper()),
        )
    # ... and a listed address stops the claimant's links by SMS too
    with pytest.raises(ApplicationError, match="opted out"):
        await ActivityEnvironment().run(
            acts.create_magic_link, CreateMagicLink(user_id, LinkChannel.SMS, "signature")
        )
    assert not outbox.exists()
    # a claimant whose address is not listed still gets theirs
    await ActivityEnvironment().run(
        acts.create_magic_link, CreateMagicLink(other_id, LinkChannel.EMAIL, "signature")
    )
    assert len(list(outbox.glob("*.eml"))) == 1
