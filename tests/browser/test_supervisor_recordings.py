"""In a real browser: a supervisor filters the calls list to one agent, plays a call's
recording from the list (the browser streams and decodes the WAV through the audited route),
then opens the audit viewer, filters it to the `played_recording` action, and finds that
playback: their name, the call, the route. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect
from sqlalchemy import insert

from adapters.recording_store import local_key_for, write_tone
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff


async def test_a_supervisor_plays_a_recording_and_finds_the_playback_in_the_audit_log(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    key = local_key_for(f"RE{user_id:032d}")
    write_tone(live_app.settings.recordings_dir / key, 1.5)
    async with h.dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id, agent_id=agent.id, queue="unsigned", provider="simulated",
                    to_number="+447700900123", status="completed", disposition="no_answer",
                    started_at=datetime.now(UTC) - timedelta(days=3), duration_seconds=42,
                    recording_sid=f"RE{user_id:032d}", recording_store="local",
                    recording_key=key, recording_duration_seconds=2)
            .returning(db.calls.c.id)
        )  # fmt: skip

    await page.goto(f"{live_app.url}/login?next=/supervisor/calls")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor/calls")

    await page.locator("#filter-agent").select_option(str(agent.id))
    await page.get_by_role("button", name="Filter").click()
    await expect(page).to_have_url(re.compile(rf"/supervisor/calls\?agent={agent.id}&"))
    rows = page.locator("#calls-table tbody tr")
    await expect(rows).to_have_count(1)
    row = page.locator(f'tr[data-call-id="{call_id}"]')
    await expect(row).to_contain_text("No answer")
    await expect(row.get_by_role("link", name=f"#{user_id}")).to_have_attribute(
        "href", f"/supervisor/claimants/{user_id}"
    )
    player = row.locator("audio.call-recording")
    await expect(player).to_have_attribute("src", f"/calls/{call_id}/recording")
    await expect(player).to_have_attribute("preload", "none")
    # loading is what pressing play does first: the browser streams and decodes the WAV
    duration = await player.evaluate(
        """audio => new Promise((resolve, reject) => {
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
            audio.addEventListener("error", () => reject(new Error("audio error")));
            audio.preload = "auto";
            audio.load();
        })"""
    )
    assert 1.4 <= duration <= 1.6
    await screenshot(page, "supervisor-calls-list")

    await page.locator("nav.supervisor-nav").get_by_role("link", name="Audit").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor/audit")
    await page.locator("#filter-action").select_option("played_recording")
    await page.get_by_role("button", name="Filter").click()
    entries = page.locator("#audit-table tbody tr")
    await expect(entries.first).to_be_visible()
    # every row is a playback; the supervisor's is there, about that call, through the route
    await expect(page.locator("#audit-table tbody tr code")).to_have_text(
        ["played_recording"] * await entries.count()
    )
    mine = entries.filter(has_text=f"call #{call_id}")
    await expect(mine.first).to_contain_text("Test supervisor")
    await expect(mine.first).to_contain_text("recordings.play")
    await expect(mine.first.get_by_role("link", name=f"call #{call_id}")).to_have_attribute(
        "href", f"/supervisor/calls/{call_id}"
    )
    await screenshot(page, "supervisor-audit-playback")
