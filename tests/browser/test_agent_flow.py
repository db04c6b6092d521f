"""An agent's shift in a real browser: sign in, go Ready, claim, see why, call with the
simulated provider, send a magic link, record a callback, wrap up; then answer an SMS and
sign out. Screenshots of the console and the SMS pages are kept in test-artifacts/."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect
from sqlalchemy import select

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in


async def _sign_in(page: Page, live_app: LiveApp, email: str) -> None:
    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/console")


async def test_an_agents_call_from_claim_to_callback(live_app: LiveApp, page: Page) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Barclays")
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")

    await _sign_in(page, live_app, agent.email)
    await page.locator("#go-ready").click()
    await expect(page.locator("#agent-state-label")).to_have_text("Ready")

    await page.locator("#next-call").click()
    context = page.locator("#claimant-context")
    await expect(context).to_be_visible()
    await expect(page.locator("#claimant-name")).to_contain_text(f"Claimant{user_id}")
    await expect(page.locator("#why-this-call")).to_contain_text("unsigned")
    await expect(page.locator("#score-breakdown")).to_contain_text("Barclays")
    await expect(page.locator("#claims")).to_contain_text("Barclays")
    await expect(page.locator("#requirements")).to_be_visible()
    await screenshot(page, "console-claimed")

    await page.locator("#call-button").click()
    await expect(page.locator("#softphone-status")).to_contain_text("Ringing")
    await page.locator("#sim-answer").click()
    await expect(page.locator("#softphone-status")).to_contain_text("Connected")
    await page.locator("#magic-link-sms").click()
    await expect(page.locator("#magic-link-sent")).to_be_visible()
    await page.locator("#sim-hangup").click()
    await expect(page.locator("#softphone-status")).to_contain_text("Call ended")

    await page.locator("#disposition").select_option("callback_requested")
    await expect(page.locator("#callback-fields")).to_be_visible()
    day_options = page.locator("#callback-day option")
    await page.locator("#callback-day").select_option(index=await day_options.count() - 1)
    await expect(page.locator("#callback-time option").first).to_have_attribute(
        "value", re.compile(r"^\d{4}-")
    )
    await page.locator("#callback-time").select_option(index=0)
    await page.locator("#outcome-notes").fill("Asked us to ring back after work")
    await screenshot(page, "console-outcome")
    await page.locator("#save-outcome").click()
    await expect(page.locator("#wrap-up")).to_be_visible()
    await screenshot(page, "console-wrap-up")

    async with h.dialler.connect() as conn:
        call = (await conn.execute(select(db.calls).where(db.calls.c.user_id == user_id))).one()
        callback = (
            await conn.execute(select(db.callbacks).where(db.callbacks.c.user_id == user_id))
        ).one()
        links = (
            await conn.execute(select(db.magic_links).where(db.magic_links.c.user_id == user_id))
        ).all()
    assert call.disposition == "callback_requested" and call.agent_id == agent.id
    assert call.recording_notice_played
    assert callback.status == "pending" and callback.notes == "Asked us to ring back after work"
    assert len(links) == 1
    await task_in(h, user_id, "unsigned")  # back in the queue, not before the callback


async def test_an_agent_answers_an_sms(live_app: LiveApp, page: Page) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.OUTSTANDING)
    user_id = await add_claimant(h.replica, signed=True, pending=1)
    await start(h, user_id)
    await task_in(h, user_id, "outstanding")

    await _sign_in(page, live_app, agent.email)
    # the claimant the agent is working: an agent sees only the threads of their claimants
    await page.locator("#go-ready").click()
    await page.locator("#next-call").click()
    await expect(page.locator("#claimant-name")).to_contain_text(f"Claimant{user_id}")
    await page.goto(f"{live_app.url}/sms/{user_id}")
    await page.locator("#sms-simulate-body").fill("Which documents do you still need?")
    await page.locator("#sms-simulate").click()
    await expect(page.locator("#sms-messages li.sms.inbound")).to_contain_text("Which documents")

    await page.goto(f"{live_app.url}/sms")
    await expect(page.locator(f"#thread-{user_id}")).to_be_visible()
    await screenshot(page, "sms-inbox")
    await page.locator(f"#thread-{user_id} a.thread-link").click()
    await page.locator("#sms-body").fill("Hello, we still need your bank statements.")
    await page.locator("#sms-send").click()
    await expect(page.locator("#sms-notice")).to_have_text("Message sent.")
    await expect(page.locator("#sms-messages li.sms.outbound")).to_contain_text("bank statements")
    await screenshot(page, "sms-thread")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{live_app.url}/login")
