"""In a real browser: the agent who made an earlier call to the claimant sees a player for
its recording in the console's call history; the browser fetches the recording through the
audited streaming route (only when asked: preload none) and decodes it as audio.
A screenshot is kept in test-artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect
from sqlalchemy import insert, select

from adapters.recording_store import local_key_for, write_tone
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff
from tests.workflows.helpers import start, task_in


async def test_the_caller_plays_an_earlier_calls_recording(live_app: LiveApp, page: Page) -> None:
    h = live_app.harness
    agent = await make_staff(h.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    key = local_key_for(f"RE{user_id:032d}")
    write_tone(live_app.settings.recordings_dir / key, 1.5)
    async with h.dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(user_id=user_id, agent_id=agent.id, queue="unsigned", provider="simulated",
                    to_number="+447700900123", status="completed",
                    started_at=datetime.now(UTC) - timedelta(days=10),
                    recording_sid=f"RE{user_id:032d}", recording_store="local",
                    recording_key=key, recording_duration_seconds=2)
            .returning(db.calls.c.id)
        )  # fmt: skip
    await start(h, user_id)
    await task_in(h, user_id, "unsigned")

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(agent.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/console")
    await page.locator("#go-ready").click()
    await page.locator("#next-call").click()
    await expect(page.locator("#claimant-name")).to_contain_text(f"Claimant{user_id}")

    player = page.locator("#call-history audio.call-recording")
    await expect(player).to_have_count(1)
    await expect(player).to_have_attribute("src", f"/calls/{call_id}/recording")
    await expect(player).to_have_attribute("preload", "none")
    # loading it is what pressing play does first: the browser streams and decodes the WAV
    duration = await player.evaluate(
        """audio => new Promise((resolve, reject) => {
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
            audio.addEventListener("error", () => reject(new Error("audio error")));
            audio.preload = "auto";
            audio.load();
        })"""
    )
    assert 1.4 <= duration <= 1.6
    await screenshot(page, "console-call-recording")

    async with h.dialler.connect() as conn:
        played = (
            await conn.execute(
                select(db.audit_log.c.actor_id, db.audit_log.c.subject_id).where(
                    db.audit_log.c.action == "played_recording"
                )
            )
        ).all()
    assert played and set(played) == {(str(agent.id), str(call_id))}
