"""Signing in and out in a real browser; the pages satisfy their own CSP."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import LiveApp, screenshot
from tests.web.conftest import PASSWORD, make_staff


async def test_wrong_password_then_sign_in_and_out(live_app: LiveApp, page: Page) -> None:
    staff = await make_staff(live_app.harness.dialler)
    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(staff.email)
    await page.get_by_label("Password").fill("not my password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Email or password is incorrect.")
    await screenshot(page, "login-error")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(f"{live_app.url}/login")


async def test_api_docs_load_from_this_site(live_app: LiveApp, page: Page) -> None:
    await page.goto(f"{live_app.url}/docs")
    await expect(page.get_by_text("RMC Dialler API").first).to_be_visible()
    await screenshot(page, "api-docs")
