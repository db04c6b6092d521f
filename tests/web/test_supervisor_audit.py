"""The supervisors' audit viewer (/supervisor/audit) and its CSV export: filters by actor (id
or email), claimant (entries about them and their calls), action and UK days give exactly the
expected entries on fixed data; keyset paging stays put while entries are appended; bad
filters re-render the form (422) and never a 500; the CSV is the filtered log, newest first,
with no cell a spreadsheet would run, and the export itself is audited; a recording a
supervisor plays is then listed by the viewer."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.recording_store import local_key_for, write_tone
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from services.audit_review import CSV_HEADER
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from web.services import EXTENSION_KEY

UK = ZoneInfo("Europe/London")
ROW = re.compile(r'<tr data-entry-id="(\d+)"')
_years = itertools.count(2030)  # each test's entries on days of their own
_numbers = itertools.count(1)


async def supervisor_client(app: Quart, dialler: AsyncEngine) -> tuple[Client, Staff]:
    supervisor = await make_staff(dialler, AgentRole.SUPERVISOR, None)
    client = app.test_client()
    assert await sign_in(client, supervisor) == 303
    return client, supervisor


async def entry(
    dialler: AsyncEngine,
    *,
    at: datetime,
    action: str,
    actor: tuple[str, str | None] = ("system", "test"),
    subject: tuple[str, str | None] = ("user", "1"),
    detail: dict[str, Any] | None = None,
    ip: str | None = "10.0.0.1",
) -> int:
    async with dialler.begin() as conn:
        entry_id = await conn.scalar(
            insert(db.audit_log)
            .values(at=at, actor_type=actor[0], actor_id=actor[1], action=action,
                    subject_type=subject[0], subject_id=subject[1], detail=detail or {},
                    ip_address=ip)
            .returning(db.audit_log.c.id)
        )  # fmt: skip
    return int(entry_id or 0)


async def call_to(dialler: AsyncEngine, user_id: int, agent_id: int | None = None) -> int:
    async with dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id, agent_id=agent_id, queue="unsigned", provider="simulated",
                    to_number="+447700900123", status="completed")
            .returning(db.calls.c.id)
        )  # fmt: skip
    return int(call_id or 0)


async def listed(client: Client, query: str) -> list[int]:
    response = await client.get(f"/supervisor/audit?{query}", headers={"Accept": "text/html"})
    page = await response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    return [int(found) for found in ROW.findall(page)]


def uk(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UK)


async def test_filters_return_exactly_the_expected_entries(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    alice = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    bob = await make_staff(dialler_db, AgentRole.SUPERVISOR, None)
    claimant = 800_000_000 + next(_numbers)
    other = claimant + 500
    their_call = await call_to(dialler_db, claimant, alice.id)
    others_call = await call_to(dialler_db, other, alice.id)
    day = date(next(_years), 7, 1)  # summer: UK midnight is 23:00 UTC
    second = day + timedelta(days=1)
    a, b = ("agent", str(alice.id)), ("agent", str(bob.id))
    ids = {
        "a_viewed": await entry(dialler_db, at=uk(day, 9), action="viewed_personal_data",
                                actor=a, subject=("user", str(claimant))),
        "a_played": await entry(dialler_db, at=uk(day, 9, 5), action="played_recording",
                                actor=a, subject=("call", str(their_call))),
        "b_played": await entry(dialler_db, at=uk(day, 23, 30), action="played_recording",
                                actor=b, subject=("call", str(others_call))),
        "sys_deleted": await entry(dialler_db, at=uk(second, 0, 30), action="recording_deleted",
                                   actor=("system", "retention"),
                                   subject=("call", str(their_call))),
        "b_viewed": await entry(dialler_db, at=uk(second, 10), action="viewed_personal_data",
                                actor=b, subject=("user", str(other))),
    }  # fmt: skip
    days = f"from={day}&to={second}"
    assert await listed(client, f"actor={alice.id}") == [ids["a_played"], ids["a_viewed"]]
    assert await listed(client, f"actor={alice.email.upper()}") == [
        ids["a_played"], ids["a_viewed"]
    ]  # fmt: skip
    assert await listed(client, f"actor={bob.id}&{days}") == [ids["b_viewed"], ids["b_played"]]
    # a claimant's entries: about them, and about their calls
    assert await listed(client, f"claimant={claimant}") == [
        ids["sys_deleted"], ids["a_played"], ids["a_viewed"]
    ]  # fmt: skip
    assert await listed(client, f"claimant={other}") == [ids["b_viewed"], ids["b_played"]]
    assert await listed(client, f"{days}&action=played_recording") == [
        ids["b_played"], ids["a_played"]
    ]  # fmt: skip
    # 23:30 BST is still the first day; 00:30 BST the second (23:30 UTC the first)
    assert await listed(client, f"from={day}&to={day}") == [
        ids["b_played"], ids["a_played"], ids["a_viewed"]
    ]  # fmt: skip
    assert await listed(client, f"from={second}&to={second}") == [
        ids["b_viewed"], ids["sys_deleted"]
    ]  # fmt: skip
    both = f"claimant={claimant}&action=played_recording&actor={alice.id}"
    assert await listed(client, both) == [ids["a_played"]]
    assert await listed(client, f"claimant={claimant}&actor={bob.id}") == []


async def test_each_row_shows_the_entry_readably_and_escaped(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, supervisor = await supervisor_client(app, dialler_db)
    at = datetime(next(_years), 1, 15, 14, 5, 9, tzinfo=UTC)
    entry_id = await entry(
        dialler_db, at=at, action="consent_confirmed", actor=("agent", str(supervisor.id)),
        subject=("user", "4242"), ip="2001:db8::1",
        detail={"statement": "<script>alert(1)</script>", "channels": ["sms", "email"],
                "call_id": 77},
    )  # fmt: skip
    response = await client.get(f"/supervisor/audit?actor={supervisor.id}&from={at.date()}")
    page = await response.get_data(as_text=True)
    assert ROW.findall(page) == [str(entry_id)]
    row = page[page.index(f'data-entry-id="{entry_id}"') :]
    row = row[: row.index("</tr>")]
    assert f"{at:%a} 15 Jan {at.year}, 14:05:09" in row  # UK time (GMT in January), to the second
    assert "Test supervisor" in row  # the actor's name
    assert "consent_confirmed" in row
    assert 'href="/supervisor/claimants/4242"' in row
    assert "<dt>statement</dt><dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>" in row
    assert "<dt>channels</dt><dd>[&#34;sms&#34;, &#34;email&#34;]</dd>" in row
    assert "<dt>call_id</dt><dd>77</dd>" in row
    assert "2001:db8::1" in row
    assert "<script>alert" not in page


def _links(page: str) -> dict[str, str]:
    found = {}
    for rel, name in (("prev", "newer"), ("next", "older")):
        match = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
        if match:
            found[name] = match.group(1).replace("&amp;", "&")
    return found


async def _page(client: Client, url: str) -> tuple[list[int], dict[str, str]]:
    response = await client.get(url)
    page = await response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    return [int(found) for found in ROW.findall(page)], _links(page)


async def test_paging_is_stable_while_entries_are_appended(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    actor = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    start = datetime(next(_years), 5, 1, 9, tzinfo=UTC)
    made = []
    for n in range(105):
        at = start + timedelta(seconds=n // 4)  # four entries a second: ties on the time
        made.append((at, await entry(dialler_db, at=at, action="viewed_personal_data",
                                     actor=("agent", str(actor.id)))))  # fmt: skip
    newest_first = [entry_id for _, entry_id in sorted(made, reverse=True)]
    first, links1 = await _page(client, f"/supervisor/audit?actor={actor.id}")
    assert first == newest_first[:50] and "newer" not in links1
    second, links2 = await _page(client, links1["older"])
    assert second == newest_first[50:100]
    await entry(dialler_db, at=start + timedelta(days=1), action="viewed_personal_data",
                actor=("agent", str(actor.id)))  # fmt: skip
    third, links3 = await _page(client, links2["older"])
    assert third == newest_first[100:] and "older" not in links3
    back, _ = await _page(client, links3["newer"])
    assert back == second


async def test_bad_filters_re_render_the_form_with_a_message(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    cases = {
        "actor=nobody@nowhere.test": "No agent has that id or email address.",
        f"actor={2**63 - 1}": "No agent has that id or email address.",
        f"actor={2**64}": "No agent has that id.",
        "actor=robert'); drop table audit_log;--": "An agent&#39;s id or email address.",
        f"claimant={2**63}": "A claimant&#39;s id",
        "claimant=12abc": "A claimant&#39;s id",
        "action=no_such_action_anywhere": "No entry has that action",
        "action=DROP TABLE": "Choose an action from the list.",
        "from=99999-01-01": "A day as YYYY-MM-DD",
        "from=2026-03-02&to=2026-03-01": "The last day is before the first.",
        "after=1.2.3": "That page link is not valid",
    }
    for query, message in cases.items():
        response = await client.get(f"/supervisor/audit?{query}", headers={"Accept": "text/html"})
        page = await response.get_data(as_text=True)
        assert response.status_code == 422, (query, page[:500])
        assert message in page, (query, page[page.find("filter-errors") :][:600])
        assert 'id="audit-table"' not in page
    for query in ("actor=%00", "action=played_recording%00", "claimant=1%00"):
        response = await client.get(f"/supervisor/audit?{query}")
        assert response.status_code == 400, query
    for query in ("action=no_such_action_anywhere", "from=99999-01-01", "claimant=%00"):
        response = await client.get(f"/supervisor/audit.csv?{query}")
        assert response.status_code in (400, 422), query
        assert response.mimetype == "application/json"


async def test_the_csv_is_the_filtered_log_with_no_formula_cells(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, supervisor = await supervisor_client(app, dialler_db)
    sneaky = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    async with dialler_db.begin() as conn:
        await conn.execute(
            db.agents.update()
            .where(db.agents.c.id == sneaky.id)
            .values(display_name='=HYPERLINK("http://evil.test")')
        )
    claimant = 810_000_000 + next(_numbers)
    call_id = await call_to(dialler_db, claimant)
    day = date(next(_years), 2, 1)
    first = await entry(dialler_db, at=uk(day, 9), action="viewed_personal_data",
                        actor=("agent", str(sneaky.id)), subject=("user", str(claimant)),
                        detail={"route": "console.panel"})  # fmt: skip
    second = await entry(dialler_db, at=uk(day, 10), action="magic_link_used",
                         actor=("claimant", "+44 7700 900123"), subject=("user", str(claimant)),
                         detail={"note": "@SUM(A1)"}, ip="-1+1")  # fmt: skip
    third = await entry(dialler_db, at=uk(day, 11), action="played_recording",
                        actor=("agent", str(supervisor.id)), subject=("call", str(call_id)),
                        detail={"user_id": str(claimant), "range": "bytes=0-"})  # fmt: skip
    await entry(dialler_db, at=uk(day, 12), action="played_recording",
                actor=("agent", str(supervisor.id)),
                subject=("user", str(claimant + 1)))  # fmt: skip

    response = await client.get(f"/supervisor/audit.csv?claimant={claimant}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True))))
    assert tuple(rows[0]) == CSV_HEADER
    assert [int(r[0]) for r in rows[1:]] == [third, second, first]
    by_id = {int(r[0]): dict(zip(CSV_HEADER, r, strict=True)) for r in rows[1:]}
    assert by_id[first]["actor_name"] == '\'=HYPERLINK("http://evil.test")'
    assert by_id[first]["at"] == uk(day, 9).isoformat()  # UK time with its offset
    assert by_id[second]["actor_id"] == "'+44 7700 900123"
    assert by_id[second]["actor_name"] == "claimant: +44 7700 900123"
    assert by_id[second]["ip_address"] == "'-1+1"
    assert by_id[second]["detail"] == '{"note": "@SUM(A1)"}'  # JSON: starts with a brace
    assert by_id[third]["actor_name"] == "Test supervisor"
    assert (by_id[third]["subject_type"], by_id[third]["subject_id"]) == ("call", str(call_id))
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row

    # the export is audited, with its filters
    async with dialler_db.connect() as conn:
        exported = (
            await conn.execute(
                select(db.audit_log.c.detail, db.audit_log.c.subject_type).where(
                    db.audit_log.c.action == "exported_audit_log",
                    db.audit_log.c.actor_id == str(supervisor.id),
                )
            )
        ).all()
    assert [(row.detail, row.subject_type) for row in exported] == [
        ({"filters": {"claimant": str(claimant)}}, "audit_log")
    ]


async def test_the_csv_streams_more_rows_than_a_batch(app: Quart, dialler_db: AsyncEngine) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    actor = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    at = datetime(next(_years), 3, 3, 12, tzinfo=UTC)
    async with dialler_db.begin() as conn:
        await conn.execute(
            insert(db.audit_log),
            [{"at": at + timedelta(seconds=n), "actor_type": "agent", "actor_id": str(actor.id),
              "action": "viewed_personal_data", "subject_type": "user", "subject_id": str(n),
              "detail": {}} for n in range(2_345)],
        )  # fmt: skip
    response = await client.get(f"/supervisor/audit.csv?actor={actor.id}")
    rows = list(csv.reader(io.StringIO(await response.get_data(as_text=True))))
    assert len(rows) == 1 + 2_345
    assert [r[7] for r in rows[1:4]] == ["2344", "2343", "2342"]  # newest first
    assert len({r[0] for r in rows[1:]}) == 2_345


async def test_a_playback_is_then_found_in_the_viewer(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    client, supervisor = await supervisor_client(app, dialler_db)
    agent = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(replica, signed=False, pending=1)
    key = local_key_for(f"RE{user_id:032d}")
    write_tone(app.extensions[EXTENSION_KEY].settings.recordings_dir / key, 1)
    call_id = await call_to(dialler_db, user_id, agent.id)
    async with dialler_db.begin() as conn:
        await conn.execute(
            db.calls.update()
            .where(db.calls.c.id == call_id)
            .values(recording_sid=f"RE{user_id:032d}", recording_store="local",
                    recording_key=key, recording_duration_seconds=1)
        )  # fmt: skip
    played = await client.get(f"/calls/{call_id}/recording")
    assert played.status_code == 200

    response = await client.get(f"/supervisor/audit?actor={supervisor.id}&action=played_recording")
    page = await response.get_data(as_text=True)
    [entry_id] = ROW.findall(page)
    row = page[page.index(f'data-entry-id="{entry_id}"') :]
    row = row[: row.index("</tr>")]
    assert f'<a href="/supervisor/calls/{call_id}">call #{call_id}</a>' in row
    assert "<dt>route</dt><dd>recordings.play</dd>" in row
    assert f"<dt>user_id</dt><dd>{user_id}</dd>" in row
    # and by the claimant: the playback (about their call) and the access hook's view
    by_claimant = await listed(client, f"claimant={user_id}")
    assert int(entry_id) in by_claimant and len(by_claimant) == 2
    assert "played_recording" in await (await client.get("/supervisor/audit")).get_data(
        as_text=True
    )


async def test_agents_are_refused(app: Quart, dialler_db: AsyncEngine) -> None:
    agent = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    client = app.test_client()
    assert await sign_in(client, agent) == 303
    for path in ("/supervisor/audit", "/supervisor/audit.csv", "/supervisor/audit.csv?actor=1"):
        response = await client.get(path)
        assert response.status_code == 403, path
