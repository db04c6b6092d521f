"""Queues and claimants for supervisors over HTTP: the queue list's contents, order, pages,
sorts and filters on fixed tasks (bad parameters a clear 400 or clamped, never a 500); the
lookup by id, phone in UK spellings and email, each audited once without the query; the
claimant page's sections and its audited view; and each supervisor action through its route,
refused with the message (422) when it cannot be done, with its audit row when it is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.recording_store import local_key_for, write_tone
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from schemas.outreach import CallbackRequest
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from tests.web.console_fixtures import (
    HTMX,
    World,
    claim,
    ready_claimant,
    services_of,
    signed_in_agent,
    w,
    world,
)
from tests.workflows.helpers import task_in, task_row
from web.temporal_links import workflow_url

__all__ = ["w", "world"]  # fixtures, imported for pytest

ROW = re.compile(r'<tr data-user-id="(\d+)"')
_TOKEN = re.compile(r'"X-CSRF-Token": "([0-9a-f]+)"')
BASE = 8_000_000  # the fixed tasks' user ids


class Supervisor:
    def __init__(self, staff: Staff, client: Client, token: str) -> None:
        self.staff, self.client, self.token = staff, client, token

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, headers={"Accept": "text/html"}, **kwargs)

    async def post(self, path: str, form: dict[str, str], *, htmx: bool = True) -> Any:
        headers = HTMX | {"X-CSRF-Token": self.token} if htmx else {}
        return await self.client.post(path, form=form | {"csrf_token": self.token}, headers=headers)


async def signed_in_supervisor(w: World) -> Supervisor:
    staff = await make_staff(w.dialler, AgentRole.SUPERVISOR, None)
    client = w.app.test_client()
    assert await sign_in(client, staff) == 303
    page = await (
        await client.get("/supervisor/claimants", headers={"Accept": "text/html"})
    ).get_data(as_text=True)
    found = _TOKEN.search(page)
    assert found, "no CSRF token on the lookup page"
    return Supervisor(staff, client, found.group(1))


async def text(response: Any) -> str:
    return str(await response.get_data(as_text=True))


async def audits(dialler: AsyncEngine, action: str, actor: int) -> list[Any]:
    async with dialler.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(db.audit_log)
                    .where(db.audit_log.c.action == action, db.audit_log.c.actor_id == str(actor))
                    .order_by(db.audit_log.c.id)
                )
            ).all()
        )


# --- the queue list ---------------------------------------------------------------------------


async def _fixed_tasks(w: World, agent: Staff) -> dict[str, int]:
    """Outstanding tasks: A ready (90), B ready (10), C waiting (50), D claimed (70), E
    withdrawn (paused), 55 more ready (1..55), and one unsigned task; created a minute apart
    in reverse order of their ids (so 'waiting since' differs from 'score')."""
    now = datetime.now(UTC)
    named = {"A": BASE + 1, "B": BASE + 2, "C": BASE + 3, "D": BASE + 4, "E": BASE + 5}
    rows: list[dict[str, Any]] = []

    def task(user_id: int, score: float, **values: Any) -> None:
        rows.append(
            {"user_id": user_id, "workflow_id": f"outreach-{user_id}", "queue": "outstanding",
             "score": score, "not_before": now - timedelta(hours=1),
             "not_before_reason": "can call now", "status": "ready", "version": 1,
             "ai_routed": False,
             "claimed_by": None, "claimed_at": None, "lease_expires_at": None,
             "created_at": now - timedelta(minutes=user_id - BASE),
             "score_breakdown": [{"name": "documents_outstanding", "contribution": score,
                                  "detail": "1 requirement pending"}]} | values
        )  # fmt: skip

    task(named["A"], 90, ai_routed=True)
    task(named["B"], 10)
    task(named["C"], 50, not_before=now + timedelta(hours=2),
         not_before_reason="cooldown after no_answer until later")  # fmt: skip
    task(named["D"], 70, status="claimed", claimed_by=agent.id, claimed_at=now,
         lease_expires_at=now + timedelta(minutes=20))  # fmt: skip
    task(named["E"], 60, status="withdrawn",
         not_before_reason="paused by a supervisor: complaint")  # fmt: skip
    for n in range(1, 56):
        task(BASE + 100 + n, n, not_before=now - timedelta(hours=2, minutes=n))
    task(BASE + 999, 99, queue="unsigned")
    async with w.dialler.begin() as conn:
        await conn.execute(delete(db.call_tasks))
        await conn.execute(insert(db.call_tasks), rows)
    return named


async def _listed(s: Supervisor, query: str, status: int = 200) -> list[int]:
    response = await s.get(f"/supervisor/queues/outstanding{query}")
    page = await text(response)
    assert response.status_code == status, page[:500]
    return [int(found) for found in ROW.findall(page)]


async def test_the_queue_list_filters_sorts_and_pages_fixed_tasks(w: World) -> None:
    agent = await make_staff(w.dialler, AgentRole.AGENT, Queue.OUTSTANDING)
    t = await _fixed_tasks(w, agent)
    s = await signed_in_supervisor(w)
    fillers = [BASE + 100 + n for n in range(55, 0, -1)]  # by score, best first

    # everything in the queue (ready and claimed), best score first, 50 a page
    # (a tie goes to the smaller id: C before the filler scored 50, B before the one at 10)
    by_score = [t["A"], t["D"], *fillers[:5], t["C"], *fillers[5:45], t["B"], *fillers[45:]]
    first, second = await _listed(s, ""), await _listed(s, "?page=2")
    assert first == by_score[:50] and second == by_score[50:]
    assert BASE + 999 not in first + second and t["E"] not in first + second
    assert await _listed(s, "?page=3") == []

    ready = [t["A"], *fillers[:45], t["B"], *fillers[45:48]]
    assert await _listed(s, "?status=ready") == ready
    assert await _listed(s, "?status=waiting") == [t["C"]]
    claimed = await text(await s.get("/supervisor/queues/outstanding?status=claimed"))
    assert ROW.findall(claimed) == [str(t["D"])] and "Test agent" in claimed
    withdrawn = await text(await s.get("/supervisor/queues/outstanding?status=withdrawn"))
    assert ROW.findall(withdrawn) == [str(t["E"])]
    assert "paused by a supervisor: complaint" in withdrawn

    # callable soonest first: the fillers (two hours ago and more, oldest first), then A,
    # B and D (an hour ago, by id), then C (in two hours)
    assert await _listed(s, "?sort=not_before") == fillers[:50]
    soonest_last = await _listed(s, "?sort=not_before&page=2")
    assert soonest_last == [*fillers[50:], t["A"], t["B"], t["D"], t["C"]]
    # waiting since: the row created first (the largest id) first
    assert (await _listed(s, "?sort=waiting_since"))[:3] == fillers[:3]
    assert (await _listed(s, "?sort=waiting_since&page=2"))[-4:] == [
        t["D"], t["C"], t["B"], t["A"]
    ]  # fmt: skip

    page = await text(await s.get("/supervisor/queues/outstanding"))
    assert f'href="/supervisor/claimants/{t["A"]}"' in page
    assert page.count(">AI's contact<") == 1  # A's, routed to the AI agent
    assert "documents outstanding" in page.lower() and "1 requirement pending" in page
    assert "/workflows?query=" in page and "OutreachQueue%20%3D%20%27outstanding%27" in page


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?sort=name", 400),
        ("?status=everything", 400),
        ("?page=abc", 400),
        ("?page=0", 400),
        ("?page=-1", 400),
        ("?page=" + "9" * 5000, 200),  # past the last page allowed: the last one, empty
        ("?page=99999999999999999999999", 200),
        ("?sort=score%00", 400),  # NUL: refused at the edge
    ],
)
async def test_bad_queue_parameters_are_refused_or_clamped(
    w: World, query: str, status: int
) -> None:
    s = await signed_in_supervisor(w)
    response = await s.get(f"/supervisor/queues/outstanding{query}")
    assert response.status_code == status, await text(response)


async def test_an_unknown_queue_is_404_and_agents_are_refused(w: World) -> None:
    s = await signed_in_supervisor(w)
    assert (await s.get("/supervisor/queues/everyone")).status_code == 404
    agent = await signed_in_agent(w)
    assert (await agent.get("/supervisor/queues/unsigned")).status_code == 403
    refused = await agent.post("/supervisor/claimants/lookup", {"by": "id", "q": "1"})
    assert refused.status_code == 403


# --- the lookup ---------------------------------------------------------------------------------


async def _lookup(s: Supervisor, by: str, query: str) -> Any:
    return await s.post("/supervisor/claimants/lookup", {"by": by, "q": query}, htmx=False)


@pytest.mark.parametrize(
    ("by", "spelling"),
    [
        ("id", "{id}"),
        ("phone", "+44{national}"),
        ("phone", "0{national}"),
        ("phone", "0{short} {rest}"),
        ("phone", "+44 (0){short} {rest}"),
        ("phone", "0044 {short}-{rest}"),
        ("phone", "44{national}"),
        ("email", "  T{id}@Example.COM "),
    ],
)
async def test_a_lookup_finds_the_claimant_and_is_audited_once(
    w: World, by: str, spelling: str
) -> None:
    user_id = await add_claimant(w.replica)
    national = f"77009{user_id % 100000:05d}"
    query = spelling.format(id=user_id, national=national, short=national[:4], rest=national[4:])
    s = await signed_in_supervisor(w)
    response = await _lookup(s, by, query)
    assert response.status_code == 303, await text(response)
    assert response.headers["Location"] == f"/supervisor/claimants/{user_id}"
    [row] = await audits(w.dialler, "claimant_lookup", s.staff.id)
    assert (row.subject_type, row.subject_id) == ("user", str(user_id))
    assert row.detail["by"] == by and row.detail["user_ids"] == [user_id]
    if by != "id":  # the number or address typed is never kept
        assert national not in str(row.detail) and "example" not in str(row.detail).lower()

    hx = await s.post("/supervisor/claimants/lookup", {"by": by, "q": query})
    assert hx.headers["HX-Redirect"] == f"/supervisor/claimants/{user_id}"


async def test_lookups_that_find_nothing_or_several_say_so_and_are_audited(w: World) -> None:
    phone = "+447700912345"
    first = await add_claimant(w.replica, phone=phone)
    second = await add_claimant(w.replica, phone=phone)
    s = await signed_in_supervisor(w)
    several = await _lookup(s, "phone", "07700 912345")
    assert several.status_code == 200
    page = await text(several)
    assert f"/supervisor/claimants/{first}" in page and f"/supervisor/claimants/{second}" in page
    assert "912345" not in page.split("lookup-matches")[0]  # the query is not shown back

    cases = [
        ("id", "999999999", "No claimant matches"),
        ("id", "9" * 40, "whole number"),  # past any database id
        ("id", "12a", "whole number"),
        ("phone", "12345", "not a phone number"),
        ("email", "nobody", "not an email"),
        ("email", "nobody@nowhere.example", "No claimant matches"),
        ("email", "x" * 300 + "@example.com", "too long"),
        ("id", "", "Type what to look up"),
        ("name", "Smith", "by id, phone or email"),
    ]
    for by, query, message in cases:
        response = await _lookup(s, by, query)
        assert response.status_code == 422, (by, query)
        assert message in await text(response), (by, query)
    rows = await audits(w.dialler, "claimant_lookup", s.staff.id)
    assert len(rows) == 1 + len(cases) - 1  # every lookup but the unknown kind
    assert rows[0].detail["user_ids"] == sorted([first, second]) and rows[0].subject_id is None
    assert all("nowhere" not in str(r.detail) for r in rows)

    nul = await _lookup(s, "email", "a\x00@example.com")
    assert nul.status_code == 400  # refused at the edge, before any lookup
    assert len(await audits(w.dialler, "claimant_lookup", s.staff.id)) == len(rows)


# --- the claimant's page -------------------------------------------------------------------------


async def _history(w: World, user_id: int, agent: Staff) -> dict[str, int]:
    """A recorded call with a transcript, a text, a used magic link and the conversion it
    brought, and an imported suppression of their address."""
    now = datetime.now(UTC)
    key = local_key_for(f"RE{user_id:032d}")
    write_tone(w.settings.recordings_dir / key, 1)
    async with w.dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id, agent_id=agent.id, queue="unsigned", provider="simulated",
                    to_number="+447700900123", status="completed", disposition="no_answer",
                    started_at=now - timedelta(days=2), recording_sid=f"RE{user_id:032d}",
                    recording_store="local", recording_key=key, recording_duration_seconds=1,
                    transcript="Agent: Hello, this is Resolve My Claim about your form.")
            .returning(db.calls.c.id)
        )  # fmt: skip
        await conn.execute(
            insert(db.sms_messages).values(
                user_id=user_id, direction="inbound", provider_sid=f"SM{user_id:032d}",
                from_number="+447700900123", to_number="+447700900000",
                body="Please ring me after six", status="received",
            )
        )  # fmt: skip
        link_id = await conn.scalar(
            insert(db.magic_links)
            .values(user_id=user_id, token_hash=f"{user_id:064d}", channel="sms",
                    purpose="signature", created_by=agent.id, expires_at=now + timedelta(days=1),
                    used_at=now - timedelta(hours=1), clicks=2)
            .returning(db.magic_links.c.id)
        )  # fmt: skip
        events = [{"link_id": link_id, "event": e} for e in ("sent", "opened", "used")]
        await conn.execute(insert(db.magic_link_events), events)
        await conn.execute(
            insert(db.conversions).values(
                event_id=f"test:{user_id}", subject_key=f"signature:{user_id}", user_id=user_id,
                kind="signed", occurred_at=now - timedelta(minutes=30), contact_kind="call",
                contact_ref=str(call_id), contact_at=now - timedelta(days=2), agent_id=agent.id,
                queue="unsigned", link_id=link_id,
            )
        )  # fmt: skip
        await conn.execute(
            insert(db.suppressions).values(
                email=f"t{user_id}@example.com",
                reason="list",
                source="import:test",
            )
        )
    return {"call_id": int(call_id or 0), "link_id": int(link_id or 0)}


async def test_the_claimant_page_shows_every_section_and_is_audited(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await make_staff(w.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    made = await _history(w, user_id, agent)
    s = await signed_in_supervisor(w)

    response = await s.get(f"/supervisor/claimants/{user_id}")
    page = await text(response)
    assert response.status_code == 200, page[:500]
    assert f"Claimant{user_id}" in page and f"t{user_id}@example.com" in page
    sections = ("why-this-call", "score-breakdown", "claims", "call-history", "sms-thread",
                "callback-info", "claimant-notes", "transcripts", "consents", "suppressions",
                "magic-links", "conversions", "supervisor-actions")  # fmt: skip
    for section in sections:
        assert f'id="{section}"' in page, section
    assert "Signature missing" in page  # the stage
    assert f'src="/calls/{made["call_id"]}/recording"' in page  # audited playback
    assert "this is Resolve My Claim about your form" in page  # the transcript
    assert "Please ring me after six" in page
    assert 'data-channel="live_call"' in page and "in force" in page
    assert "Suppressed:" in page and "import:test" in page
    assert f'data-link-id="{made["link_id"]}"' in page and "used" in page
    assert "Signed" in page
    assert f'href="{workflow_url(w.settings, user_id)}"' in page
    assert 'id="workflow-status"' in page and "running" in page

    viewed = await audits(w.dialler, "viewed_personal_data", s.staff.id)
    assert [(a.subject_id, a.detail["route"]) for a in viewed] == [
        (str(user_id), "supervisor_claimants.claimant")
    ]
    [context] = await audits(w.dialler, "viewed_claimant", s.staff.id)
    assert context.detail["purpose"] == "supervisor"

    played = await s.client.get(f"/calls/{made['call_id']}/recording")
    assert played.status_code == 200 and (await played.get_data())[:4] == b"RIFF"
    assert len(await audits(w.dialler, "played_recording", s.staff.id)) == 1


async def test_a_claimant_who_is_not_there_is_404(w: World) -> None:
    s = await signed_in_supervisor(w)
    assert (await s.get("/supervisor/claimants/999999999")).status_code == 404
    assert (await s.get("/supervisor/claimants/" + "9" * 30)).status_code == 404
    assert (await s.get("/supervisor/claimants/0")).status_code == 404


# --- supervisor actions -------------------------------------------------------------------------


async def test_pause_and_resume_through_the_page(w: World) -> None:
    user_id = await ready_claimant(w)
    s = await signed_in_supervisor(w)
    base = f"/supervisor/claimants/{user_id}"

    empty = await s.post(f"{base}/pause", {"reason": "  "})
    assert empty.status_code == 422 and "needs a reason" in await text(empty)
    paused = await s.post(f"{base}/pause", {"reason": "complaint under review"})
    body = await text(paused)
    assert paused.status_code == 200, body
    assert 'id="supervisor-actions"' in body and "Outreach paused" in body
    assert 'id="pause-standing"' in body and "complaint under review" in body
    assert 'id="resume-form"' in body
    row = await task_in(w.harness, user_id, None)
    assert row.not_before_reason == "paused by a supervisor: complaint under review"
    again = await s.post(f"{base}/pause", {"reason": "twice"})
    assert again.status_code == 422 and "already paused" in await text(again)

    page = await text(await s.get(base))
    assert 'id="paused-flag"' in page

    resumed = await s.post(f"{base}/resume", {"reason": "complaint closed"})
    assert resumed.status_code == 200 and "Outreach resumed" in await text(resumed)
    await task_in(w.harness, user_id, "unsigned")
    not_paused = await s.post(f"{base}/resume", {"reason": "again"}, htmx=False)
    assert not_paused.status_code == 422 and "not paused" in await text(not_paused)

    [p] = await audits(w.dialler, "outreach_paused", s.staff.id)
    [r] = await audits(w.dialler, "outreach_resumed", s.staff.id)
    assert (p.subject_id, p.detail["reason"]) == (str(user_id), "complaint under review")
    assert (r.subject_id, r.detail["reason"]) == (str(user_id), "complaint closed")


async def test_a_supervisor_releases_an_agents_claim(w: World) -> None:
    user_id = await ready_claimant(w)
    s = await signed_in_supervisor(w)
    base = f"/supervisor/claimants/{user_id}"
    nothing = await s.post(f"{base}/release", {"reason": "stuck", "holder": ""})
    assert nothing.status_code == 422 and "nothing to release" in await text(nothing)
    junk = await s.post(f"{base}/release", {"reason": "stuck", "holder": "x1"})
    assert junk.status_code == 422

    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    await task_in(w.harness, user_id, "unsigned", status="claimed")
    panel = await text(await s.get(base))
    assert f'name="holder" value="{agent.staff.id}"' in panel

    released = await s.post(f"{base}/release", {"reason": "agent went home",
                                                 "holder": str(agent.staff.id)})  # fmt: skip
    assert released.status_code == 200, await text(released)
    assert f"Claim taken back from agent {agent.staff.id}" in await text(released)
    row = await task_in(w.harness, user_id, "unsigned")
    assert row.claimed_by is None
    [audit] = await audits(w.dialler, "claim_released_by_supervisor", s.staff.id)
    assert audit.detail["agent_id"] == str(agent.staff.id)
    assert audit.detail["reason"] == "agent went home"


async def test_a_supervisor_moves_a_callback_and_shares_it(w: World) -> None:
    user_id = await ready_claimant(w)
    owner = await make_staff(w.dialler, AgentRole.AGENT, Queue.CALLBACK)
    other = await make_staff(w.dialler, AgentRole.AGENT, Queue.CALLBACK)
    s = await signed_in_supervisor(w)
    base = f"/supervisor/claimants/{user_id}"
    none_yet = await s.post(f"{base}/callback", {"owner": str(other.id)})
    assert none_yet.status_code == 422 and "no pending callback" in await text(none_yet)

    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    claims = services_of(w.app).claim_service()
    await claims.schedule_callback(
        user_id, CallbackRequest(owner.id, at, "ring after six", owner_agent_id=owner.id)
    )
    for refused_owner in ("", "abc", str(s.staff.id), "9" * 30):
        refused = await s.post(f"{base}/callback", {"owner": refused_owner})
        assert refused.status_code == 422, refused_owner

    moved = await s.post(f"{base}/callback", {"owner": str(other.id)})
    assert moved.status_code == 200, await text(moved)
    assert f"now agent {other.id}" in await text(moved)
    async with w.dialler.connect() as conn:
        [pending] = (
            await conn.execute(
                select(db.callbacks).where(
                    db.callbacks.c.user_id == user_id, db.callbacks.c.status == "pending"
                )
            )
        ).all()
    assert (pending.owner_agent_id, pending.scheduled_for, pending.notes) == (
        other.id, at, "ring after six"
    )  # fmt: skip

    shared = await s.post(f"{base}/callback", {"owner": "shared"}, htmx=False)
    assert shared.status_code == 303
    moves = await audits(w.dialler, "callback_reassigned", s.staff.id)
    assert [m.detail for m in moves] == [
        {"from_agent_id": str(owner.id), "to_agent_id": str(other.id)},
        {"from_agent_id": str(other.id), "to_agent_id": "shared"},
    ]


async def test_a_supervisor_adds_a_note(w: World) -> None:
    user_id = await ready_claimant(w)
    s = await signed_in_supervisor(w)
    base = f"/supervisor/claimants/{user_id}"
    for bad in ("", "   ", "x" * 4001):
        refused = await s.post(f"{base}/notes", {"text": bad})
        assert refused.status_code == 422
    added = await s.post(f"{base}/notes", {"text": "Spoke to the complaints team."})
    assert added.status_code == 200 and "Note added" in await text(added)
    async with w.dialler.connect() as conn:
        notes = (
            await conn.execute(
                select(db.claimant_notes.c.agent_id, db.claimant_notes.c.body).where(
                    db.claimant_notes.c.user_id == user_id
                )
            )
        ).all()
    assert [tuple(n) for n in notes] == [(s.staff.id, "Spoke to the complaints team.")]
    [audit] = await audits(w.dialler, "supervisor_note_added", s.staff.id)
    assert audit.subject_id == str(user_id) and "complaints" not in str(audit.detail)
    page = await text(await s.get(base))
    assert "Spoke to the complaints team." in page


async def test_actions_on_a_claimant_without_outreach_are_refused_not_500(w: World) -> None:
    """No workflow runs for this claimant: every action says so (422)."""
    user_id = await add_claimant(w.replica)
    s = await signed_in_supervisor(w)
    base = f"/supervisor/claimants/{user_id}"
    for action, form in (("pause", {"reason": "r"}), ("resume", {"reason": "r"}),
                         ("release", {"reason": "r"}), ("callback", {"owner": "shared"}),
                         ("notes", {"text": "t"})):  # fmt: skip
        response = await s.post(f"{base}/{action}", form)
        assert response.status_code == 422, action
        assert "no outreach running" in await text(response), action
    agent = await signed_in_agent(w)
    assert (await agent.post(f"{base}/pause", {"reason": "r"})).status_code == 403
    async with w.dialler.connect() as conn:
        count = await conn.scalar(
            select(func.count()).where(
                db.audit_log.c.subject_id == str(user_id),
                db.audit_log.c.action.in_(["outreach_paused", "supervisor_note_added"]),
            )
        )
    assert count == 0
    assert await task_row(w.harness, user_id) is None
