"""The SMS pages over HTTP: the inbox (threads newest first, unread counts, names from the
replica), a thread (marks read, audited), replies through the shared outbox (CSRF, invalid
input re-rendered, opted-out claimants refused), the templates (document reminder, magic
link through the workflow) and the simulated claimant reply. An agent sees only the threads
of claimants they may see (here: through a personal callback, or as the agent who last
texted them); every claimant route refusing anyone else is tested over the whole route
table in test_route_table.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.sms_fixtures import (
    Client,
    Person,
    World,
    add_message,
    claimant_in_queue,
    rows,
    signed_in,
    suppress,
    world,
)
from tests.workflows.helpers import task_in

__all__ = ["world"]  # the module's fixture


def phone(n: int) -> str:
    return f"+4477009{n % 100000:05d}"


async def text(response: object) -> str:
    return str(await response.get_data(as_text=True))  # type: ignore[attr-defined]


async def callback_for(w: World, person: Person, user_id: int) -> None:
    """A personal callback: the claimant is theirs to see and text."""
    async with w.dialler.begin() as conn:
        await conn.execute(
            insert(db.callbacks).values(
                user_id=user_id,
                owner_agent_id=person.staff.id,
                created_by=person.staff.id,
                scheduled_for=datetime.now(UTC) + timedelta(days=1),
            )
        )


async def audit(w: World, action: str, agent_id: int) -> list[object]:
    return await rows(
        w.dialler,
        db.audit_log,
        db.audit_log.c.action == action,
        db.audit_log.c.actor_id == str(agent_id),
    )


async def test_signed_out_visitors_are_sent_to_sign_in(world: World) -> None:
    client = Client(world.app)
    page = await client.get("/sms", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/sms")
    api_like = await client.get("/sms/1")
    assert api_like.status_code == 401


async def test_inbox_lists_threads_newest_first_with_unread_counts(world: World) -> None:
    older = await add_claimant(world.replica, phone=phone(21001))
    newer = await add_claimant(world.replica, phone=phone(21002))
    await add_message(world, older, "First question", number=phone(21001))
    await add_message(world, older, "Anyone there?", number=phone(21001))
    await add_message(world, newer, "We sent your link", inbound=False, number=phone(21002))
    await add_message(world, None, "wrong number?", number="+447700921999")
    stranger = await add_claimant(world.replica, phone=phone(21012))
    await add_message(world, stranger, "Is anyone there?", number=phone(21012))

    agent = await signed_in(world)
    await callback_for(world, agent, older)
    async with world.dialler.begin() as conn:  # the agent wrote to `newer` last
        await conn.execute(
            db.sms_messages.update()
            .where(db.sms_messages.c.user_id == newer)
            .values(agent_id=agent.staff.id)
        )
    page = await text(await agent.get("/sms"))
    assert page.index(f'id="thread-{newer}"') < page.index(f'id="thread-{older}"')
    older_row = page[page.index(f'id="thread-{older}"') :]
    assert f"Claimant{older}" in older_row.split("</li>")[0]
    assert (
        '<span class="unread-count" aria-label="2 unread">2</span>' in older_row.split("</li>")[0]
    )
    newer_row = page[page.index(f'id="thread-{newer}"') :].split("</li>")[0]
    assert "unread-count" not in newer_row and "We wrote" in newer_row
    # not the threads of claimants they may not see, nor strangers' numbers
    assert f'id="thread-{stranger}"' not in page and "Is anyone there?" not in page
    assert "+447700921999" not in page
    viewed = (await audit(world, "viewed_sms_inbox", agent.staff.id))[-1]  # each view is kept
    assert older in viewed.detail["user_ids"] and newer in viewed.detail["user_ids"]  # type: ignore[attr-defined]
    assert stranger not in viewed.detail["user_ids"]  # type: ignore[attr-defined]

    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    everything = await text(await supervisor.get("/sms"))
    assert f'id="thread-{stranger}"' in everything
    assert 'id="sms-unknown"' in everything and "+447700921999" in everything


async def test_opening_a_thread_marks_it_read_and_is_audited(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(21003))
    await add_message(world, user_id, "Hello?", number=phone(21003))
    await add_message(world, user_id, "Can you call me", number=phone(21003))
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    response = await agent.get(f"/sms/{user_id}")
    assert response.status_code == 200
    page = await text(response)
    assert page.index("Hello?") < page.index("Can you call me")  # oldest first
    assert 'id="sms-reply-form"' in page and 'id="sms-body"' in page and 'id="sms-send"' in page
    unread = await rows(
        world.dialler,
        db.sms_messages,
        db.sms_messages.c.user_id == user_id,
        db.sms_messages.c.read_at.is_(None),
    )
    assert unread == []
    [viewed] = await audit(world, "viewed_sms_thread", agent.staff.id)
    assert viewed.subject_id == str(user_id)  # type: ignore[attr-defined]
    assert viewed.detail == {"messages": 2, "marked_read": 2}  # type: ignore[attr-defined]
    inbox = await text(await agent.get("/sms"))
    assert "unread-count" not in inbox.split(f'id="thread-{user_id}"')[1].split("</li>")[0]


async def test_an_unknown_claimant_is_404(world: World) -> None:
    for person in (await signed_in(world), await signed_in(world, AgentRole.SUPERVISOR, None)):
        assert (await person.get("/sms/999999999")).status_code == 404
        assert (await person.post("/sms/999999999/reply", {"body": "hi"})).status_code == 404


async def test_a_reply_is_sent_and_kept(world: World) -> None:
    number = phone(21004)
    user_id = await add_claimant(world.replica, phone=number)
    agent = await signed_in(world, AgentRole.SUPERVISOR, None)
    response = await agent.post(f"/sms/{user_id}/reply", {"body": "  We have your papers.  "})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/sms/{user_id}?sent=sms"
    [row] = await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id)
    assert (row.direction, row.body, row.agent_id, row.to_number) == (
        "outbound",
        "We have your papers.",
        agent.staff.id,
        number,
    )
    assert row.provider_sid.startswith("SMsim") and row.status == "sent"
    assert [m.body for m in world.sent_sms().sent if m.to_number == number] == [
        "We have your papers."
    ]
    page = await text(await agent.get(response.headers["Location"]))
    assert 'id="sms-notice"' in page and "Message sent." in page
    assert f"Sent by {agent.staff.role.value}" not in page  # the agent's name is shown
    assert "Test supervisor" in page


async def test_a_reply_without_the_csrf_token_is_refused(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(21005))
    agent = await signed_in(world)
    response = await agent.post(f"/sms/{user_id}/reply", {"body": "Hi"}, csrf=False)
    assert response.status_code == 403
    assert await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id) == []


async def test_invalid_replies_re_render_with_the_message(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(21006))
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    empty = await agent.post(f"/sms/{user_id}/reply", {"body": "   "})
    assert empty.status_code == 422
    page = await text(empty)
    assert 'id="sms-error"' in page and "Write a message before sending." in page
    long = "x" * 1601
    too_long = await agent.post(f"/sms/{user_id}/reply", {"body": long})
    assert too_long.status_code == 422
    page = await text(too_long)
    assert "at most 1600 characters" in page and long in page  # the text is kept for editing
    assert await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id) == []


async def test_an_opted_out_claimant_cannot_be_texted(world: World) -> None:
    number = phone(21007)
    user_id = await add_claimant(world.replica, phone=number)
    await suppress(world, "sms_stop", phone_number=number)
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    page = await text(await agent.get(f"/sms/{user_id}"))
    assert 'id="sms-opted-out"' in page and "opted out" in page
    assert 'id="sms-reply-form"' not in page
    response = await agent.post(f"/sms/{user_id}/reply", {"body": "Please reply"})
    assert response.status_code == 409
    assert "You cannot text them." in await text(response)
    assert await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id) == []
    assert all(m.to_number != number for m in world.sent_sms().sent)


async def test_the_document_reminder_lists_outstanding_documents(world: World) -> None:
    user_id = await add_claimant(world.replica, signed=True, pending=2, phone=phone(21008))
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    page = await text(await agent.get(f"/sms/{user_id}?template=documents"))
    body = re.search(r'<textarea id="sms-body"[^>]*>(.*?)</textarea>', page, re.S)
    assert body is not None
    assert body.group(1).startswith("Hi Test, this is Resolve My Claim.")
    assert "we still need bank statements." in body.group(1)
    assert 'id="sms-outstanding"' in page and "Still needed: bank statements." in page


async def test_the_magic_link_template_goes_through_the_workflow(world: World) -> None:
    number = phone(21009)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    response = await agent.post(f"/sms/{user_id}/magic-link", {"purpose": "signature"})
    assert response.status_code == 303, await text(response)
    assert response.headers["Location"] == f"/sms/{user_id}?sent=link"
    [row] = await rows(world.dialler, db.sms_messages, db.sms_messages.c.user_id == user_id)
    assert "sign your claim documents" in row.body and "[link " in row.body  # token redacted
    async with world.dialler.connect() as conn:
        created_by = await conn.scalar(
            select(db.magic_links.c.created_by).where(db.magic_links.c.user_id == user_id)
        )
    assert created_by == agent.staff.id
    assert "Magic link sent by SMS." in await text(await agent.get(response.headers["Location"]))
    bad = await agent.post(f"/sms/{user_id}/magic-link", {"purpose": "lottery"})
    assert bad.status_code == 422 and "Choose what the link is for." in await text(bad)


async def test_no_magic_link_without_running_outreach(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(21010))  # no workflow started
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    response = await agent.post(f"/sms/{user_id}/magic-link", {"purpose": "documents"})
    assert response.status_code == 409
    assert "no outreach running" in await text(response)


async def test_a_simulated_reply_is_handled_like_a_real_one(world: World) -> None:
    number = phone(21011)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    agent = await signed_in(world)
    await callback_for(world, agent, user_id)
    page = await text(await agent.get(f"/sms/{user_id}"))
    assert 'id="sms-simulate-form"' in page
    response = await agent.post(f"/sms/{user_id}/simulate-inbound", {"body": "Thanks!"})
    assert response.status_code == 303
    assert "Thanks!" in await text(await agent.get(f"/sms/{user_id}"))
    stop = await agent.post(f"/sms/{user_id}/simulate-inbound", {"body": "STOP"})
    assert stop.status_code == 303
    await task_in(world.harness, user_id, None)
    assert 'id="sms-opted-out"' in await text(await agent.get(f"/sms/{user_id}"))
