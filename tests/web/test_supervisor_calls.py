"""The supervisors' calls list (/supervisor/calls) and one call (/supervisor/calls/<id>):
filters give exactly the expected calls on fixed data (UK days across midnight in summer
time), keyset paging stays put while calls are added, bad filters re-render the form with
a message (422) and never a 500, agents are refused, recordings play through the audited
route, and opening a call's transcript is audited."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.recording_store import local_key_for, write_tone
from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.conftest import free_port
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from web import create_app
from web.services import EXTENSION_KEY

UK = ZoneInfo("Europe/London")
ROW = re.compile(r'<tr data-call-id="(\d+)"')
_years = itertools.count(2012)  # each test's calls on days of their own
_numbers = itertools.count(1)


def fresh_year() -> int:
    return next(_years)


async def ai_agent(dialler: AsyncEngine, name: str = "Voice bot") -> int:
    async with dialler.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=f"bot{next(_numbers)}@ai.test.rmc", display_name=name, role="agent",
                    queue="unsigned", password_hash=None, is_ai=True)
            .returning(db.agents.c.id)
        )  # fmt: skip
    return int(agent_id or 0)


async def add_call(
    dialler: AsyncEngine,
    *,
    at: datetime,
    agent_id: int | None,
    queue: str = "unsigned",
    disposition: str | None = None,
    user_id: int | None = None,
    abandoned: bool = False,
    **values: Any,
) -> int:
    async with dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id or 900_000 + next(_numbers), agent_id=agent_id, queue=queue,
                    provider="simulated", to_number="+447700900123", status="completed",
                    started_at=at, duration_seconds=61, disposition=disposition,
                    abandoned=abandoned, **values)
            .returning(db.calls.c.id)
        )  # fmt: skip
    return int(call_id or 0)


async def supervisor_client(app: Quart, dialler: AsyncEngine) -> tuple[Client, Staff]:
    supervisor = await make_staff(dialler, AgentRole.SUPERVISOR, None)
    client = app.test_client()
    assert await sign_in(client, supervisor) == 303
    return client, supervisor


async def listed(client: Client, query: str) -> list[int]:
    response = await client.get(f"/supervisor/calls?{query}", headers={"Accept": "text/html"})
    page = await response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    return [int(found) for found in ROW.findall(page)]


def uk(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UK)


@dataclass
class FixedCalls:
    person: Staff
    bot: int
    day: date
    ids: dict[str, int]


async def fixed_calls(dialler: AsyncEngine) -> FixedCalls:
    """Four calls over three summer days (BST: UK midnight is 23:00 UTC) by a person and an
    AI agent, and one by someone else."""
    day = date(fresh_year(), 7, 1)
    person = await make_staff(dialler, AgentRole.AGENT, Queue.UNSIGNED)
    bot = await ai_agent(dialler)
    other = await make_staff(dialler, AgentRole.AGENT, Queue.CALLBACK)
    second, third = day + timedelta(days=1), day + timedelta(days=2)
    ids = {
        "p1": await add_call(dialler, at=uk(day, 10), agent_id=person.id,
                             disposition="no_answer"),
        "p2": await add_call(dialler, at=uk(second, 9), agent_id=person.id, queue="callback",
                             disposition="promised_to_sign"),
        # 23:30 BST is 22:30 UTC: still the second day in the UK
        "b1": await add_call(dialler, at=uk(second, 23, 30), agent_id=bot,
                             disposition="no_answer"),
        # 00:30 BST on the third day is 23:30 UTC on the second
        "b2": await add_call(dialler, at=uk(third, 0, 30), agent_id=bot, queue="outstanding",
                             abandoned=True),
        "o1": await add_call(dialler, at=uk(second, 12), agent_id=other.id, queue="callback",
                             disposition="not_interested"),
    }  # fmt: skip
    return FixedCalls(person, bot, day, ids)


async def test_filters_return_exactly_the_expected_calls(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    f = await fixed_calls(dialler_db)
    ids = f.ids
    days = f"from={f.day}&to={f.day + timedelta(days=2)}"
    second = f.day + timedelta(days=1)
    third = f.day + timedelta(days=2)
    assert await listed(client, f"agent={f.person.id}") == [ids["p2"], ids["p1"]]
    assert await listed(client, f"agent={f.bot}") == [ids["b2"], ids["b1"]]
    assert await listed(client, f"{days}") == [
        ids["b2"],
        ids["b1"],
        ids["o1"],
        ids["p2"],
        ids["p1"],
    ]
    assert await listed(client, f"{days}&ai=1") == [ids["b2"], ids["b1"]]
    assert await listed(client, f"agent={f.person.id}&ai=1") == []  # a person is no AI
    assert await listed(client, f"{days}&outcome=no_answer") == [ids["b1"], ids["p1"]]
    assert await listed(client, f"{days}&outcome=none") == [ids["b2"]]
    assert await listed(client, f"{days}&queue=callback") == [ids["o1"], ids["p2"]]
    assert await listed(client, f"from={second}&to={second}") == [ids["b1"], ids["o1"], ids["p2"]]
    assert await listed(client, f"from={third}&to={third}") == [ids["b2"]]
    assert await listed(client, f"from={f.day}&to={f.day}&agent={f.person.id}") == [ids["p1"]]
    assert await listed(client, f"{days}&agent={f.bot}&queue=outstanding&outcome=none&ai=1") == [
        ids["b2"]
    ]


async def test_each_row_shows_the_call(app: Quart, dialler_db: AsyncEngine) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    f = await fixed_calls(dialler_db)
    response = await client.get(f"/supervisor/calls?agent={f.bot}")
    page = await response.get_data(as_text=True)
    b2 = page[page.index(f'data-call-id="{f.ids["b2"]}"') :]
    b2 = b2[: b2.index("</tr>")]
    assert "Voice bot" in b2 and ">AI<" in b2
    assert "Outstanding documents" in b2  # the queue
    assert "1m 01s" in b2  # the length
    assert "Abandoned" in b2
    assert "00:30" in b2  # UK time
    assert 'href="/supervisor/claimants/' in b2 and f'href="/supervisor/calls/{f.ids["b2"]}"' in b2
    assert "<audio" not in b2  # nothing recorded


async def test_recordings_play_from_the_list_and_transcripts_open_audited(
    app: Quart, dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    client, supervisor = await supervisor_client(app, dialler_db)
    agent = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(replica, signed=False, pending=1)
    key = local_key_for(f"RE{user_id:032d}")
    write_tone(app.extensions[EXTENSION_KEY].settings.recordings_dir / key, 1)
    at = datetime(fresh_year(), 3, 2, 11, tzinfo=UTC)
    recorded = await add_call(
        dialler_db, at=at, agent_id=agent.id, user_id=user_id, disposition="completed",
        recording_sid=f"RE{user_id:032d}", recording_store="local", recording_key=key,
        recording_duration_seconds=1, transcript="Agent: Hello <b>there</b>\nClaimant: Hi",
    )  # fmt: skip
    deleted = await add_call(
        dialler_db, at=at - timedelta(hours=1), agent_id=agent.id, user_id=user_id,
        recording_sid="RE-gone", recording_store="local", recording_key="gone.wav",
        recording_deleted_at=at,
    )  # fmt: skip
    page = await (await client.get(f"/supervisor/calls?agent={agent.id}")).get_data(as_text=True)
    assert ROW.findall(page) == [str(recorded), str(deleted)]
    assert (
        f'<audio class="call-recording" controls preload="none" src="/calls/{recorded}/recording"'
        in page
    )
    assert f"/calls/{deleted}/recording" not in page  # deleted: nothing to play
    assert f'href="/supervisor/calls/{recorded}#transcript">Read</a>' in page
    assert "Hello" not in page  # the transcript is only on the audited call page

    # the player's source streams the recording, audited as played by the supervisor
    played = await client.get(f"/calls/{recorded}/recording")
    assert played.status_code == 200 and (await played.get_data())[:4] == b"RIFF"

    before = await _viewed(dialler_db, supervisor.id, user_id)
    response = await client.get(f"/supervisor/calls/{recorded}")
    detail = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Claimant{user_id}" in detail  # who was called, from the replica
    assert "Agent: Hello &lt;b&gt;there&lt;/b&gt;" in detail  # escaped, never markup
    assert "<b>there</b>" not in detail
    assert f'src="/calls/{recorded}/recording"' in detail
    viewed = (await _viewed(dialler_db, supervisor.id, user_id))[len(before) :]
    assert [(row.detail["route"], row.detail["call_id"]) for row in viewed] == [
        ("supervisor_calls.call_detail", recorded)
    ]
    deleted_page = await (await client.get(f"/supervisor/calls/{deleted}")).get_data(as_text=True)
    assert "Deleted on" in deleted_page and "/recording" not in deleted_page.split("Recording")[-1]


async def _viewed(dialler: AsyncEngine, actor_id: int, user_id: int) -> Sequence[Any]:
    async with dialler.connect() as conn:
        rows = await conn.execute(
            select(db.audit_log)
            .where(db.audit_log.c.action == "viewed_personal_data",
                   db.audit_log.c.actor_id == str(actor_id),
                   db.audit_log.c.subject_id == str(user_id))
            .order_by(db.audit_log.c.id)
        )  # fmt: skip
        return rows.all()


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


async def test_paging_is_stable_while_calls_are_added(app: Quart, dialler_db: AsyncEngine) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    agent = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    start = datetime(fresh_year(), 5, 1, 9, tzinfo=UTC)
    expected: list[tuple[datetime, int]] = []
    for n in range(120):
        at = start + timedelta(minutes=n // 3)  # three calls at each minute: ties on the time
        expected.append((at, await add_call(dialler_db, at=at, agent_id=agent.id)))
    newest_first = [call_id for _, call_id in sorted(expected, reverse=True)]

    first, links1 = await _page(client, f"/supervisor/calls?agent={agent.id}")
    assert first == newest_first[:50] and "newer" not in links1
    second, links2 = await _page(client, links1["older"])
    assert second == newest_first[50:100]
    # a call arrives while the supervisor reads: the pages already reached stay put
    await add_call(dialler_db, at=start + timedelta(days=1), agent_id=agent.id)
    third, links3 = await _page(client, links2["older"])
    assert third == newest_first[100:] and "older" not in links3
    assert (await _page(client, links1["older"]))[0] == second
    back, back_links = await _page(client, links3["newer"])
    assert back == second
    back_to_first, _ = await _page(client, back_links["newer"])
    assert back_to_first == newest_first[:50]  # the page before it, not the new call


async def test_bad_filters_re_render_the_form_with_a_message(
    app: Quart, dialler_db: AsyncEngine
) -> None:
    client, _ = await supervisor_client(app, dialler_db)
    cases = {
        "from=99999-01-01": "A day as YYYY-MM-DD",
        "to=2026-02-30": "A day as YYYY-MM-DD",
        "from=2026-03-02&to=2026-03-01": "The last day is before the first.",
        f"agent={2**63}": "Choose an agent from the list.",
        f"agent={2**63 - 1}": "No such agent",  # a bigint, but nobody's
        "agent=-1": "Choose an agent from the list.",
        "agent=" + "9" * 5000: "At most 254 characters.",
        "outcome=sold": "Choose an outcome from the list.",
        "queue=vip": "Choose a queue from the list.",
        "before=123": "That page link is not valid",
        f"before=1772000000000000.{2**64}": "That page link is not valid",
        "after=99999999999999999.1": "That page link is not valid",
    }
    for query, message in cases.items():
        response = await client.get(f"/supervisor/calls?{query}", headers={"Accept": "text/html"})
        page = await response.get_data(as_text=True)
        assert response.status_code == 422, (query, page[:500])
        assert message in page, query
        assert '<form class="filters review-filters"' in page  # the form, to fix it
        assert 'id="calls-table"' not in page
    # what was typed comes back escaped
    response = await client.get("/supervisor/calls?from=<script>alert(1)</script>")
    page = await response.get_data(as_text=True)
    assert response.status_code == 422
    assert "&lt;script&gt;" in page and "<script>alert(1)" not in page
    # a NUL byte never reaches the view or the database
    for query in ("agent=1%00", "from=2026-01-01%00", "before=%00"):
        response = await client.get(f"/supervisor/calls?{query}")
        assert response.status_code == 400, query
        body = await response.get_json()
        assert body["error"]["code"] == "validation_error"
    # a call id past the bigint is no call (404), not an overflow
    assert (await client.get(f"/supervisor/calls/{2**63}")).status_code == 404
    assert (await client.get(f"/supervisor/calls/{2**63 - 1}")).status_code == 404


async def test_agents_are_refused(app: Quart, dialler_db: AsyncEngine) -> None:
    agent = await make_staff(dialler_db, AgentRole.AGENT, Queue.UNSIGNED)
    call_id = await add_call(dialler_db, at=datetime(fresh_year(), 1, 5, tzinfo=UTC),
                             agent_id=agent.id)  # fmt: skip
    client = app.test_client()
    assert await sign_in(client, agent) == 303
    for path in ("/supervisor/calls", f"/supervisor/calls/{call_id}"):
        response = await client.get(path)
        assert response.status_code == 403, path


async def test_a_call_opens_without_the_name_while_the_replica_is_away(
    web_settings: Settings, dialler_db: AsyncEngine
) -> None:
    away = web_settings.model_copy(
        update={"replica_database_url": f"mysql+aiomysql://root@127.0.0.1:{free_port()}/gone"}
    )
    app = create_app(away)
    async with app.test_app():
        client, _ = await supervisor_client(app, dialler_db)
        call_id = await add_call(dialler_db, at=datetime(fresh_year(), 4, 4, tzinfo=UTC),
                                 agent_id=None, transcript="Claimant: call me later")  # fmt: skip
        response = await client.get(f"/supervisor/calls/{call_id}")
        page = await response.get_data(as_text=True)
        assert response.status_code == 200
        assert 'id="name-unavailable"' in page and "call me later" in page
