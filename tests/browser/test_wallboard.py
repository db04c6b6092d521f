"""The wallboard in a real browser: a supervisor watches it while an agent, in another
browser context, claims a claimant and records an outcome; the claimed count, the agent's
row and the calls by outcome change on the open page, without a reload. A screenshot of the
wallboard is kept in test-artifacts/."""

from __future__ import annotations

from playwright.async_api import Browser, Page, expect

from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in

# The page also refreshes every 15 s: a change seen sooner came over the live stream.
LIVE = 5_000


async def _sign_in(page: Page, live_app: LiveApp, email: str, home: str) -> None:
    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}{home}")


async def test_a_supervisor_sees_the_wallboard_follow_an_agents_claim_and_outcome(
    live_app: LiveApp, page: Page, browser: Browser
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")

    await _sign_in(page, live_app, supervisor.email, "/supervisor")  # their landing page
    await expect(page.locator("#queue-unsigned-callable")).to_have_text("1")
    await expect(page.locator("#queue-unsigned-claimed")).to_have_text("0")
    await expect(page.locator("#calls-today")).to_have_text("0")
    await expect(page.locator("#wallboard-outcomes")).to_have_count(0)
    await expect(page.locator("#health-temporal")).to_have_class("ok")
    await page.evaluate("window.wallboardNotReloaded = true")

    desk = await browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    try:
        console = await desk.new_page()
        await _sign_in(console, live_app, agent.email, "/console")
        await console.locator("#go-ready").click()
        await expect(console.locator("#agent-state-label")).to_have_text("Ready")
        row = page.locator(f"#agent-{agent.id}")
        await expect(row).to_have_attribute("data-state", "ready", timeout=LIVE)

        await console.locator("#next-call").click()
        await expect(console.locator("#claimant-context")).to_be_visible()
        await expect(page.locator("#queue-unsigned-claimed")).to_have_text("1", timeout=LIVE)
        await expect(page.locator("#queue-unsigned-callable")).to_have_text("0")
        await expect(row.locator(".wb-claimant")).to_have_text(f"#{user_id}")

        await console.locator("#disposition").select_option("no_answer")
        await console.locator("#save-outcome").click()
        await expect(console.locator("#wrap-up")).to_be_visible()
        await expect(page.locator("#outcome-no_answer-people")).to_have_text("1", timeout=LIVE)
        await expect(page.locator("#calls-today")).to_have_text("1")
        await expect(page.locator("#queue-unsigned-claimed")).to_have_text("0")
        await expect(page.locator("#queue-unsigned-waiting-cooldown")).to_have_text("1")
        await expect(row).to_have_attribute("data-state", "wrap_up")
    finally:
        await desk.close()
    assert await page.evaluate("window.wallboardNotReloaded === true")
    await screenshot(page, "supervisor-wallboard")
