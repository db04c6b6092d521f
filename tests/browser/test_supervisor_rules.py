"""In a real browser: a supervisor edits a scoring weight on the rules page, previews the
queues before and after, saves, and sees the unsigned queue re-ordered on the queue page,
while the outreach worker keeps running (no restart: the save's rollout has each claimant
re-assessed under the new version). Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from playwright.async_api import Page, expect
from sqlalchemy import select

from schemas import dialler_db as db
from schemas.enums import AgentRole
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import eventually, start, task_in

WAIT_MS = 30_000


async def _scores(live_app: LiveApp, user_ids: list[int]) -> dict[int, Decimal]:
    async with live_app.harness.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.call_tasks.c.user_id, db.call_tasks.c.score).where(
                db.call_tasks.c.user_id.in_(user_ids)
            )
        )
        return {int(r.user_id): Decimal(r.score) for r in rows}


async def _order(page: Page, table: str) -> list[int]:
    ids = await page.locator(f"{table} tbody tr[data-user-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.userId)"
    )
    return [int(i) for i in ids]


async def test_a_supervisor_edits_a_weight_previews_saves_and_sees_the_queue_reordered(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    # alike but for the lender: Barclays is in the matrix (+15), Monzo is not (the default)
    listed = await add_claimant(h.replica, signed=False, pending=1, lender="Barclays")
    unlisted = await add_claimant(h.replica, signed=False, pending=1, lender="Monzo")
    for user_id in (listed, unlisted):
        await start(h, user_id)
        await task_in(h, user_id, "unsigned")
    before: dict[int, Any] = await _scores(live_app, [listed, unlisted])
    assert before[listed] > before[unlisted]

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")

    await page.goto(f"{live_app.url}/supervisor/queues/unsigned")
    assert await _order(page, "#queue-tasks") == [listed, unlisted]

    await (
        page.get_by_role("navigation", name="Supervisor").get_by_role("link", name="Rules").click()
    )
    await expect(page).to_have_url(f"{live_app.url}/supervisor/rules")
    await expect(page.locator("#rules-in-force h2")).to_contain_text("In force: version 0")
    editor = page.get_by_label("The rules (TOML)")
    text = await editor.input_value()
    edited, count = re.subn(r"(?m)^default_lender_boost = 0$", "default_lender_boost = 40", text)
    assert count == 1
    await editor.fill(edited)
    await page.get_by_label("Why they change").fill("Unlisted lenders first this week")
    await page.get_by_role("button", name="Preview the queues").click()

    await expect(page.locator("#rules-preview")).to_be_visible()
    assert await _order(page, "#preview-unsigned-before") == [listed, unlisted]
    assert await _order(page, "#preview-unsigned-after") == [unlisted, listed]
    moved = page.locator(f'#preview-unsigned-after tr[data-user-id="{unlisted}"]')
    await expect(moved).to_contain_text("▲ 1")
    await expect(editor).to_have_value(edited)  # the draft is kept for the save
    await screenshot(page, "supervisor-rules-preview")

    await page.get_by_role("button", name="Save as a new version").click()
    await expect(page).to_have_url(re.compile(r"/supervisor/rules\?saved=1&rollout=started$"))
    await expect(page.locator("#rules-saved")).to_contain_text("Version 1 is saved and in force")
    await expect(page.locator("#rules-in-force h2")).to_contain_text("In force: version 1")
    await expect(page.locator('#rules-history tr[data-version="1"]')).to_contain_text(
        "Unlisted lenders first this week"
    )
    await screenshot(page, "supervisor-rules-saved")

    # the worker, still running, re-scores both claimants under version 1
    after = await eventually(
        lambda: _scores(live_app, [listed, unlisted]),
        lambda s: s[unlisted] == before[unlisted] + 40,
        seconds=30,
    )
    assert after[listed] == before[listed]
    await page.goto(f"{live_app.url}/supervisor/queues/unsigned")
    await expect(page.locator(f'#queue-tasks tr[data-user-id="{unlisted}"]')).to_be_visible(
        timeout=WAIT_MS
    )
    assert await _order(page, "#queue-tasks") == [unlisted, listed]
    await screenshot(page, "supervisor-queue-reordered")
