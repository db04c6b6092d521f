"""In a real browser: a supervisor starts a live split of the score on the rules page (a saved
version other than the one in force, a share, a note), sees it running with a link to its
re-scoring, opens the arms' comparison from there, and ends the split; the queued claimant's
task takes its arm and loses it again while the outreach worker keeps running. Screenshots
are kept in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from adapters import rules_versions
from domain.scoring_split import arm_of
from schemas.enums import AgentRole
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import eventually, start, task_in, task_row

WAIT_MS = 30_000
SHIPPED = (Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml").read_text(
    encoding="utf-8"
)


async def test_a_supervisor_starts_a_split_compares_the_arms_and_ends_it(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    boosted = SHIPPED.replace("default_lender_boost = 0", "default_lender_boost = 40", 1)
    async with h.dialler.begin() as conn:
        candidate = await rules_versions.save_version(
            conn, boosted, saved_by=None, note="Unlisted lenders first", base_version=None
        )
        await rules_versions.save_version(
            conn, SHIPPED, saved_by=None, note="Back to the shipped rules", base_version=None
        )
    user_id = await add_claimant(h.replica, signed=False, pending=1, lender="Monzo")
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")

    await page.goto(f"{live_app.url}/supervisor/rules")
    panel = page.locator("#rules-split")
    await expect(panel.get_by_role("heading", name="Live split")).to_be_visible()
    await panel.get_by_label("Candidate version").select_option(str(candidate.id))
    await panel.get_by_label("Share of claimants (%)").fill("50")
    await panel.get_by_label("Why try it").fill("Do unlisted lenders convert better?")
    await panel.get_by_role("button", name="Start the split").click()

    await expect(page.locator("#split-changed")).to_contain_text("Split 1 started.")
    await expect(page.locator("#split-changed").get_by_role("link")).to_have_attribute(
        "href", re.compile(r"/workflows\?query=WorkflowId%20%3D%20%27split-rollout-1-started%27$")
    )
    running = page.locator("#split-running")
    await expect(running).to_contain_text(f"version {candidate.id} scores 50 % of claimants")
    await expect(running).to_contain_text("Do unlisted lenders convert better?")
    await expect(panel.locator("#split-form")).to_have_count(0)
    await screenshot(page, "supervisor-split-running")

    # the queued claimant takes their arm while the worker runs on
    arm = arm_of(user_id, 1, 0.5).value
    await eventually(lambda: task_row(h, user_id), lambda row: row.score_arm == arm, seconds=40)

    await running.get_by_role("link", name="Compare the arms").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor/analytics/splits/1")
    await expect(page.get_by_role("heading", name="Live split 1")).to_be_visible()
    await expect(page.locator('#split-arms tr[data-arm="control"] th')).to_have_text(
        "Control (rules in force)"
    )
    await expect(page.locator('#split-arms tr[data-arm="candidate"] th')).to_have_text(
        f"Candidate (version {candidate.id})"
    )
    await expect(page.locator('#split-differences tr[data-measure="converted"]')).to_contain_text(
        "no calls in an arm yet"
    )
    await screenshot(page, "supervisor-split-arms")

    await page.get_by_role("link", name="Rules: the live split").click()
    await page.locator("#split-running").get_by_role("button", name="End the split").click()
    await expect(page.locator("#split-changed")).to_contain_text("Split 1 ended.")
    await expect(page.locator("#split-form")).to_be_visible()
    await expect(page.locator('#split-history tr[data-split="1"]')).not_to_contain_text("running")
    await eventually(lambda: task_row(h, user_id), lambda row: row.score_arm is None, seconds=40)
    await screenshot(page, "supervisor-split-ended")
