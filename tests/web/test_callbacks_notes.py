"""Booking a callback and adding a note without recording an outcome, over HTTP: from the
JSON API (`POST /api/claimants/<id>/callbacks` and `/notes`) and from the console (htmx
forms with CSRF). Both reach the claimant's workflow (`schedule_callback`, `add_note`); the
claim stays with the agent. A time outside the calling windows (here: the rules' bank
holiday) is refused: 409 with the reason and the next allowed times from the API, the form
again with the message from the console. Refusing agents who may not see the claimant is
tested over every claimant route in test_route_table.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from schemas import dialler_db as db
from tests.web.console_fixtures import (
    LONDON,
    Agent,
    World,
    claim,
    holiday,
    ready_claimant,
    signed_in_agent,
    task_of,
    w,
    world,
)

__all__ = ["w", "world"]  # the module's fixtures


def at_london(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), LONDON)


def tomorrow() -> date:
    return datetime.now(LONDON).date() + timedelta(days=1)


async def api_post(agent: Agent, path: str, payload: Any) -> Any:
    """The API with the agent's session cookie and CSRF header."""
    return await agent.client.post(path, json=payload, headers={"X-CSRF-Token": agent.token})


async def callbacks_of(w: World, user_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        table = db.callbacks
        query = select(table).where(table.c.user_id == user_id).order_by(table.c.id)
        return list((await conn.execute(query)).all())


async def notes_of(w: World, user_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        table = db.claimant_notes
        query = select(table).where(table.c.user_id == user_id).order_by(table.c.id)
        return list((await conn.execute(query)).all())


async def claimed(w: World) -> tuple[Agent, int]:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    return agent, user_id


# --- the API ------------------------------------------------------------------------------------


async def test_the_api_books_personal_and_shared_callbacks_and_adds_notes(w: World) -> None:
    agent, user_id = await claimed(w)
    when = at_london(tomorrow(), 10)
    personal = await api_post(
        agent,
        f"/api/claimants/{user_id}/callbacks",
        {"at": when.isoformat(), "notes": "after the school run"},
    )
    body = await personal.get_json()
    assert personal.status_code == 201, body
    assert body["user_id"] == user_id and body["owner_agent_id"] == agent.staff.id
    assert datetime.fromisoformat(body["at"]) == when
    shared_at = at_london(tomorrow(), 15)
    shared = await api_post(
        agent,
        f"/api/claimants/{user_id}/callbacks",
        {"at": shared_at.isoformat(), "personal": False},
    )
    assert shared.status_code == 201, await shared.get_json()
    assert (await shared.get_json())["owner_agent_id"] is None
    first, second = await callbacks_of(w, user_id)
    assert (first.status, first.owner_agent_id, first.notes) == (
        "cancelled",
        agent.staff.id,
        "after the school run",
    )  # a new callback replaces the pending one
    assert (second.status, second.owner_agent_id, second.scheduled_for) == (
        "pending",
        None,
        shared_at,
    )
    assert second.created_by == agent.staff.id

    note = await api_post(agent, f"/api/claimants/{user_id}/notes", {"text": "  Prefers email  "})
    noted = await note.get_json()
    assert note.status_code == 201, noted
    [row] = await notes_of(w, user_id)
    assert (noted["note_id"], row.body, row.agent_id) == (row.id, "Prefers email", agent.staff.id)
    # no outcome was needed: the agent still holds the claim
    task = await task_of(w, user_id)
    assert (task.status, task.claimed_by) == ("claimed", agent.staff.id)
    context = await (await agent.client.get(f"/api/claimants/{user_id}")).get_json()
    assert context["callback"]["owner_name"] is None  # the shared pool
    assert datetime.fromisoformat(context["callback"]["scheduled_for"]) == shared_at
    assert [n["body"] for n in context["notes"]] == ["Prefers email"]


async def test_the_api_refuses_a_callback_outside_the_windows_with_the_next_times(
    w: World,
) -> None:
    agent, user_id = await claimed(w)
    closed = at_london(holiday(), 11)
    response = await api_post(
        agent, f"/api/claimants/{user_id}/callbacks", {"at": closed.isoformat()}
    )
    body = await response.get_json()
    assert response.status_code == 409, body
    error = body["error"]
    assert error["code"] == "outside_calling_window"
    assert "outside the calling windows" in error["message"] and "bank holiday" in error["message"]
    offered = [datetime.fromisoformat(t) for t in error["next_allowed"]]
    # one a day, up to three, within the 7 days a callback may be booked ahead
    assert 1 <= len(offered) <= 3 and offered == sorted(offered)
    last_day = datetime.now(LONDON).date() + timedelta(days=6)
    assert all(t.astimezone(LONDON).date() <= last_day for t in offered)
    assert all(t > closed and t.astimezone(LONDON).date() != holiday() for t in offered)
    assert offered[0].astimezone(LONDON).date() == holiday() + timedelta(days=1)

    past = await api_post(
        agent,
        f"/api/claimants/{user_id}/callbacks",
        {"at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
    )
    past_error = (await past.get_json())["error"]
    assert past.status_code == 409 and "has passed" in past_error["message"]
    assert past_error["next_allowed"]
    far = await api_post(
        agent,
        f"/api/claimants/{user_id}/callbacks",
        {"at": at_london(tomorrow() + timedelta(days=30), 10).isoformat()},
    )
    assert far.status_code == 409 and "7 days ahead" in (await far.get_json())["error"]["message"]
    for edge in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):  # no UTC reading
        answer = await api_post(agent, f"/api/claimants/{user_id}/callbacks", {"at": edge})
        assert answer.status_code == 409, (edge, await answer.get_data(as_text=True))
    assert await callbacks_of(w, user_id) == []

    for path, payload, field in [
        ("callbacks", {"at": "2030-01-01T10:00:00"}, "at"),  # no UTC offset
        ("callbacks", {"at": closed.isoformat(), "owner": 1}, "owner"),
        ("notes", {"text": "   "}, "text"),
        ("notes", {"text": "x" * 4001}, "text"),
    ]:
        invalid = await api_post(agent, f"/api/claimants/{user_id}/{path}", payload)
        problem = await invalid.get_json()
        assert invalid.status_code == 400, (path, payload, problem)
        assert field in problem["error"]["fields"], problem
    assert await notes_of(w, user_id) == []


# --- the console ----------------------------------------------------------------------------------


async def test_the_console_books_a_callback_and_adds_a_note(w: World) -> None:
    agent, user_id = await claimed(w)
    panel = await agent.text(await agent.get(f"/console/claimants/{user_id}"))
    assert 'id="callback-form"' in panel and 'id="note-form"' in panel
    slot = at_london(tomorrow(), 14).astimezone(UTC).isoformat()
    assert f'value="{tomorrow().isoformat()}"' in panel
    booked = await agent.post(
        f"/console/claimants/{user_id}/callback",
        {
            "callback_day": tomorrow().isoformat(),
            "callback_at": slot,
            "owner": "shared",
            "notes": "ring the landline",
        },
    )
    page = await agent.text(booked)
    assert booked.status_code == 200, page
    assert 'id="callback-booked"' in page and "at 14:00 (shared" in page
    [callback] = await callbacks_of(w, user_id)
    assert (callback.owner_agent_id, callback.notes, callback.scheduled_for) == (
        None,
        "ring the landline",
        datetime.fromisoformat(slot),
    )
    personal = await agent.post(
        f"/console/claimants/{user_id}/callback",
        {"callback_day": tomorrow().isoformat(), "callback_at": slot, "owner": "personal"},
    )
    assert "(personal" in await agent.text(personal)
    assert (await callbacks_of(w, user_id))[-1].owner_agent_id == agent.staff.id

    added = await agent.post(f"/console/claimants/{user_id}/notes", {"text": "Wants a letter"})
    assert added.status_code == 200 and 'id="note-added"' in await agent.text(added)
    [note] = await notes_of(w, user_id)
    assert (note.body, note.agent_id) == ("Wants a letter", agent.staff.id)
    task = await task_of(w, user_id)
    assert (task.status, task.claimed_by) == ("claimed", agent.staff.id)  # no outcome needed
    panel = await agent.text(await agent.get(f"/console/claimants/{user_id}"))
    assert "Wants a letter" in panel


async def test_the_console_refuses_a_callback_outside_the_windows_with_the_next_times(
    w: World,
) -> None:
    agent, user_id = await claimed(w)
    closed = at_london(holiday(), 11)
    refused = await agent.post(
        f"/console/claimants/{user_id}/callback",
        {
            "callback_day": holiday().isoformat(),
            "callback_at": closed.astimezone(UTC).isoformat(),
            "owner": "personal",
            "notes": "keep me",
        },
    )
    page = await agent.text(refused)
    assert refused.status_code == 422, page
    assert 'id="callback-error"' in page and "outside the calling windows" in page
    assert 'id="callback-next-allowed"' in page
    day_after = holiday() + timedelta(days=1)
    assert f'datetime="{at_london(day_after, 0).astimezone(UTC).isoformat()}"' in page
    assert "keep me" in page  # what the agent typed is kept
    assert await callbacks_of(w, user_id) == []

    empty = await agent.post(f"/console/claimants/{user_id}/notes", {"text": "  "})
    assert empty.status_code == 422 and "Write the note first." in await agent.text(empty)
    unreadable = await agent.post(
        f"/console/claimants/{user_id}/callback", {"callback_at": "tomorrow-ish"}
    )
    assert unreadable.status_code == 422 and 'id="callback-error"' in await agent.text(unreadable)
    edge = await agent.post(
        f"/console/claimants/{user_id}/callback", {"callback_at": "0001-01-01T00:00:00+05:00"}
    )
    assert edge.status_code == 422 and "could not be read" in await agent.text(edge)
    assert await notes_of(w, user_id) == [] and await callbacks_of(w, user_id) == []
