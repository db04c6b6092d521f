"""In a real browser: a supervisor opens the analytics, the four charts are drawn by
Chart.js (under the app's CSP: the page fixture fails the test on any console error, such as
a refused inline script or style), the lenders table arrives after the page, a bad range
re-renders the form with its message, and a table's CSV link downloads the same figures.
A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect
from sqlalchemy import insert

from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff

CHARTS = ("chart-funnel", "chart-hours", "chart-states", "chart-outcomes")


async def test_a_supervisor_sees_the_charts_and_downloads_a_table(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with h.dialler.begin() as conn:
        for n, (answered, disposition) in enumerate(
            [(True, "promised_to_sign"), (False, "no_answer"), (True, "callback_requested")]
        ):
            started = an_hour_ago + timedelta(minutes=5 * n)
            await conn.execute(
                insert(db.calls).values(
                    user_id=user_id, agent_id=agent.id, queue="unsigned", provider="simulated",
                    to_number="+447700900123", status="completed", started_at=started,
                    answered_at=started if answered else None, answered_by="human",
                    agent_seconds=90 if answered else 0, disposition=disposition,
                )
            )  # fmt: skip
        await conn.execute(
            insert(db.agent_state_changes),
            [
                {"agent_id": agent.id, "state": "ready", "at": an_hour_ago - timedelta(hours=1)},
                {"agent_id": agent.id, "state": "on_call", "at": an_hour_ago},
                {
                    "agent_id": agent.id,
                    "state": "wrap_up",
                    "at": an_hour_ago + timedelta(minutes=2),
                },
                {"agent_id": agent.id, "state": "paused", "at": an_hour_ago + timedelta(minutes=3)},
            ],
        )

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")
    await page.get_by_role("link", name="Analytics", exact=True).click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor/analytics")
    await expect(page.locator("#analytics-totals")).to_contain_text("Calls")

    for canvas in CHARTS:
        await expect(page.locator(f"#{canvas}")).to_be_visible()
        drawn = await page.locator(f"#{canvas}").evaluate(
            """canvas => {
                const chart = window.Chart && window.Chart.getChart(canvas);
                return chart ? chart.data.datasets.map(d => d.data) : null;
            }"""
        )
        assert drawn is not None, f"{canvas} was not drawn"
        assert await page.locator(f"#{canvas}").evaluate("c => c.width > 0 && c.height > 0")
    funnel = await page.locator("#chart-funnel").evaluate(
        "c => window.Chart.getChart(c).data.datasets[0].data"
    )
    assert funnel[:2] == [3, 2]  # called, reached
    await screenshot(page, "supervisor-analytics")

    # the lenders table arrives after the page (htmx), read from the claims replica
    await expect(page.locator("#table-lenders tbody")).to_contain_text("Santander")
    await expect(page.locator("#table-lenders")).not_to_have_attribute("aria-busy", "true")

    row = page.locator("#table-agents tbody tr", has_text=f"(#{agent.id})")
    await expect(row).to_contain_text("66.7%")
    async with page.expect_download() as waiting:
        await page.locator("#table-agents a.csv-link").click()
    download = await waiting.value
    assert download.suggested_filename.startswith("analytics-agents-")
    path = await download.path()
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows[0][:5] == ["Agent", "Kind", "Calls", "Reached", "Contact rate"]
    mine = next(r for r in rows if r[0].endswith(f"(#{agent.id})"))
    assert mine[1:5] == ["Person", "3", "2", "0.6667"]
    assert mine[5] == "180"  # talk time, seconds

    await page.locator("#range-from").fill("2026-02-01")
    await page.locator("#range-to").fill("2025-02-01")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("#range-error")).to_contain_text("is before From")
    assert await page.locator("canvas").count() == 0
