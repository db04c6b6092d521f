"""Agent management in a real browser: a supervisor creates a person who then signs in (in
another browser context), and issues an API token, read off the page, that an AI agent then
uses on the API (httpx against the live app) until the supervisor revokes it."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Page, expect

from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in

NEW_PASSWORD = "juniper kestrel window 5"
TOKEN = re.compile(r"^rmc_[A-Za-z0-9_-]{43}$")


async def _supervisor_signs_in(page: Page, live_app: LiveApp) -> None:
    supervisor = await make_staff(live_app.harness.dialler, AgentRole.SUPERVISOR, None)
    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")
    await (
        page.get_by_role("navigation", name="Supervisor").get_by_role("link", name="Agents").click()
    )
    await expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()


async def test_a_supervisor_creates_an_agent_who_can_then_sign_in(
    live_app: LiveApp, page: Page, browser: Browser
) -> None:
    await _supervisor_signs_in(page, live_app)
    await page.get_by_role("link", name="Add a person").click()
    await page.get_by_label("Email").fill("Owen.Hughes@example.co.uk")
    await page.get_by_label("Display name").fill("Owen Hughes")
    await page.get_by_label("Queue").select_option("outstanding")
    await page.get_by_label("Initial password").fill("short")
    await page.get_by_role("button", name="Add the person").click()
    await expect(page.locator("#password-error")).to_contain_text("at least 12 characters")
    await expect(page.get_by_label("Email")).to_have_value("Owen.Hughes@example.co.uk")
    await page.get_by_label("Initial password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Add the person").click()
    await expect(page.locator("#agent-notice")).to_have_text("Account created.")
    await expect(page.locator("#agent-email")).to_have_text("owen.hughes@example.co.uk")
    await screenshot(page, "supervisor-agent-created")

    context = await browser.new_context(locale="en-GB")
    try:
        newcomer = await context.new_page()
        await newcomer.goto(f"{live_app.url}/login")
        await newcomer.get_by_label("Email").fill("owen.hughes@example.co.uk")
        await newcomer.get_by_label("Password").fill(NEW_PASSWORD)
        await newcomer.get_by_role("button", name="Sign in").click()
        await expect(newcomer).to_have_url(f"{live_app.url}/console")
        await expect(newcomer.get_by_text("Owen Hughes · agent")).to_be_visible()
    finally:
        await context.close()

    # the supervisor sees the sign-in in the account's history
    await page.reload()
    await expect(page.locator("#sessions-table tbody tr")).to_have_count(1)
    await expect(page.locator("#states-table")).to_contain_text("signed in")


async def test_a_supervisor_issues_a_token_that_an_ai_agent_uses_on_the_api(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    user_id = await add_claimant(
        h.replica, signed=False, pending=1, consents=("live_call", "automated_call")
    )
    await start(h, user_id)
    await task_in(h, user_id, Queue.UNSIGNED.value)

    await _supervisor_signs_in(page, live_app)
    await page.get_by_role("link", name="Add an AI agent").click()
    await page.get_by_label("Email").fill("voice.agent@agents.example.co.uk")
    await page.get_by_label("Display name").fill("AI voice agent")
    await page.get_by_label("Queue").select_option("unsigned")
    await page.get_by_role("button", name="Add the AI agent").click()
    await expect(page.locator("#agent-notice")).to_have_text("Account created.")
    account_page = page.url.split("?")[0]

    await page.get_by_label("What it is for").fill("AI voice worker")
    await page.get_by_role("button", name="Issue a token").click()
    shown = page.locator("#issued-token")
    await expect(shown).to_have_text(TOKEN)
    token = (await shown.inner_text()).strip()
    await screenshot(page, "supervisor-token-issued")

    async with httpx.AsyncClient(base_url=live_app.url, timeout=10) as api:
        headers = {"Authorization": f"Bearer {token}"}
        me = await api.get("/api/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["display_name"] == "AI voice agent"
        claimed = await api.post("/api/queue/next", headers=headers)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["task"]["user_id"] == user_id

        await page.goto(account_page)  # the token is shown once: now only its start
        await expect(page.locator("#issued-token")).to_have_count(0)
        await expect(page.locator("#tokens-table")).to_contain_text(token[:12])
        await page.get_by_role("button", name="Revoke “AI voice worker”").click()
        await expect(page.locator("#agent-notice")).to_contain_text("Token revoked")
        refused = await api.get("/api/me", headers=headers)
        assert refused.status_code == 401
