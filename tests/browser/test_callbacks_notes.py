"""In a real browser: an agent claims a claimant, then books a shared callback and adds a note
from the console without recording an outcome; both forms answer in place (htmx, CSRF).
A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import re
from datetime import datetime

from playwright.async_api import Page, expect
from sqlalchemy import select

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in


async def test_an_agent_books_a_callback_and_adds_a_note(live_app: LiveApp, page: Page) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/console")
    await page.locator("#go-ready").click()
    await page.locator("#next-call").click()
    await expect(page.locator("#claimant-name")).to_contain_text(f"Claimant{user_id}")

    form = page.locator("#callback-form")
    await expect(form).to_be_visible()
    # the second day offered (so the times are not running out today), its first time
    first_time = page.locator("#booking-time option").first
    today_first = await first_time.get_attribute("value")
    await page.locator("#booking-day").select_option(index=1)
    # wait for that day's times to be swapped in (htmx) before choosing one
    await expect(first_time).not_to_have_attribute("value", today_first or "")
    await expect(first_time).to_have_attribute("value", re.compile(r"^\d{4}-"))
    await page.locator("#booking-time").select_option(index=0)
    chosen_at = await page.locator("#booking-time").input_value()
    await page.locator("#callback-shared").check()
    await page.locator("#booking-notes").fill("Ring the landline")
    await page.locator("#book-callback").click()
    await expect(page.locator("#callback-booked")).to_contain_text("Callback booked for")
    await expect(page.locator("#callback-booked")).to_contain_text("shared")

    await page.locator("#note-text").fill("Prefers letters to email")
    await page.locator("#add-note").click()
    await expect(page.locator("#note-added")).to_have_text("Note added.")
    await expect(page.locator("#claimant-context")).to_be_visible()  # still the claim panel
    await screenshot(page, "console-callback-and-note")

    async with h.dialler.connect() as conn:
        callback = (
            await conn.execute(select(db.callbacks).where(db.callbacks.c.user_id == user_id))
        ).one()
        note = (
            await conn.execute(
                select(db.claimant_notes).where(db.claimant_notes.c.user_id == user_id)
            )
        ).one()
        task = (
            await conn.execute(select(db.call_tasks).where(db.call_tasks.c.user_id == user_id))
        ).one()
    assert callback.status == "pending" and callback.owner_agent_id is None
    assert callback.scheduled_for == datetime.fromisoformat(chosen_at)
    assert callback.notes == "Ring the landline"
    assert (note.body, note.agent_id) == ("Prefers letters to email", agent.id)
    assert (task.status, task.claimed_by) == ("claimed", agent.id)  # no outcome was recorded
