"""In a real browser: a supervisor filters the calls list to AI calls, follows an AI call's
conversation to the claimant page, and reads its transcript (what was said, each tool call
with its arguments and whether it was refused) and the hand-off summary; the AI SMS
conversations filter lists the claimant's text conversation. Screenshots are kept in
test-artifacts/."""

from __future__ import annotations

from playwright.async_api import Page, expect

from schemas.enums import AgentRole
from tests.ai_seed import ai_agent, ai_call, conversation, model, replied, said, tool
from tests.browser.conftest import LiveApp, screenshot
from tests.factories import add_claimant
from tests.web.conftest import PASSWORD, make_staff

SUMMARY = "Asked for a person: wants to discuss which Santander documents are still needed."


async def test_a_supervisor_reads_an_ai_calls_transcript_and_hand_off_summary(
    live_app: LiveApp, page: Page
) -> None:
    h = live_app.harness
    supervisor = await make_staff(h.dialler, AgentRole.SUPERVISOR, None)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    bot = await ai_agent(h.dialler, "Robo Reminder")
    call_id = await ai_call(h.dialler, user_id, bot)
    voice = await conversation(
        h.dialler,
        user_id=user_id,
        agent_id=bot,
        channel="voice",
        call_id=call_id,
        steps=[
            replied(
                "Hello, this is an automated assistant calling for Resolve My Claim. "
                "This call is recorded."
            ),
            said("Which documents do you still need?"),
            model(410, 850, 45),
            tool("claim_context", {}, "Missing: bank statements for Santander."),
            tool(
                "schedule_callback",
                {"at": "2026-12-25T07:00"},
                "outside the calling windows",
                refused=True,
            ),
            said("I'd rather talk to a person"),
            tool("hand_off", {"summary": SUMMARY}, "A colleague will call you."),
            replied("Of course. A colleague will call you soon. Goodbye."),
        ],
        status="handed_off",
        handoff_reason="asked_for_person",
        summary=SUMMARY,
    )
    texts = await conversation(
        h.dialler,
        user_id=user_id,
        agent_id=bot,
        channel="sms",
        queue="outstanding",
        steps=[replied("We still need your bank statement."), said("Sending it tonight")],
        disposition="promised_documents",
    )

    await page.goto(f"{live_app.url}/login")
    await page.get_by_label("Email").fill(supervisor.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{live_app.url}/supervisor")

    await page.goto(f"{live_app.url}/supervisor/calls")
    await page.locator("#filter-ai").select_option("1")
    await page.get_by_role("button", name="Filter").click()
    row = page.locator(f'#calls-table tr[data-call-id="{call_id}"]')
    await expect(row).to_contain_text("Robo Reminder")
    await expect(row).to_contain_text("handed off: the claimant asked for a person")
    await screenshot(page, "supervisor-calls-ai")

    await row.locator(f'a[data-conversation-id="{voice.id}"]').click()
    await expect(page).to_have_url(
        f"{live_app.url}/supervisor/claimants/{user_id}#ai-conversation-{voice.id}"
    )
    article = page.locator(f"#ai-conversation-{voice.id}")
    await expect(article).to_contain_text("AI call")
    await expect(article.locator(".ai-summary")).to_contain_text(SUMMARY)
    await expect(article.locator(".ai-handoff-reason")).to_have_text(
        "the claimant asked for a person"
    )
    # the SMS conversation is the newest, so its transcript is the one open: open the call's
    transcript = article.locator("details.ai-transcript")
    await transcript.locator("summary").click()
    steps = transcript.locator("li.ai-step")
    await expect(steps).to_have_count(8)
    await expect(steps.nth(1)).to_contain_text("Which documents do you still need?")
    await expect(steps.nth(2)).to_contain_text("410 ms")
    refused = transcript.locator('[data-tool="schedule_callback"]')
    await expect(refused).to_be_visible()
    await expect(refused).to_contain_text("refused")
    await expect(steps.nth(4)).to_contain_text("Refused: outside the calling windows")
    await expect(steps.nth(6)).to_contain_text(SUMMARY)  # the hand_off tool's argument
    await expect(article.locator(".ai-workflow-link")).to_have_attribute(
        "href", f"{str(live_app.settings.temporal_ui_url).rstrip('/')}/namespaces/"
        f"{live_app.settings.temporal_namespace}/workflows/{voice.workflow_id}"
    )  # fmt: skip
    await screenshot(page, "supervisor-claimant-ai")

    await page.goto(f"{live_app.url}/supervisor/calls?ai=sms")
    text_row = page.locator(f'#ai-texts-table tr[data-conversation-id="{texts.id}"]')
    await expect(text_row).to_contain_text("AI SMS conversation")
    await expect(text_row).to_contain_text("Promised documents")
    await text_row.get_by_role("link", name="Read").click()
    await expect(page).to_have_url(
        f"{live_app.url}/supervisor/claimants/{user_id}#ai-conversation-{texts.id}"
    )
    await expect(
        page.locator(f"#ai-conversation-{texts.id} details.ai-transcript")
    ).to_contain_text("Sending it tonight")
