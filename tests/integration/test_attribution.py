"""Conversions seen by the CDC consumer (`workers.cdc`) are attributed and kept, against the
real PostgreSQL and MariaDB: the last contact within the window (not one outside it, not
one after), the link used; one attribution call per source item; a redelivered item writes
nothing new; the database away is waited out; any other failure makes a dead letter whose
replay attributes again; and the daily clean-up purges token hashes but keeps the rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.maintenance import MaintenanceActivities
from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_metrics import CdcMetrics
from adapters.cdc_source import SourceItem
from adapters.cdc_store import CdcStore
from adapters.conversions import ConversionRecorder
from config.settings import Settings
from domain.attribution import Conversion
from domain.rules import DiallerRules
from schemas import dialler_db as db
from schemas.cdc import CleanupRequest, Operation, RowChange
from schemas.outreach import ChangeEvent, ChangeKind
from services.dead_letters import replay
from tests.factories import add_claimant, next_id
from workers.cdc import CdcConsumer

WINDOW = timedelta(days=14)
T = datetime(2031, 5, 10, 12, 0, tzinfo=UTC)  # the conversions' commit time


class ListSource:
    """A CDC source that yields the given items, then waits to be stopped."""

    name = "binlog"
    ordered_acks = True

    def __init__(self, items: list[SourceItem]) -> None:
        self._items = items

    async def items(self) -> AsyncIterator[SourceItem]:
        for item in self._items:
            yield item
        await asyncio.Event().wait()

    def position(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


class Acks:
    """Items committed; `all_in` is set once `expected` are."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.all_in = asyncio.Event()

    def item(self, changes: list[RowChange]) -> SourceItem:
        self.expected += 1

        async def ack(events: int) -> None:
            self.count += 1
            if self.count >= self.expected:
                self.all_in.set()

        return SourceItem(changes=changes, ack=ack)


async def _consume(
    dialler: AsyncEngine,
    replica: AsyncEngine,
    items: list[SourceItem],
    acks: Acks,
    attribute: Any,
) -> list[ChangeEvent]:
    delivered: list[ChangeEvent] = []

    async def deliver(event: ChangeEvent) -> None:
        delivered.append(event)

    consumer = CdcConsumer(
        ListSource(items),
        deliver=deliver,
        store=CdcStore(dialler),
        lookups=ReplicaLookups(replica),
        metrics=CdcMetrics("binlog"),
        lanes=2,
        attribute=attribute,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    async with asyncio.timeout(30):
        await acks.all_in.wait()
    stop.set()
    await task
    return delivered


def _signature(user_id: int, position: str) -> RowChange:
    return RowChange(
        source="binlog",
        table="users",
        operation=Operation.UPDATE,
        before={"id": user_id, "current_signature_file_id": None},
        after={"id": user_id, "current_signature_file_id": 55},
        committed_at=T,
        position=position,
    )


def _requirement_received(claim_id: int, requirement_id: int, position: str) -> RowChange:
    row = {"id": requirement_id, "claim_id": claim_id, "type": "bank_statements"}
    return RowChange(
        source="binlog",
        table="claim_requirements",
        operation=Operation.UPDATE,
        before=row | {"status": "PENDING"},
        after=row | {"status": "RECEIVED"},
        committed_at=T,
        position=position,
    )


async def _agent(conn: Any, name: str) -> int:
    email = f"attribution-{name}-{next_id()}@example.com"
    agent_id = await conn.scalar(
        insert(db.agents)
        .values(email=email, display_name=name, role="agent")
        .returning(db.agents.c.id)
    )
    return int(agent_id)


async def _call(conn: Any, user_id: int, agent_id: int, started: datetime) -> int:
    call_id = await conn.scalar(
        insert(db.calls)
        .values(
            user_id=user_id,
            agent_id=agent_id,
            queue="unsigned",
            provider="twilio",
            to_number="+447700900002",
            started_at=started,
        )
        .returning(db.calls.c.id)
    )
    return int(call_id)


async def _text(conn: Any, user_id: int, agent_id: int, at: datetime, inbound: bool = False) -> int:
    message_id = await conn.scalar(
        insert(db.sms_messages)
        .values(
            user_id=user_id,
            direction="inbound" if inbound else "outbound",
            from_number="+447700900003",
            to_number="+447700900002",
            body="hello",
            status="delivered",
            agent_id=agent_id,
            created_at=at,
        )
        .returning(db.sms_messages.c.id)
    )
    return int(message_id)


async def _link(conn: Any, user_id: int, created: datetime, used: datetime | None) -> int:
    link_id = await conn.scalar(
        insert(db.magic_links)
        .values(
            user_id=user_id,
            token_hash=f"attribution-{next_id()}",
            channel="sms",
            purpose="signature",
            created_at=created,
            expires_at=created + timedelta(hours=2),
            used_at=used,
        )
        .returning(db.magic_links.c.id)
    )
    return int(link_id)


async def _conversions(engine: AsyncEngine, event_ids: Sequence[str]) -> dict[str, Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(db.conversions).where(db.conversions.c.event_id.in_(list(event_ids)))
        )
        return {r.event_id: r for r in rows}


class Counting:
    """The recorder, counting its calls (one per item with conversions)."""

    def __init__(self, engine: AsyncEngine, fail_first: BaseException | None = None) -> None:
        self.recorder = ConversionRecorder(engine, WINDOW)
        self.batches: list[int] = []
        self.fail_first = fail_first

    async def __call__(self, conversions: Sequence[Conversion]) -> int:
        self.batches.append(len(conversions))
        if self.fail_first is not None:
            error, self.fail_first = self.fail_first, None
            raise error
        return await self.recorder(conversions)


async def test_the_last_contact_in_the_window_and_the_link_used_are_credited_once(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    u1 = await add_claimant(replica)  # signs
    u2 = await add_claimant(replica, pending=1)  # sends a document
    u3 = await add_claimant(replica)  # signs with no contact in the window
    async with dialler_db.begin() as conn:
        alice, bob = await _agent(conn, "alice"), await _agent(conn, "bob")
        await _call(conn, u1, bob, T - timedelta(days=20))  # outside the window
        await _text(conn, u1, bob, T - timedelta(days=5))
        credited_call = await _call(conn, u1, alice, T - timedelta(days=2))
        await _text(conn, u1, bob, T - timedelta(days=1), inbound=True)  # not a contact by us
        await _call(conn, u1, bob, T + timedelta(hours=1))  # after the signature
        await _link(conn, u1, T - timedelta(days=21), T - timedelta(days=20))  # too old
        used = await _link(conn, u1, T - timedelta(days=1, hours=1), T - timedelta(days=1))
        await _link(conn, u1, T - timedelta(hours=3), None)  # opened perhaps, never used
        await _call(conn, u2, alice, T - timedelta(days=15))  # outside the window
        credited_text = await _text(conn, u2, bob, T - timedelta(days=10))
        await _call(conn, u3, alice, T - timedelta(days=14, seconds=1))  # just outside

    base = f"gtid-{next_id()}"
    changes = [
        _signature(u1, f"{base}:0"),
        _requirement_received(u2, u2 * 10, f"{base}:1"),
        _signature(u3, f"{base}:2"),
    ]
    acks, attribute = Acks(), Counting(dialler_db)
    # the same transaction twice: a redelivery after a restart before the commit
    delivered = await _consume(
        dialler_db, replica, [acks.item(changes), acks.item(list(changes))], acks, attribute
    )

    conversion_ids = [e.event_id for e in delivered if e.kind is not ChangeKind.REFRESH]
    assert len(conversion_ids) == 6 and len(set(conversion_ids)) == 3  # delivered twice
    assert attribute.batches == [3, 3]  # one call per item, all its conversions at once
    kept = await _conversions(dialler_db, conversion_ids)
    assert len(kept) == 3  # the redelivered item wrote nothing new...
    letters = await CdcStore(dialler_db).dead_letters(pending_only=False, limit=100_000)
    assert [letter for letter in letters if base in letter.raw_payload] == []  # ...quietly
    by_user = {row.user_id: row for row in kept.values()}

    signed = by_user[u1]
    assert (signed.kind, signed.contact_kind, signed.contact_ref) == (
        "signed",
        "call",
        str(credited_call),
    )
    assert (signed.agent_id, signed.queue, signed.link_id) == (alice, "unsigned", used)
    assert signed.occurred_at == T and signed.contact_at == T - timedelta(days=2)

    documents = by_user[u2]
    assert (documents.kind, documents.contact_kind) == ("documents", "sms")
    assert documents.contact_ref == str(credited_text) and documents.agent_id == bob
    assert (documents.claim_id, documents.requirement_id) == (u2, u2 * 10)
    assert documents.link_id is None and documents.queue is None

    nobody = by_user[u3]
    assert (nobody.contact_kind, nobody.contact_ref, nobody.agent_id) == (None, None, None)


async def test_the_database_away_is_waited_out(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    user_id = await add_claimant(replica)
    acks = Acks()
    away = OperationalError("INSERT", {}, ConnectionResetError("connection lost"))
    attribute = Counting(dialler_db, fail_first=away)
    change = _signature(user_id, f"gtid-{next_id()}:0")
    delivered = await _consume(dialler_db, replica, [acks.item([change])], acks, attribute)
    assert attribute.batches == [1, 1]  # tried again
    assert len(await _conversions(dialler_db, [delivered[0].event_id])) == 1


async def test_a_failed_attribution_is_a_dead_letter_whose_replay_attributes_it(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    user_id = await add_claimant(replica)
    position = f"gtid-{next_id()}:0"
    acks = Acks()
    attribute = Counting(dialler_db, fail_first=RuntimeError("bug in attribution"))
    delivered = await _consume(
        dialler_db, replica, [acks.item([_signature(user_id, position)])], acks, attribute
    )
    # the events still reach the workflow; nothing is kept yet; the change is a dead letter
    assert [e.kind for e in delivered] == [ChangeKind.SIGNATURE_ADDED]
    event_id = delivered[0].event_id
    assert await _conversions(dialler_db, [event_id]) == {}
    store = CdcStore(dialler_db)
    letters = [
        letter
        for letter in await store.dead_letters(pending_only=True, limit=100_000)
        if position in letter.raw_payload
    ]
    assert len(letters) == 1
    assert letters[0].reason == "attribution failed: RuntimeError: bug in attribution"

    signalled: list[ChangeEvent] = []

    async def deliver(event: ChangeEvent) -> None:
        signalled.append(event)

    outcomes = await replay(
        letters,
        store=store,
        lookups=ReplicaLookups(replica),
        deliver=deliver,
        attribute=ConversionRecorder(dialler_db, WINDOW),
    )
    assert outcomes[0].replayed
    assert list(await _conversions(dialler_db, [event_id])) == [event_id]


async def test_the_clean_up_purges_token_hashes_and_keeps_attribution_for_the_retention(
    dialler_db: AsyncEngine, replica: AsyncEngine, settings: Settings
) -> None:
    """Links made in 2020 and the daily clean-up run as if in 2020 and 2022: cut-offs that
    touch nothing the other tests write today."""
    user_id = next_id()
    created = datetime(2020, 1, 1, 9, tzinfo=UTC)
    async with dialler_db.begin() as conn:
        link_id = await _link(conn, user_id, created, created + timedelta(minutes=5))
        await conn.execute(
            insert(db.magic_link_events).values(link_id=link_id, event="used", at=created)
        )
        for n, at in enumerate([created + timedelta(days=1), datetime(2020, 6, 1, tzinfo=UTC)]):
            await conn.execute(
                insert(db.conversions).values(
                    event_id=f"cleanup-{user_id}-{n}",
                    subject_key=f"requirement:{user_id}{n}",
                    user_id=user_id,
                    kind="documents",
                    occurred_at=at,
                    link_id=link_id,
                )
            )
    activities = MaintenanceActivities(
        settings,
        dialler_db,
        replica,
        None,  # type: ignore[arg-type]  # the clean-up needs no Temporal client
        "unused",
        DiallerRules(),
    )

    async def state() -> tuple[Any, list[str], list[Any]]:
        async with dialler_db.connect() as conn:
            link = (
                await conn.execute(select(db.magic_links).where(db.magic_links.c.id == link_id))
            ).one_or_none()
            events = (
                await conn.scalars(
                    select(db.magic_link_events.c.event).where(
                        db.magic_link_events.c.link_id == link_id
                    )
                )
            ).all()
            kept = (
                await conn.execute(
                    select(db.conversions.c.occurred_at, db.conversions.c.link_id)
                    .where(db.conversions.c.user_id == user_id)
                    .order_by(db.conversions.c.occurred_at)
                )
            ).all()
        return link, list(events), list(kept)

    # 2020-03-01: the link expired two months ago: its secret goes, everything else stays
    result = await activities.cleanup(CleanupRequest(datetime(2020, 3, 1, tzinfo=UTC)))
    assert result.magic_link_secrets >= 1
    link, events, kept = await state()
    assert link is not None and link.token_hash is None and link.user_id == user_id
    assert link.used_at is not None
    assert events == ["used"]
    assert [row.link_id for row in kept] == [link_id, link_id]

    # 2022-03-01: 24 months (compliance.recording_retention_months) after 2020-03-01: the
    # link and its events go, with the conversion of January 2020; June's stays, its link
    # forgotten
    result = await activities.cleanup(CleanupRequest(datetime(2022, 3, 1, tzinfo=UTC)))
    assert result.magic_links >= 1 and result.conversions >= 1
    link, events, kept = await state()
    assert link is None and events == []
    assert kept == [(datetime(2020, 6, 1, tzinfo=UTC), None)]
