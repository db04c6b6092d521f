"""In a real browser: a supervisor opens the unsigned queue, opens a claimant from it, and
follows the claimant's link to their workflow in the Temporal Web UI, which the session's dev
server serves (a single-page app: the test waits for it to show the workflow). The queue's own
link opens the UI's list filtered by the matching visibility query, which lists the claimant.
Screenshots are kept in test-artifacts/."""

from __future__ import annotations

from playwright.async_api import Page, expect

from schemas.enums import AgentRole
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in
from web.temporal_links import workflow_url
from workflows.outreach_client import workflow_id_for

UI_WAIT_MS = 30_000  # the UI is a single-page app that loads, then asks the server


async def test_a_supervisor_follows_a_claimant_from_the_queue_to_the_temporal_ui(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")
    workflow_id = workflow_id_for(user_id)

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")

    await (
        page.get_by_role("navigation", name="Supervisor").get_by_role("link", name="Queues").click()
    )
    await expect(page).to_have_url(f"{live_app.url}/supervisor/queues/unsigned")
    row = page.locator(f'#queue-tasks tr[data-user-id="{user_id}"]')
    await expect(row).to_contain_text("ready now")
    await screenshot(page, "supervisor-queue")

    await row.get_by_role("link", name=str(user_id)).click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor/claimants/{user_id}")
    await expect(page.locator("#claimant-name")).to_contain_text(f"Claimant{user_id}")
    await expect(page.locator("#workflow-status")).to_contain_text("running")
    await screenshot(page, "supervisor-claimant")

    link = page.locator("#temporal-workflow-link")
    await expect(link).to_have_attribute("href", workflow_url(live_app.settings, user_id))
    async with page.context.expect_page() as opened:
        await link.click()
    ui = await opened.value
    await ui.wait_for_load_state()
    assert ui.url.startswith(str(live_app.settings.temporal_ui_url).rstrip("/"))
    # the workflow's page names the workflow, and its history shows the outreach ran
    await expect(ui.get_by_text(workflow_id).first).to_be_visible(timeout=UI_WAIT_MS)
    await expect(ui.get_by_text("Outreach").first).to_be_visible(timeout=UI_WAIT_MS)
    await screenshot(ui, "temporal-ui-workflow")
    await ui.close()

    # the queue's link: the UI's list of running outreach workflows in this queue
    await page.go_back()
    async with page.context.expect_page() as listed:
        await page.locator("#temporal-queue-link").click()
    ui_list = await listed.value
    await ui_list.wait_for_load_state()
    await expect(ui_list.get_by_text(workflow_id).first).to_be_visible(timeout=UI_WAIT_MS)
    await screenshot(ui_list, "temporal-ui-queue")
    await ui_list.close()
