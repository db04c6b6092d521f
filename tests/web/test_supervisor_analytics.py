"""Supervisor analytics (/supervisor/analytics) on a FIXED data set: the service's figures
and every CSV equal the figures worked out by hand below; bad ranges re-render the form
(422), hostile input never reaches the database, agents are refused, and CSV cells cannot
run as formulas.

The range is Sat 30 and Sun 31 October 2021 (UK days): the clocks went back at 02:00 BST
on the Sunday, so the range is 49 hours, [2021-10-29 23:00Z, 2021-11-01 00:00Z), and
01:30 happened twice. Nothing else the tests write lands in it.

Claimants: U1 (Santander), U2 (Barclays), U3 (Santander and HSBC claims), U4 (not on the
replica). Agents: Alice, Bob, Dave (people), Robo (AI).

calls  agent  queue        user  started (UTC)    UK hour  what happened              reached  talk
c1     Alice  unsigned     U1    29th 23:30       00       human, bridged 120 s        yes      120
c2     Alice  unsigned     U1    30th 09:15       10       machine, voicemail_left     no       0
c3     Bob    outstanding  U2    30th 09:45       10       answered, bridged 60 s      yes      60
c4     Bob    outstanding  U2    31st 00:30       01 BST   not answered, no_answer     no       0
c5     Bob    outstanding  U2    31st 01:30       01 GMT   human, bridged 45 s         yes      45
c6     Alice  callback     U3    31st 14:00       14       by hand, magic_link_sent    yes      0
c7     Robo   unsigned     U4    31st 23:59:59    23       human, bridged 30 s, none   yes      30
(c8 Alice 29th 22:59:59 and c9 Bob 1st Nov 00:00 are outside)

states (UTC)   Alice: ready 29th 20:00 (before) | on_call 23:30 | wrap_up 23:32:30 | ready
               23:33 | paused 30th 09:00 | on_call 09:15 | wrap_up 09:16 | offline 09:17 |
               ready 31st 13:00 | offline 15:00
               -> ready 1800 + 34020 + 7200 = 43020, paused 900, on call 150 + 60 = 210,
                  wrap-up 30 + 60 = 90
               Bob: ready 30th 09:30 | on_call 09:45 | wrap_up 09:47 | ready 09:48 | paused
               31st 23:00 (open; ready again 1st Nov 08:00, outside)
               -> ready 900 + 133920 = 134820, paused 3600 (to the range's end), on call
                  120, wrap-up 60
               Dave: paused 29th 12:00, nothing since -> paused all 49 hours = 176400

links  agent   channel  user  from  events              (l5: Alice, sent before the range)
l1     Alice   sms      U1    c1    sent opened used
l2     Bob     email    U2    c3    sent opened
l3     (none)  sms      U2    -     sent
l4     Alice   sms      U3    c6    sent

conversions  user  kind       credited to           (v4: U2 signed at the range's end)
v1           U1    signed     c1 (Alice, unsigned)  l1
v2           U2    documents  c3 (Bob, outstanding) U2's Barclays claim
v3           U3    signed     nobody

sms    Alice outbound 30th 10:00 and 31st 14:10; an automatic text 30th 11:00; a reply
       30th 10:30 (Bob's outbound 1st Nov 01:00 is outside)
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters import agent_store, call_log, conversions, magic_links
from domain.analytics import WORKING_STATES, DateRange, last_days, time_in_states
from domain.attribution import UK, Attribution, Contact, Conversion
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.attribution import ContactKind, ConversionKind
from schemas.enums import AgentRole, AgentState
from services.analytics import LENDERS_UNAVAILABLE, Analytics, analytics, lenders
from tests.conftest import free_port
from tests.factories import add_claimant, ensure_lender, next_id
from tests.web.conftest import make_staff, sign_in
from web.services import EXTENSION_KEY

RANGE = DateRange(date(2021, 10, 30), date(2021, 10, 31))
QUERY = "from=2021-10-30&to=2021-10-31"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
READY, PAUSED = AgentState.READY, AgentState.PAUSED
HTMX = {"HX-Request": "true"}
_serial = itertools.count(1)


def utc(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 10) -> datetime:
    return datetime(2021, month, day, hour, minute, second, tzinfo=UTC)


@dataclass
class Data:
    users: dict[str, int]
    agents: dict[str, int]

    def label(self, name: str) -> str:
        return f"{name} (#{self.agents[name]})"


async def _agent(conn: Any, name: str, *, is_ai: bool = False) -> int:
    agent_id = await conn.scalar(
        insert(db.agents)
        .values(
            email=f"analytics-{name.lower()}-{next_id()}@example.com",
            display_name=name,
            role="agent",
            queue="unsigned",
            is_ai=is_ai,
        )
        .returning(db.agents.c.id)
    )
    return int(agent_id)


async def _call(
    conn: Any, user_id: int, agent_id: int, queue: str, started: datetime, **values: Any
) -> int:
    values.setdefault("provider", "twilio")
    values.setdefault("status", "completed")
    call_id = await conn.scalar(
        insert(db.calls)
        .values(
            user_id=user_id,
            agent_id=agent_id,
            queue=queue,
            to_number="+447700900002",
            started_at=started,
            **values,
        )
        .returning(db.calls.c.id)
    )
    return int(call_id)


async def _states(conn: Any, agent_id: int, *changes: tuple[datetime, str]) -> None:
    await conn.execute(
        insert(db.agent_state_changes),
        [{"agent_id": agent_id, "state": state, "at": at} for at, state in changes],
    )


async def _link(
    conn: Any,
    user_id: int,
    agent_id: int | None,
    channel: str,
    created: datetime,
    source_call: int | None,
    events: list[str],
) -> int:
    link_id = await conn.scalar(
        insert(db.magic_links)
        .values(
            user_id=user_id,
            token_hash=f"analytics-{next(_serial)}-{next_id()}",
            channel=channel,
            purpose="signature",
            created_by=agent_id,
            created_at=created,
            expires_at=created + timedelta(hours=1),
            source_kind=ContactKind.CALL.value if source_call else None,
            source_ref=str(source_call) if source_call else None,
        )
        .returning(db.magic_links.c.id)
    )
    for n, event in enumerate(events):
        await conn.execute(
            insert(db.magic_link_events).values(
                link_id=link_id, event=event, at=created + timedelta(minutes=n)
            )
        )
    return int(link_id)


async def _sms(conn: Any, user_id: int, agent_id: int | None, direction: str, at: datetime) -> None:
    await conn.execute(
        insert(db.sms_messages).values(
            user_id=user_id,
            direction=direction,
            from_number="+447700900003",
            to_number="+447700900004",
            body="hello",
            status="delivered" if direction == "outbound" else "received",
            agent_id=agent_id,
            created_at=at,
        )
    )


@pytest.fixture(scope="module")
async def data(dialler_db: AsyncEngine, replica: AsyncEngine) -> AsyncIterator[Data]:
    u1 = await add_claimant(replica, lender="Santander")
    u2 = await add_claimant(replica, lender="Barclays")
    u3 = await add_claimant(replica, lender="Santander")
    async with replica.begin() as conn:
        await conn.execute(
            insert(rp.claims).values(
                id=next_id(),
                user_id=u3,
                lender_id=await ensure_lender(replica, "HSBC"),
                status="in_progress",
                estimated_value=1000,
                created_at=datetime(2021, 1, 5),
            )
        )
    u4 = 9_100_000_000 + next_id()  # not on the replica
    async with dialler_db.begin() as conn:
        alice = await _agent(conn, "Alice")
        bob = await _agent(conn, "Bob")
        dave = await _agent(conn, "Dave")
        robo = await _agent(conn, "Robo", is_ai=True)
        human = {"answered_by": "human"}
        c1 = await _call(conn, u1, alice, "unsigned", utc(29, 23, 30), answered_at=utc(29, 23, 30),
                         agent_seconds=120, disposition="promised_to_sign", **human)  # fmt: skip
        await _call(conn, u1, alice, "unsigned", utc(30, 9, 15), answered_at=utc(30, 9, 15),
                    answered_by="machine_start", agent_seconds=0,
                    disposition="voicemail_left")  # fmt: skip
        c3 = await _call(conn, u2, bob, "outstanding", utc(30, 9, 45),
                         answered_at=utc(30, 9, 46), agent_seconds=60,
                         disposition="promised_documents")  # fmt: skip
        await _call(conn, u2, bob, "outstanding", utc(31, 0, 30), status="no-answer",
                    disposition="no_answer")  # fmt: skip
        await _call(conn, u2, bob, "outstanding", utc(31, 1, 30), answered_at=utc(31, 1, 30),
                    agent_seconds=45, disposition="callback_requested", **human)  # fmt: skip
        c6 = await _call(conn, u3, alice, "callback", utc(31, 14), provider="manual",
                         disposition="magic_link_sent")  # fmt: skip
        await _call(conn, u4, robo, "unsigned", utc(31, 23, 59, 59),
                    answered_at=utc(31, 23, 59, 59), agent_seconds=30, **human)  # fmt: skip
        # outside the range, on both sides
        await _call(conn, u1, alice, "unsigned", utc(29, 22, 59, 59), answered_at=utc(29, 23),
                    agent_seconds=999, disposition="completed", **human)  # fmt: skip
        november = utc(1, 0, month=11)
        await _call(conn, u2, bob, "outstanding", november, answered_at=november,
                    agent_seconds=999, disposition="completed", **human)  # fmt: skip

        await _states(
            conn, alice,
            (utc(29, 20), "ready"), (utc(29, 23, 30), "on_call"), (utc(29, 23, 32, 30), "wrap_up"),
            (utc(29, 23, 33), "ready"), (utc(30, 9), "paused"), (utc(30, 9, 15), "on_call"),
            (utc(30, 9, 16), "wrap_up"), (utc(30, 9, 17), "offline"), (utc(31, 13), "ready"),
            (utc(31, 15), "offline"),
        )  # fmt: skip
        await _states(
            conn, bob,
            (utc(30, 9, 30), "ready"), (utc(30, 9, 45), "on_call"), (utc(30, 9, 47), "wrap_up"),
            (utc(30, 9, 48), "ready"), (utc(31, 23), "paused"), (utc(1, 8, month=11), "ready"),
        )  # fmt: skip
        await _states(conn, dave, (utc(29, 12), "paused"))

        l1 = await _link(conn, u1, alice, "sms", utc(29, 23, 35), c1, ["sent", "opened", "used"])
        await _link(conn, u2, bob, "email", utc(30, 9, 50), c3, ["sent", "opened"])
        await _link(conn, u2, None, "sms", utc(31, 10), None, ["sent"])
        await _link(conn, u3, alice, "sms", utc(31, 14, 5), c6, ["sent"])
        await _link(conn, u1, alice, "sms", utc(29, 22), None, ["sent", "opened"])  # outside

        def conv(
            user_id: int,
            kind: ConversionKind,
            when: datetime,
            contact: Contact | None,
            link_id: int | None = None,
            claim_id: int | None = None,
        ) -> Attribution:
            signature = kind is ConversionKind.SIGNED
            key = f"signature:{user_id}" if signature else f"requirement:{next_id()}"
            conversion = Conversion(f"analytics:{next_id()}", user_id, kind, key, when, claim_id)
            return Attribution(conversion, contact, link_id)

        def by_call(user_id: int, call_id: int, agent: int, queue: str) -> Contact:
            return Contact(user_id, ContactKind.CALL, str(call_id), utc(29, 23), agent, queue)

        signed, documents = ConversionKind.SIGNED, ConversionKind.DOCUMENTS
        written = await conversions.record(
            conn,
            [
                conv(u1, signed, utc(30, 12), by_call(u1, c1, alice, "unsigned"), l1),
                conv(u2, documents, utc(30, 15), by_call(u2, c3, bob, "outstanding"), claim_id=u2),
                conv(u3, signed, utc(31, 16), None),
                conv(u2, signed, utc(1, 0, month=11), None),  # outside
            ],
        )
        assert written == 4

        await _sms(conn, u1, alice, "outbound", utc(30, 10))
        await _sms(conn, u3, alice, "outbound", utc(31, 14, 10))
        await _sms(conn, u2, None, "outbound", utc(30, 11))
        await _sms(conn, u1, None, "inbound", utc(30, 10, 30))
        await _sms(conn, u2, bob, "outbound", utc(1, 1, month=11))  # outside
    yield Data(
        {"U1": u1, "U2": u2, "U3": u3, "U4": u4},
        {"Alice": alice, "Bob": bob, "Dave": dave, "Robo": robo},
    )


# --- the figures worked out by hand -----------------------------------------------------------
# Each table as its CSV holds it: seconds whole, rates as fractions to four places.

FUNNEL = [
    ["Stage", "Count", "Of called", "Of the stage before"],
    ["Called", "7", "1", ""],
    ["Reached", "5", "0.7143", "0.7143"],
    ["Link sent", "4", "0.5714", "0.8"],
    ["Link opened", "2", "0.2857", "0.5"],
    ["Link used", "1", "0.1429", "0.5"],
    ["Signed", "2", "0.2857", "2"],
    ["Documents received", "1", "", ""],
]

AGENT_COLUMNS = [
    "Agent", "Kind", "Calls", "Reached", "Contact rate", "Talk time (seconds)",
    "Average talk (seconds)", "Ready (seconds)", "Paused (seconds)", "On call (seconds)",
    "Wrap-up (seconds)", "SMS sent", "Links sent", "Links used", "Signed", "Documents received",
]  # fmt: skip


def agents_csv(d: Data) -> list[list[str]]:
    return [
        AGENT_COLUMNS,
        [d.label("Alice"), "Person", "3", "2", "0.6667", "120", "60",
         "43020", "900", "210", "90", "2", "2", "1", "1", "0"],
        [d.label("Bob"), "Person", "3", "2", "0.6667", "105", "52",
         "134820", "3600", "120", "60", "0", "1", "0", "0", "1"],
        [d.label("Robo"), "AI", "1", "1", "1", "30", "30", "0", "0", "0", "0", "0", "0", "0",
         "0", "0"],
        [d.label("Dave"), "Person", "0", "0", "", "0", "", "0", "176400", "0", "0", "0", "0",
         "0", "0", "0"],
        ["(no agent)", "", "0", "0", "", "0", "", "0", "0", "0", "0", "1", "1", "0", "1", "0"],
    ]  # fmt: skip


def outcomes_csv(d: Data) -> list[list[str]]:
    return [
        ["Agent", "No answer", "Voicemail left", "Callback requested", "Promised to sign",
         "Promised documents", "Magic link sent", "(no outcome)", "Calls"],
        [d.label("Alice"), "0", "1", "0", "1", "0", "1", "0", "3"],
        [d.label("Bob"), "1", "0", "1", "0", "1", "0", "0", "3"],
        [d.label("Robo"), "0", "0", "0", "0", "0", "0", "1", "1"],
        ["Total", "1", "1", "1", "1", "1", "1", "1", "7"],
    ]  # fmt: skip


STAGES = ["Called", "Reached", "Link sent", "Link opened", "Link used", "Signed",
          "Documents received"]  # fmt: skip

QUEUES = [
    ["Queue", *STAGES, "Contact rate", "Talk time (seconds)"],
    ["(none)", "0", "0", "1", "0", "0", "1", "0", "", "0"],
    ["callback", "1", "1", "1", "0", "0", "0", "0", "1", "0"],
    ["outstanding", "3", "2", "1", "1", "0", "0", "1", "0.6667", "105"],
    ["unsigned", "3", "2", "1", "1", "1", "1", "0", "0.6667", "150"],
]

CHANNELS = [
    ["Channel", *STAGES, "SMS sent", "SMS received"],
    ["(none)", "0", "0", "0", "0", "0", "1", "0", "", ""],
    ["ai", "1", "1", "0", "0", "0", "0", "0", "", ""],
    ["call", "6", "4", "3", "2", "1", "1", "1", "", ""],
    ["sms", "0", "0", "1", "0", "0", "0", "0", "3", "1"],
]

LENDERS = [
    ["Lender", *STAGES],
    ["(unknown)", "1", "1", "0", "0", "0", "0", "0"],
    ["Barclays", "3", "2", "2", "1", "0", "0", "1"],
    ["HSBC", "1", "1", "1", "0", "0", "1", "0"],
    ["Santander", "3", "2", "2", "1", "1", "2", "0"],
]

BUSY_HOURS = {0: ("1", "1", "1"), 1: ("2", "1", "0.5"), 10: ("2", "1", "0.5"),
              14: ("1", "1", "1"), 23: ("1", "1", "1")}  # fmt: skip
HOURS = [
    ["Hour", "Calls", "Reached", "Contact rate"],
    *([f"{h:02d}:00", *BUSY_HOURS.get(h, ("0", "0", ""))] for h in range(24)),
]


def expected_csv(d: Data) -> dict[str, list[list[str]]]:
    return {
        "funnel": FUNNEL,
        "agents": agents_csv(d),
        "outcomes": outcomes_csv(d),
        "queues": QUEUES,
        "channels": CHANNELS,
        "lenders": LENDERS,
        "hours": HOURS,
    }


def as_csv(table_csv: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(table_csv)))


def mine(rows: list[list[str]], d: Data) -> list[list[str]]:
    """The agents rows of this data set (and the header), whatever else shares the range."""
    names = {d.label(n) for n in d.agents} | {"(no agent)", "Total", "Agent"}
    return [r for r in rows if r[0] in names]


# --- the service -------------------------------------------------------------------------------


async def _report(dialler_db: AsyncEngine, now: datetime = NOW) -> Analytics:
    return await analytics(dialler_db, RANGE, now)


async def test_the_figures_equal_the_hand_computed_ones(
    data: Data, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    report = await _report(dialler_db)
    start, end = report.start, report.end
    assert (start, end) == (utc(29, 23), utc(1, 0, month=11))
    assert (end - start) == timedelta(hours=49)  # the clocks went back
    t = report.totals
    assert (t.calls, t.reached, t.talk_seconds) == (7, 5, 255)
    assert (t.links_sent, t.links_used, t.signed, t.documents) == (4, 1, 2, 1)
    assert t.contact_rate == pytest.approx(5 / 7)
    by_id = {a.agent_id: a for a in report.agents}
    alice = by_id[data.agents["Alice"]]
    assert (alice.calls, alice.reached, alice.talk_seconds, alice.sms_sent) == (3, 2, 120, 2)
    assert alice.outcomes == {"promised_to_sign": 1, "voicemail_left": 1, "magic_link_sent": 1}
    assert [alice.seconds_in(s) for s in WORKING_STATES] == [43020, 900, 210, 90]
    bob = by_id[data.agents["Bob"]]
    assert bob.average_talk == pytest.approx(52.5)
    assert bob.states == {READY: 134820, PAUSED: 3600, AgentState.ON_CALL: 120,
                          AgentState.WRAP_UP: 60}  # fmt: skip
    assert by_id[data.agents["Dave"]].states[PAUSED] == 49 * 3600
    assert by_id[data.agents["Robo"]].is_ai
    hours = {h.hour: (h.calls, h.reached) for h in report.hours}
    assert hours == {h: (0, 0) for h in range(24)} | {
        0: (1, 1), 1: (2, 1), 10: (2, 1), 14: (1, 1), 23: (1, 1)
    }  # fmt: skip
    by_lender = await lenders(dialler_db, replica, RANGE)
    assert by_lender.unavailable is None
    for key, rows in expected_csv(data).items():
        found = as_csv((by_lender if key == "lenders" else report.tables[key]).csv())
        if key in ("agents", "outcomes"):
            found = mine(found, data)
        assert found == rows, key


async def test_a_supervisors_signed_in_time_alone_is_not_an_agent_row(
    data: Data, dialler_db: AsyncEngine
) -> None:
    """Signing in records a state for everyone; a supervisor who only watched the floor is
    not listed with the agents, while Dave, an agent paused all along, still is."""
    async with dialler_db.begin() as conn:
        watcher = await conn.scalar(
            insert(db.agents)
            .values(
                email=f"analytics-watcher-{next_id()}@example.com",
                display_name="Watcher",
                role="supervisor",
            )
            .returning(db.agents.c.id)
        )
        await _states(conn, int(watcher), (utc(30, 9), "paused"), (utc(30, 17), "offline"))
    report = await _report(dialler_db)
    listed = {a.agent_id for a in report.agents}
    assert int(watcher) not in listed
    assert data.agents["Dave"] in listed


@pytest.mark.parametrize(
    "now",
    [
        utc(1, 12, month=11),  # the Saturday is settled (kept), the Sunday counted live
        utc(2, 12, month=11),  # both settled: counted, kept, then read back
        utc(2, 13, month=11),  # ... and read back again from what was kept
    ],
)
async def test_kept_days_give_the_same_figures_as_counting_live(
    data: Data, dialler_db: AsyncEngine, now: datetime
) -> None:
    """A settled day (two days old) is counted once and kept (call_days, agent_state_days);
    the figures over kept days, live days or both are the hand-computed ones."""
    report = await _report(dialler_db, now=now)
    for key in ("agents", "outcomes", "queues", "hours", "funnel"):
        found = as_csv(report.tables[key].csv())
        if key in ("agents", "outcomes"):
            found = mine(found, data)
        assert found == expected_csv(data)[key], (key, now)


async def test_kept_counts_equal_live_counts(data: Data, dialler_db: AsyncEngine) -> None:
    """The same two days counted by the owners live and from what they keep (the links of
    the data set expire an hour after they are sent: their days are final)."""
    await _report(dialler_db)  # keeps both days (settled long ago)
    start, end = RANGE.period
    async with dialler_db.connect() as conn:
        live = await call_log.call_breakdown(conn, start, end, UK.key)
        kept = await call_log.kept_call_breakdown(conn, RANGE.first_day, RANGE.last_day)
        totals, spans = await agent_store.state_time_between(conn, start, end)
        kept_states = await agent_store.kept_state_time(conn, RANGE.first_day, RANGE.last_day)
        live_links = await magic_links.link_counts_between(conn, start, end, call_log.queue_of_call)
        kept_links = await magic_links.kept_link_breakdown(conn, RANGE.first_day, RANGE.last_day)
    assert kept == live
    assert kept_links == live_links
    assert sum(t.sent for t in kept_links.by_source.values()) == 4
    ours = set(data.agents.values())
    live_states = time_in_states(totals, spans, start, end, NOW)
    kept_by_agent = time_in_states(kept_states, [], start, end, NOW)
    assert {a: kept_by_agent[a] for a in ours if a in kept_by_agent} == {
        a: live_states[a] for a in ours if a in live_states
    }


async def test_a_kept_day_is_counted_once(dialler_db: AsyncEngine, replica: AsyncEngine) -> None:
    """Once a settled day is kept, what is written about it later is not counted (nothing
    is: calls and state changes are written as they happen; this shows the rule)."""
    day = DateRange(date(2021, 9, 1), date(2021, 9, 1))
    user_id = await add_claimant(replica)
    async with dialler_db.begin() as conn:
        agent = await _agent(conn, "Kept")
        await _call(conn, user_id, agent, "unsigned", utc(1, 10, month=9))
        await _states(conn, agent, (utc(1, 9, month=9), "ready"), (utc(1, 10, month=9), "paused"))

    async def agent_row() -> tuple[int, float]:
        report = await analytics(dialler_db, day, NOW)
        found = next(a for a in report.agents if a.agent_id == agent)
        return found.calls, found.seconds_in(READY)

    assert await agent_row() == (1, 3600)
    async with dialler_db.begin() as conn:
        await _call(conn, user_id, agent, "unsigned", utc(1, 11, month=9))
        await _states(conn, agent, (utc(1, 11, month=9), "ready"))
    assert await agent_row() == (1, 3600)


async def test_a_day_with_a_link_still_usable_is_not_kept(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """A link can still be opened and used until it expires: its day and the days after it
    are counted live until then."""
    user_id = await add_claimant(replica)
    days = [date(2021, 8, 1), date(2021, 8, 2), date(2021, 8, 3)]
    async with dialler_db.begin() as conn:
        link_id = await _link(conn, user_id, None, "sms", utc(2, 10, month=8), None, ["sent"])
        await conn.execute(
            db.magic_links.update()
            .where(db.magic_links.c.id == link_id)
            .values(expires_at=datetime(2999, 1, 1, tzinfo=UTC))
        )
    async with dialler_db.begin() as conn:
        kept = await magic_links.keep_link_days(conn, days, UK.key, call_log.queue_of_call)
    assert kept == days[:1]


async def test_a_state_still_running_counts_up_to_now(data: Data, dialler_db: AsyncEngine) -> None:
    """Dave has been paused since before the range: seen on the Sunday at 00:00 UTC, 25 of
    the range's hours have happened; a range wholly in the future has no time in it."""
    report = await _report(dialler_db, now=utc(31, 0))
    dave = next(a for a in report.agents if a.agent_id == data.agents["Dave"])
    assert dave.states[PAUSED] == 25 * 3600
    before = await _report(dialler_db, now=utc(29, 23))
    assert data.agents["Dave"] not in {a.agent_id for a in before.agents}


async def test_without_the_replica_the_lenders_table_says_why(
    app: Quart, data: Data, dialler_db: AsyncEngine
) -> None:
    away = create_async_engine(f"mysql+aiomysql://root@127.0.0.1:{free_port()}/nothing")
    try:
        table = await lenders(dialler_db, away, RANGE)
    finally:
        await away.dispose()
    assert table.unavailable == LENDERS_UNAVAILABLE
    assert table.rows == []
    # the page never reads the replica: its figures are all there
    client = await _supervisor(app, dialler_db)
    services = app.extensions[EXTENSION_KEY]
    replica_db = services.replica_db
    services.replica_db = create_async_engine(
        f"mysql+aiomysql://root@127.0.0.1:{free_port()}/nothing"
    )
    try:
        page = await client.get(f"/supervisor/analytics?{QUERY}")
        fragment = await client.get(f"/supervisor/analytics/lenders?{QUERY}")
        csv_answer = await client.get(f"/supervisor/analytics/lenders.csv?{QUERY}")
    finally:
        await services.replica_db.dispose()
        services.replica_db = replica_db
    assert page.status_code == 200
    assert "Reading the claimants' lenders" in await page.get_data(as_text=True)
    assert fragment.status_code == 200
    assert LENDERS_UNAVAILABLE in await fragment.get_data(as_text=True)
    assert csv_answer.status_code == 503


# --- the page and its CSVs ------------------------------------------------------------------


async def _supervisor(
    app: Quart, dialler_db: AsyncEngine, role: AgentRole = AgentRole.SUPERVISOR
) -> Any:
    staff = await make_staff(dialler_db, role, None)
    client = app.test_client()
    assert await sign_in(client, staff) == 303
    return client


async def test_every_csv_holds_the_hand_computed_figures(
    app: Quart, data: Data, dialler_db: AsyncEngine
) -> None:
    client = await _supervisor(app, dialler_db, AgentRole.ADMIN)
    for key, rows in expected_csv(data).items():
        response = await client.get(f"/supervisor/analytics/{key}.csv?{QUERY}")
        assert response.status_code == 200, key
        assert response.mimetype == "text/csv"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="analytics-{key}-2021-10-30-to-2021-10-31.csv"'
        )
        found = as_csv(await response.get_data(as_text=True))
        if key in ("agents", "outcomes"):
            found = mine(found, data)
        assert found == rows, key


async def test_the_page_shows_the_figures_charts_and_csv_links(
    app: Quart, data: Data, dialler_db: AsyncEngine
) -> None:
    client = await _supervisor(app, dialler_db)
    response = await client.get(f"/supervisor/analytics?{QUERY}")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    for canvas in ("chart-funnel", "chart-hours", "chart-states", "chart-outcomes"):
        assert f'id="{canvas}"' in page
    for key in expected_csv(data):
        assert f'href="/supervisor/analytics/{key}.csv?from=2021-10-30&amp;to=2021-10-31"' in page
    assert "<script>" not in page  # the CSP forbids inline scripts: only JSON data
    found = re.search(r'<script type="application/json" id="analytics-data">(.*?)</script>', page)
    assert found
    charts = json.loads(found.group(1))
    assert charts["funnel"]["values"] == [7, 5, 4, 2, 1, 2]
    assert charts["hours"]["calls"][10] == 2
    assert charts["hours"]["contactRate"][1] == 50.0
    assert sum(charts["outcomes"]["values"]) == 7
    alice_row = re.search(
        rf"<th scope=\"row\">{re.escape(data.label('Alice'))}</th>(.*?)</tr>", page
    )
    assert alice_row
    cells = re.findall(r'<td class="number">([^<]*)</td>', alice_row.group(1))
    # calls, reached, contact rate, talk, average talk, ready, paused, on call, wrap-up, ...
    assert cells[:9] == ["3", "2", "66.7%", "2m 00s", "1m 00s", "11h 57m", "15m 00s",
                         "3m 30s", "1m 30s"]  # fmt: skip
    assert 'aria-current="page">Analytics' in page
    assert 'hx-get="/supervisor/analytics/lenders?from=2021-10-30&amp;to=2021-10-31"' in page
    fragment = await client.get(f"/supervisor/analytics/lenders?{QUERY}", headers=HTMX)
    assert fragment.status_code == 200
    lender_rows = await fragment.get_data(as_text=True)
    assert 'id="table-lenders"' in lender_rows and "<html" not in lender_rows
    assert re.search(r'<th scope="row">HSBC</th><td class="number">1</td>', lender_rows)


async def test_without_dates_the_page_shows_the_last_seven_uk_days(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client = await _supervisor(app, dialler_db)
    response = await client.get("/supervisor/analytics")
    assert response.status_code == 200
    page = await response.get_data(as_text=True)
    today = datetime.now(UK).date()
    week = last_days(today)
    # (a test run across UK midnight could see tomorrow's range: either is right)
    assert (
        f'value="{week.first_day}"' in page
        or f'value="{week.first_day + timedelta(days=1)}"' in page
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2021-10-31&to=2021-10-30", "is before From"),
        ("from=2020-01-01&to=2021-01-01", "at most 366 days"),
        ("from=yesterday&to=2021-10-30", "is not a date"),
        ("from=99999-01-01&to=2021-10-30", "is not a date"),
        ("from=9999-12-30&to=9999-12-31", "must be between"),
        ("from=1066-10-14&to=1066-10-15", "must be between"),
        ("from=2021-02-30&to=2021-03-01", "is not a date"),
        ("from=" + "9" * 5000 + "&to=2021-10-30", "is not a date"),
    ],
)
async def test_a_bad_range_re_renders_the_form_with_its_message(
    app: Quart, dialler_db: AsyncEngine, query: str, message: str
) -> None:
    client = await _supervisor(app, dialler_db)
    response = await client.get(f"/supervisor/analytics?{query}")
    assert response.status_code == 422
    page = await response.get_data(as_text=True)
    assert message in page
    assert 'id="range-error"' in page and 'name="from"' in page
    assert "chart-funnel" not in page
    for path in ("agents.csv", "lenders.csv", "lenders"):
        answer = await client.get(f"/supervisor/analytics/{path}?{query}", headers=HTMX)
        assert answer.status_code == 422, path
        assert message in await answer.get_data(as_text=True), path


async def test_control_characters_are_refused_before_the_view(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client = await _supervisor(app, dialler_db)
    for path in ("/supervisor/analytics", "/supervisor/analytics/agents.csv",
                 "/supervisor/analytics/lenders"):  # fmt: skip
        for query in ("from=2021-10-30%00&to=2021-10-31", "from=2021-10-30&to=%1b[2J"):
            response = await client.get(f"{path}?{query}")
            assert response.status_code == 400, (path, query)


async def test_an_unknown_table_is_404_and_agents_are_refused(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client = await _supervisor(app, dialler_db)
    assert (await client.get(f"/supervisor/analytics/passwords.csv?{QUERY}")).status_code == 404
    agent = await make_staff(dialler_db, AgentRole.AGENT)
    agent_client = app.test_client()
    assert await sign_in(agent_client, agent) == 303
    for path in ("/supervisor/analytics", f"/supervisor/analytics/agents.csv?{QUERY}",
                 f"/supervisor/analytics/lenders?{QUERY}"):  # fmt: skip
        assert (await agent_client.get(path)).status_code == 403, path
    anonymous = await app.test_client().get("/supervisor/analytics/agents.csv")
    assert anonymous.status_code in (302, 401)


async def test_csv_cells_cannot_run_as_formulas(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    """An agent named like a formula, on a day of their own."""
    user_id = await add_claimant(replica)
    async with dialler_db.begin() as conn:
        hostile = await _agent(conn, '=HYPERLINK("http://x","y")')
        plus = await _agent(conn, "+1 cmd")
        for agent_id in (hostile, plus):
            await _call(conn, user_id, agent_id, "unsigned", utc(10, 12, month=11))
    client = await _supervisor(app, dialler_db)
    response = await client.get("/supervisor/analytics/agents.csv?from=2021-11-10&to=2021-11-10")
    rows = as_csv(await response.get_data(as_text=True))
    # (the data set's agents still in a state then are listed too: Bob ready, Dave paused)
    names = sorted(r[0] for r in rows[1:] if r[0].endswith((f"(#{hostile})", f"(#{plus})")))
    assert names == [f"'+1 cmd (#{plus})", f'\'=HYPERLINK("http://x","y") (#{hostile})']
