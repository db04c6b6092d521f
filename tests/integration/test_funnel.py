"""The funnel (`services.funnel`, `dialler report funnel`) on a FIXED data set, against the
real PostgreSQL and MariaDB, equals figures worked out by hand below, in total and by
agent, queue, channel and lender, as a table and as CSV; bad dates are refused clearly.

The period is 2030-03-04 to 2030-03-05 (UK time = UTC then), far from the "now" other
tests write at, so nothing else lands in it.

Claimants: U1 (Santander), U2 (Barclays), U3 (a Santander claim and an HSBC claim),
U4 (not on the replica). Agents: Alice, Bob (people), Robo (AI).

calls      who       queue        claimant  what happened                   reached?
c1         Alice     unsigned     U1        answered, human, bridged 120 s  yes
c2         Alice     unsigned     U1        answered by a machine           no
c3         Bob       outstanding  U2        answered (no AMD), bridged 60 s yes
c4         Bob       outstanding  U2        not answered                    no
c5         Alice     callback     U3        by hand, promised_to_sign       yes
c6         Bob       callback     U3        by hand, no_answer              no
c7         Robo      unsigned     U4        answered, human, bridged 30 s   yes
(c8 03-03 23:59 and c9 03-06 00:00 are outside the period)

links      by        channel  from          opened  used
l1         Alice     sms      call c1       yes     yes
l2         Bob       email    call c3       yes     no
l3         Alice     sms      sms message   no      no
l4         Robo      sms      call c7       yes     yes
l5         (none)    sms      (nothing)     no      no
(l6: created in the period but never sent; l7: sent 03-06 01:00, outside)

conversions  claimant  kind       credited to            link
v1           U1        signed     call c1 (Alice, unsig) l1
v2           U2        documents  call c3 (Bob, outst)   -     claim: U2's (Barclays)
v3           U3        documents  sms (Alice, no queue)  -     claim: U3's HSBC claim
v4           U4        signed     call c7 (Robo, unsig)  l4
v5           U3        signed     nobody                 -
(v6: U2 signed 03-06 00:00, outside)
"""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import conversions
from cli.main import main
from domain.attribution import Attribution, Contact, Conversion, report_period
from schemas import dialler_db as db
from schemas import replica as rp
from schemas.attribution import ContactKind, ConversionKind, FunnelGrouping, FunnelRow
from services.funnel import funnel
from tests.factories import add_claimant, ensure_lender, next_id

_serial = itertools.count(1)
DAY1 = datetime(2030, 3, 4, tzinfo=UTC)
DAY2 = datetime(2030, 3, 5, tzinfo=UTC)


def at(day: datetime, hour: int, minute: int = 0) -> datetime:
    return day + timedelta(hours=hour, minutes=minute)


@dataclass
class Data:
    users: dict[str, int]
    agents: dict[str, int]

    def agent(self, name: str) -> str:
        return f"{name} (#{self.agents[name]})"


async def _agent(conn: Any, name: str, is_ai: bool) -> int:
    agent_id = await conn.scalar(
        insert(db.agents)
        .values(
            email=f"funnel-{name.lower()}-{next_id()}@example.com",
            display_name=name,
            role="agent",
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
            to_number="+447700900001",
            started_at=started,
            **values,
        )
        .returning(db.calls.c.id)
    )
    return int(call_id)


async def _link(
    conn: Any,
    user_id: int,
    agent_id: int | None,
    channel: str,
    created: datetime,
    source: tuple[ContactKind, str] | None,
    events: list[str],
) -> int:
    link_id = await conn.scalar(
        insert(db.magic_links)
        .values(
            user_id=user_id,
            token_hash=f"funnel-{next(_serial)}-{next_id()}",
            channel=channel,
            purpose="signature",
            created_by=agent_id,
            created_at=created,
            expires_at=created + timedelta(hours=1),
            source_kind=source[0].value if source else None,
            source_ref=source[1] if source else None,
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


@pytest.fixture(scope="module")
async def data(dialler_db: AsyncEngine, replica: AsyncEngine) -> AsyncIterator[Data]:
    u1 = await add_claimant(replica, lender="Santander")
    u2 = await add_claimant(replica, lender="Barclays")
    u3 = await add_claimant(replica, lender="Santander")
    hsbc_claim = next_id()
    async with replica.begin() as conn:
        await conn.execute(
            insert(rp.claims).values(
                id=hsbc_claim,
                user_id=u3,
                lender_id=await ensure_lender(replica, "HSBC"),
                status="in_progress",
                estimated_value=1000,
                created_at=datetime(2026, 1, 5),
            )
        )
    u4 = 9_000_000_000 + next_id()  # not on the replica
    async with dialler_db.begin() as conn:
        alice = await _agent(conn, "Alice", False)
        bob = await _agent(conn, "Bob", False)
        robo = await _agent(conn, "Robo", True)
        human = {"answered_at": at(DAY1, 10, 1), "answered_by": "human"}
        c1 = await _call(conn, u1, alice, "unsigned", at(DAY1, 10), **human, agent_seconds=120)
        await _call(
            conn,
            u1,
            alice,
            "unsigned",
            at(DAY1, 11),
            answered_at=at(DAY1, 11),
            answered_by="machine_start",
            agent_seconds=0,
        )
        c3 = await _call(
            conn,
            u2,
            bob,
            "outstanding",
            at(DAY1, 12),
            answered_at=at(DAY1, 12, 1),
            agent_seconds=60,
        )
        await _call(conn, u2, bob, "outstanding", at(DAY2, 9), status="no-answer")
        await _call(
            conn,
            u3,
            alice,
            "callback",
            at(DAY2, 10),
            provider="manual",
            disposition="promised_to_sign",
        )
        await _call(
            conn, u3, bob, "callback", at(DAY2, 11), provider="manual", disposition="no_answer"
        )
        c7 = await _call(conn, u4, robo, "unsigned", at(DAY2, 12), **human, agent_seconds=30)
        # outside the period, on both sides
        await _call(conn, u1, alice, "unsigned", at(DAY1, -1, 59), **human, agent_seconds=9)
        await _call(conn, u2, bob, "outstanding", at(DAY2, 24), **human, agent_seconds=9)

        call = ContactKind.CALL
        l1 = await _link(
            conn, u1, alice, "sms", at(DAY1, 10, 5), (call, str(c1)), ["sent", "opened", "used"]
        )
        await _link(conn, u2, bob, "email", at(DAY1, 12, 5), (call, str(c3)), ["sent", "opened"])
        await _link(conn, u3, alice, "sms", at(DAY2, 8), (ContactKind.SMS, "123"), ["sent"])
        l4 = await _link(
            conn,
            u4,
            robo,
            "sms",
            at(DAY2, 12, 5),
            (call, str(c7)),
            ["sent", "opened", "opened", "used"],
        )
        await _link(conn, u2, None, "sms", at(DAY2, 13), None, ["sent"])
        await _link(conn, u1, alice, "sms", at(DAY2, 14), None, [])  # never sent
        await _link(conn, u1, alice, "sms", at(DAY2, 25), None, ["sent", "opened", "used"])

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
            conversion = Conversion(f"funnel:{next_id()}", user_id, kind, key, when, claim_id)
            return Attribution(conversion, contact, link_id)

        def contact(
            user_id: int, kind: ContactKind, ref: int, agent: int, queue: str | None
        ) -> Contact:
            return Contact(user_id, kind, str(ref), at(DAY1, 0), agent, queue)

        signed, documents = ConversionKind.SIGNED, ConversionKind.DOCUMENTS
        written = await conversions.record(
            conn,
            [
                conv(u1, signed, at(DAY1, 15), contact(u1, call, c1, alice, "unsigned"), l1),
                conv(
                    u2,
                    documents,
                    at(DAY2, 10),
                    contact(u2, call, c3, bob, "outstanding"),
                    claim_id=u2,
                ),
                conv(
                    u3,
                    documents,
                    at(DAY2, 11),
                    contact(u3, ContactKind.SMS, 123, alice, None),
                    claim_id=hsbc_claim,
                ),
                conv(u4, signed, at(DAY2, 16), contact(u4, call, c7, robo, "unsigned"), l4),
                conv(u3, signed, at(DAY2, 17), None),
                conv(u2, signed, at(DAY2, 24), None),  # outside
            ],
        )
        assert written == 6
    yield Data({"U1": u1, "U2": u2, "U3": u3, "U4": u4}, {"Alice": alice, "Bob": bob, "Robo": robo})


PERIOD = report_period(DAY1.date(), DAY2.date())


def row(group: str, *stages: int) -> FunnelRow:
    return FunnelRow(group, *stages)


# stages: called, reached, link sent, link opened, link used, signed, documents received
def expected(d: Data, grouping: FunnelGrouping) -> list[FunnelRow]:
    match grouping:
        case FunnelGrouping.TOTAL:
            return [row("all", 7, 4, 5, 3, 2, 3, 2)]
        case FunnelGrouping.AGENT:
            return [
                row("(no agent)", 0, 0, 1, 0, 0, 1, 0),
                row(d.agent("Alice"), 3, 2, 2, 1, 1, 1, 1),
                row(d.agent("Bob"), 3, 1, 1, 1, 0, 0, 1),
                row(d.agent("Robo"), 1, 1, 1, 1, 1, 1, 0),
            ]
        case FunnelGrouping.QUEUE:
            return [
                row("(none)", 0, 0, 2, 0, 0, 1, 1),
                row("callback", 2, 1, 0, 0, 0, 0, 0),
                row("outstanding", 2, 1, 1, 1, 0, 0, 1),
                row("unsigned", 3, 2, 2, 2, 2, 2, 0),
            ]
        case FunnelGrouping.CHANNEL:
            return [
                row("(none)", 0, 0, 0, 0, 0, 1, 0),
                row("ai", 1, 1, 1, 1, 1, 1, 0),
                row("call", 6, 3, 2, 2, 1, 1, 1),
                row("sms", 0, 0, 2, 0, 0, 0, 1),
            ]
        case FunnelGrouping.LENDER:
            return [
                row("(unknown)", 1, 1, 1, 1, 1, 1, 0),
                row("Barclays", 2, 1, 2, 1, 0, 0, 1),
                row("HSBC", 2, 1, 1, 0, 0, 1, 1),
                row("Santander", 4, 2, 2, 1, 1, 2, 0),
            ]
    raise AssertionError(grouping)


@pytest.mark.parametrize("grouping", list(FunnelGrouping))
async def test_the_funnel_equals_the_hand_computed_figures(
    data: Data, dialler_db: AsyncEngine, replica: AsyncEngine, grouping: FunnelGrouping
) -> None:
    report = await funnel(dialler_db, replica, *PERIOD, grouping)
    assert report.rows == expected(data, grouping)


async def test_an_empty_period_has_one_zero_row_and_bad_periods_are_refused(
    data: Data, dialler_db: AsyncEngine
) -> None:
    start, end = report_period(datetime(2031, 1, 1).date(), datetime(2031, 1, 2).date())
    assert (await funnel(dialler_db, None, start, end)).rows == [row("all", 0, 0, 0, 0, 0, 0, 0)]
    with pytest.raises(ValueError, match="ends before"):
        await funnel(dialler_db, None, end, start)
    with pytest.raises(ValueError, match="replica"):
        await funnel(dialler_db, None, start, end, FunnelGrouping.LENDER)


# --- the command -------------------------------------------------------------------------


def _run(dialler_db: AsyncEngine, replica: AsyncEngine, *args: str) -> Any:
    env = {
        "DATABASE_URL": dialler_db.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": replica.url.render_as_string(hide_password=False),
        "ENVIRONMENT": os.environ.get("ENVIRONMENT", "test"),
    }
    return CliRunner().invoke(main, ["report", "funnel", *args], env=env, catch_exceptions=False)


STAGE_HEADER = [
    "called",
    "reached",
    "link_sent",
    "link_opened",
    "link_used",
    "signed",
    "documents_received",
]


@pytest.mark.parametrize("grouping", ["agent", "queue", "lender", "channel"])
def test_the_command_prints_the_same_figures_as_csv(
    data: Data, dialler_db: AsyncEngine, replica: AsyncEngine, grouping: str
) -> None:
    result = _run(
        dialler_db, replica, "--from", "2030-03-04", "--to", "2030-03-05", "--by", grouping, "--csv"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == [grouping, *STAGE_HEADER]
    want = expected(data, FunnelGrouping(grouping))
    assert rows[1:] == [[r.group, *(str(getattr(r, s)) for s in STAGE_HEADER)] for r in want]


def test_the_command_prints_a_table_with_a_total(
    data: Data, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    result = _run(
        dialler_db, replica, "--from", "2030-03-04", "--to", "2030-03-05", "--by", "queue"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "funnel 2030-03-04 to 2030-03-05 (UK time), by queue"
    assert "link opened" in lines[1] and "documents received" in lines[1]
    figures = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert figures["unsigned"] == ["3", "2", "2", "2", "2", "2", "0"]
    assert figures["total"] == ["7", "4", "5", "3", "2", "3", "2"]
    plain = _run(dialler_db, replica, "--from", "2030-03-04", "--to", "2030-03-05")
    assert plain.output.splitlines()[2].split() == ["all", "7", "4", "5", "3", "2", "3", "2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2030-02-30", "--to", "2030-03-05"], "'2030-02-30' is not a date"),
        (["--from", "yesterday", "--to", "2030-03-05"], "YYYY-MM-DD"),
        (["--from", "2030-03-05", "--to", "2030-03-04"], "--to (2030-03-04) is before --from"),
        (["--from", "2030-03-04", "--to", "2030-03-05", "--by", "weather"], "weather"),
        (["--to", "2030-03-05"], "Missing option '--from'"),
    ],
)
def test_bad_dates_get_a_clear_error(
    dialler_db: AsyncEngine, replica: AsyncEngine, args: list[str], message: str
) -> None:
    result = _run(dialler_db, replica, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
