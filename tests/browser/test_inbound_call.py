"""A claimant rings back, in a real browser: an agent is Ready on their console; the claimant
they called earlier rings the dialler's number (the signed inbound webhook, over HTTP, as
Twilio sends it); the console pops "Incoming call from <claimant>" with the claimant's
context, without a reload; the agent answers and hangs up on the simulated softphone and is
Ready again. A screenshot of the popped console is kept in test-artifacts/."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import insert, select

from domain.phones import phone_key
from schemas import dialler_db as db
from schemas import replica
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in
from web.inbound_voice import INBOUND_PATH
from web.twilio_signature import public_url, sign

LIVE = 5_000  # ms: the pop comes over the live stream


async def _ring(live_app: LiveApp, number: str) -> str:
    """The claimant's call reaches Twilio, which asks the app what to do: the TwiML."""
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": "CA" + secrets.token_hex(16),
        "From": number,
        "To": live_app.settings.twilio_from_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    url = public_url(live_app.settings, INBOUND_PATH)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            url, data=params, headers={"X-Twilio-Signature": sign(live_app.settings, url, params)}
        )
    assert response.status_code == 200, response.text
    return response.text


async def test_the_console_pops_the_claimants_context_when_they_ring_back(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Barclays")
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")
    async with h.replica.connect() as conn:
        number = str(
            await conn.scalar(
                select(replica.users.c.phone_number).where(replica.users.c.id == user_id)
            )
        )
    async with h.dialler.begin() as conn:  # the agent called them this morning
        await conn.execute(
            insert(db.calls).values(
                user_id=user_id, agent_id=agent.id, provider="simulated", to_number=number,
                phone_key=phone_key(number), status="no-answer", disposition="no_answer",
                started_at=datetime.now(UTC) - timedelta(hours=3),
            )
        )  # fmt: skip

    await page.add_init_script(
        "window.liveOpen = false;"
        "document.addEventListener('htmx:sseOpen', function () { window.liveOpen = true; });"
    )
    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/console")
    await page.locator("#go-ready").click()
    await expect(page.locator("#agent-state-label")).to_have_text("Ready")
    await page.wait_for_function("window.liveOpen === true")
    await page.evaluate("window.consoleNotReloaded = true")

    twiml = await _ring(live_app, number)
    assert "<Client" in twiml and f"agent-{agent.id}</Client>" in twiml

    notice = page.locator("#inbound-call-notice")
    await expect(notice).to_contain_text(f"Incoming call from claimant {user_id}", timeout=LIVE)
    panel = page.locator("#inbound-call")
    await expect(panel).to_be_visible(timeout=LIVE)
    await expect(page.locator("#claimant-name")).to_have_text(
        f"Incoming call from Test Claimant{user_id}"
    )
    await expect(panel.locator("#claims")).to_contain_text("Barclays")
    await expect(panel.locator("#why-this-call")).to_contain_text("unsigned")
    await expect(panel.locator("#softphone-status")).to_have_text("Ringing…")
    await expect(page.locator("#agent-state-label")).to_have_text("On call")
    assert await page.evaluate("window.consoleNotReloaded === true")
    await screenshot(page, "console-inbound-call")

    await page.locator("#sim-inbound-answer").click()
    await expect(page.locator("#softphone-status")).to_have_text("Connected")
    await page.locator("#sim-inbound-hangup").click()
    await expect(page.locator("#softphone-status")).to_have_text("Call ended")
    await expect(page.locator("#agent-state-label")).to_have_text("Ready")
    await page.locator("#inbound-done").click()
    await expect(page.locator("#agent-state-label")).to_have_text("Ready")

    async with h.dialler.connect() as conn:
        call = (
            await conn.execute(
                select(db.calls).where(
                    db.calls.c.user_id == user_id, db.calls.c.direction == "inbound"
                )
            )
        ).one()
    assert (call.agent_id, call.status) == (agent.id, "completed")
    assert call.recording_notice_played and call.recording_sid is not None
