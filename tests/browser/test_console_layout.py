"""The console's layout in a real browser (issue 17, defect 8): the call column stays beside
the claimant's context at desktop widths, and a saved outcome is confirmed in that column,
beside the context, while the agent wraps up. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio

from playwright.async_api import FloatRect, Locator, Page, Route, ViewportSize, expect

from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in

LAPTOP = ViewportSize(width=1366, height=768)
# 1366 px at 125% display scaling, and 1280 px: desktop widths that used to stack the columns
SCALED_WIDTHS = (1093, 1024)


async def _box(locator: Locator) -> FloatRect:
    box = await locator.bounding_box()
    assert box is not None, f"{locator} is not displayed"
    return box


async def _assert_side_by_side(page: Page, scope: str) -> None:
    """The call column starts right of the context column and level with its top."""
    context = await _box(page.locator(f"{scope} .claim-main"))
    call = await _box(page.locator(f"{scope} .claim-actions"))
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert call["x"] >= context["x"] + context["width"], (width, context, call)
    assert abs(call["y"] - context["y"]) < 1, (width, context, call)


async def test_outcome_is_confirmed_beside_the_context(live_app: LiveApp, page: Page) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Barclays")
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")
    await page.set_viewport_size(LAPTOP)

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/console")
    await page.locator("#go-ready").click()
    await page.locator("#next-call").click()
    await expect(page.locator("#claimant-context")).to_be_visible()
    await _assert_side_by_side(page, "#claimant-context")
    for width in SCALED_WIDTHS:
        await page.set_viewport_size(ViewportSize(width=width, height=LAPTOP["height"]))
        await _assert_side_by_side(page, "#claimant-context")
    await page.set_viewport_size(LAPTOP)
    # hold the end of wrap-up (3 seconds in this app) until the checks are done
    checked = asyncio.Event()

    async def hold(route: Route) -> None:
        await checked.wait()
        await route.continue_()

    await page.route("**/console/wrap-up/end", hold)

    await page.locator("#disposition").select_option("no_answer")
    await page.locator("#outcome-notes").fill("Rang out")
    await page.locator("#save-outcome").click()
    confirmation = page.locator("#outcome-confirmation")
    await expect(confirmation).to_be_visible()
    await expect(confirmation).to_contain_text("Outcome saved: No answer; in the Unsigned queue")
    await expect(page.locator("#agent-state-label")).to_have_text("Wrap-up")
    await _assert_side_by_side(page, "#wrap-up")
    call = await _box(page.locator("#wrap-up .claim-actions"))
    shown = await _box(confirmation)
    assert call["x"] <= shown["x"] and shown["x"] + shown["width"] <= call["x"] + call["width"]
    await screenshot(page, "console-outcome-saved-1366x768")
    checked.set()
    await expect(page.locator("#idle")).to_be_visible()  # then wrap-up ends in Ready
    await expect(page.locator("#agent-state-label")).to_have_text("Ready")
