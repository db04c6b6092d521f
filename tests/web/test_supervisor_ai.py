"""The supervisor's view of the AI agents over HTTP (issue 13): the claimant page lists each
AI call, SMS conversation and triage with its outcome, hand-off, tokens and Temporal link,
and its transcript with every tool call in order (refused or not), audited, with nothing of
it logged, and says when retention deleted a transcript; agents get 403; the calls list
filters to AI calls (each with its conversation) and to AI SMS conversations, keeping the
refused-filters behaviour; `/api/health` and the wallboard say whether the AI is configured
and whether its worker runs, without failing health when it is not configured."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from structlog.testing import capture_logs

from adapters import ai_conversations as store
from domain.review_filters import CallFilters, parse_call_filters
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.ai_seed import ai_agent, ai_call, conversation, model, replied, said, tool
from tests.factories import add_claimant
from tests.web.conftest import make_staff
from tests.web.console_fixtures import HTMX, World, services_of, signed_in_agent, w, world
from tests.web.test_supervisor_claimants import audits, signed_in_supervisor, text
from web.temporal_links import workflow_id_url

__all__ = ["w", "world"]  # fixtures, imported for pytest

UK = ZoneInfo("Europe/London")
CALL_ROW = re.compile(r'<tr data-call-id="(\d+)"')
TEXT_ROW = re.compile(r'<tr data-conversation-id="(\d+)"')
# what the claimant and the model said: personal data that must never reach a log
SECRET_WORDS = "my Barclays account ends 4411"
SUMMARY = "Wants a person: unsure which documents Barclays still needs for the claim."


def figure(page: str, element_id: str) -> str:
    found = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', page)
    assert found, f"no #{element_id} on the page"
    return found.group(1).strip()


async def _voice_handed_off(w: World, user_id: int, agent_id: int) -> Any:
    call_id = await ai_call(w.dialler, user_id, agent_id)
    return await conversation(
        w.dialler,
        user_id=user_id,
        agent_id=agent_id,
        channel="voice",
        call_id=call_id,
        steps=[
            replied("Hello, this is an automated assistant calling for Resolve My Claim."),
            said(f"Hi, {SECRET_WORDS}"),
            model(420, 900, 60),
            tool("send_magic_link", {"purpose": "documents"}, "Link sent by SMS."),
            tool(
                "schedule_callback",
                {"at": "2026-12-25T03:00"},
                "outside the calling windows",
                refused=True,
            ),
            model(380, 1000, 40),
            said("Can I speak to a real person please?"),
            tool("hand_off", {"summary": SUMMARY}, "A colleague will call you."),
            replied("Of course, a colleague will call you back soon. Goodbye."),
        ],
        status="handed_off",
        handoff_reason="asked_for_person",
        summary=SUMMARY,
    )


async def _sms_finished(w: World, user_id: int, agent_id: int, **values: Any) -> Any:
    return await conversation(
        w.dialler,
        user_id=user_id,
        agent_id=agent_id,
        channel="sms",
        queue="outstanding",
        steps=[
            replied("Resolve My Claim: we still need your bank statement."),
            said("I'll send it tonight"),
            model(300, 500, 20),
            tool("record_outcome", {"outcome": "promised_documents"}, "Outcome recorded."),
        ],
        disposition="promised_documents",
        **values,
    )


# --- the claimant page ------------------------------------------------------------------------


async def test_the_claimant_page_shows_each_ai_conversation_with_its_transcript_audited(
    w: World,
) -> None:
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    bot = await ai_agent(w.dialler, "Robo Reminder")
    voice = await _voice_handed_off(w, user_id, bot)
    sms = await _sms_finished(w, user_id, bot)
    old = await conversation(
        w.dialler,
        user_id=user_id,
        agent_id=bot,
        channel="triage",
        queue=None,
        steps=[said("STOP calling me at work"), model(200, 100, 5)],
        started_at=datetime.now(UTC) - timedelta(days=900),
    )
    async with w.dialler.begin() as conn:
        # the end of retention for the old one only (the others started today)
        assert await store.delete_transcripts_before(conn, datetime.now(UTC) - timedelta(days=800))
    s = await signed_in_supervisor(w)

    with capture_logs() as logs:
        response = await s.get(f"/supervisor/claimants/{user_id}")
    page = await text(response)
    assert response.status_code == 200, page[:500]
    section = page.split('id="ai-conversations"')[1].split("</section>")[0]
    # newest first: the SMS conversation, the call, then the triage of long ago
    found = re.findall(r'id="ai-conversation-(\d+)" data-channel="(\w+)" data-status="(\w+)"',
                       section)  # fmt: skip
    assert found == [
        (str(sms.id), "sms", "finished"),
        (str(voice.id), "voice", "handed_off"),
        (str(old.id), "triage", "finished"),
    ]

    call = section.split(f'id="ai-conversation-{voice.id}"')[1].split("</article>")[0]
    assert "AI call" in call and "Robo Reminder" in call
    assert "Handed to a person" in call and "the claimant asked for a person" in call
    assert "Hand-off summary" in call and SUMMARY in call
    assert "1,900 prompt · 100 completion" in call  # the model calls' tokens, summed at close
    assert f'href="{workflow_id_url(w.settings, voice.workflow_id)}"' in call
    # the transcript in the order it happened, tool calls with arguments, result and refusal
    steps = re.findall(r'data-kind="(\w+)" data-step-id="(\d+)"', call)
    assert [int(step_id) for _, step_id in steps] == voice.step_ids
    assert [kind for kind, _ in steps] == ["assistant", "claimant", "model", "tool", "tool",
                                           "model", "claimant", "tool", "assistant"]  # fmt: skip
    tools = re.findall(r'data-tool="(\w+)" data-refused="(\w+)"', call)
    assert tools == [("send_magic_link", "false"), ("schedule_callback", "true"),
                     ("hand_off", "false")]  # fmt: skip
    assert "<dt>purpose</dt><dd>documents</dd>" in call
    assert "Refused: outside the calling windows" in call and "→ Link sent by SMS." in call
    assert SECRET_WORDS in call and "420 ms · 900 + 60 tokens" in call

    text_conv = section.split(f'id="ai-conversation-{sms.id}"')[1].split("</article>")[0]
    assert "AI SMS conversation" in text_conv and "Promised documents" in text_conv
    assert "Hand-off" not in text_conv and "record_outcome" in text_conv

    triage = section.split(f'id="ai-conversation-{old.id}"')[1].split("</article>")[0]
    assert "Inbound text triage" in triage and "Transcript deleted on" in triage
    assert "(24 months)" in triage and "STOP calling me" not in page

    # audited: the page view, and the transcripts shown (ids only: never what was said)
    [viewed] = await audits(w.dialler, "viewed_ai_transcripts", s.staff.id)
    assert viewed.subject_id == str(user_id) and viewed.subject_type == "user"
    assert viewed.detail == {"purpose": "supervisor", "conversation_ids": [sms.id, voice.id]}
    assert len(await audits(w.dialler, "viewed_personal_data", s.staff.id)) == 1
    # nothing said, nor the summary, in any log line of the request
    logged = repr(logs)
    assert SECRET_WORDS not in logged and SUMMARY not in logged and "Barclays" not in logged


async def test_a_claimant_without_ai_conversations_says_so_and_audits_no_transcript(
    w: World,
) -> None:
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    s = await signed_in_supervisor(w)
    page = await text(await s.get(f"/supervisor/claimants/{user_id}"))
    assert 'id="ai-conversations"' in page and "No AI conversations with this claimant." in page
    assert await audits(w.dialler, "viewed_ai_transcripts", s.staff.id) == []


async def test_an_agent_gets_403_and_reads_no_transcript(w: World) -> None:
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    bot = await ai_agent(w.dialler)
    await _voice_handed_off(w, user_id, bot)
    agent = await signed_in_agent(w)
    response = await agent.client.get(
        f"/supervisor/claimants/{user_id}", headers={"Accept": "text/html"}
    )
    body = await agent.text(response)
    assert response.status_code == 403
    assert SECRET_WORDS not in body and SUMMARY not in body
    assert await audits(w.dialler, "viewed_ai_transcripts", agent.staff.id) == []
    calls = await agent.client.get("/supervisor/calls?ai=sms", headers={"Accept": "text/html"})
    assert calls.status_code == 403


# --- the calls list ---------------------------------------------------------------------------


def uk(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UK)


async def test_the_calls_list_filters_to_ai_calls_and_ai_sms_conversations(w: World) -> None:
    day = date(2011, 5, 10)  # a day of this test's own
    days = f"from={day}&to={day}"
    person = await make_staff(w.dialler, AgentRole.AGENT, Queue.UNSIGNED)
    bot = await ai_agent(w.dialler, "Texting bot")
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    people_call = await ai_call(w.dialler, user_id, person.id, started_at=uk(day, 9),
                                disposition="no_answer")  # fmt: skip
    bot_call = await ai_call(w.dialler, user_id, bot, started_at=uk(day, 10))
    voice = await _voice_handed_off(w, user_id, bot)
    async with w.dialler.begin() as conn:  # the call's conversation, on the call's day
        await store.attach_call(conn, voice.id, bot_call)
        await conn.execute(
            db.ai_conversations.update()
            .where(db.ai_conversations.c.id == voice.id)
            .values(started_at=uk(day, 10))
        )
    sms = await _sms_finished(w, user_id, bot, started_at=uk(day, 11))
    triage = await conversation(
        w.dialler, user_id=user_id, agent_id=bot, channel="triage", queue=None,
        steps=[said("call me tomorrow at 10")], status="handed_off",
        handoff_reason="could_not_help", summary="Asked about the fee.",
        started_at=uk(day, 12),
    )  # fmt: skip
    await conversation(  # another day: not listed
        w.dialler, user_id=user_id, agent_id=bot, channel="sms", steps=[said("hi")],
        started_at=uk(day + timedelta(days=1), 9),
    )  # fmt: skip
    s = await signed_in_supervisor(w)

    async def listed(query: str, rows: re.Pattern[str]) -> tuple[list[int], str]:
        response = await s.get(f"/supervisor/calls?{query}")
        page = await text(response)
        assert response.status_code == 200, page[:2000]
        return [int(found) for found in rows.findall(page)], page

    everyone, _ = await listed(days, CALL_ROW)
    assert everyone == [bot_call, people_call]
    ai_calls, page = await listed(f"{days}&ai=1", CALL_ROW)
    assert ai_calls == [bot_call]
    # the AI call's conversation: outcome and hand-off, linked to its transcript
    anchor = f"/supervisor/claimants/{user_id}#ai-conversation-{voice.id}"
    assert f'href="{anchor}" data-conversation-id="{voice.id}"' in page
    assert "handed off: the claimant asked for a person" in page
    assert '<option value="1" selected>AI calls only</option>' in page

    texts, page = await listed(f"{days}&ai=sms", TEXT_ROW)
    assert texts == [triage.id, sms.id]  # SMS and triage, newest first; no call
    row = page.split(f'data-conversation-id="{sms.id}"')[1].split("</tr>")[0]
    assert "AI SMS conversation" in row and "Promised documents" in row and "Texting bot" in row
    assert f'href="/supervisor/claimants/{user_id}#ai-conversation-{sms.id}"' in row
    row = page.split(f'data-conversation-id="{triage.id}"')[1].split("</tr>")[0]
    assert "Inbound text triage" in row and "the AI could not help" in row
    assert '<option value="sms" selected>AI SMS conversations</option>' in page

    # the other filters apply to conversations too
    assert (await listed(f"{days}&ai=sms&outcome=promised_documents", TEXT_ROW))[0] == [sms.id]
    assert (await listed(f"{days}&ai=sms&outcome=none", TEXT_ROW))[0] == [triage.id]
    assert (await listed(f"{days}&ai=sms&queue=outstanding", TEXT_ROW))[0] == [sms.id]
    assert (await listed(f"{days}&ai=sms&agent={bot}", TEXT_ROW))[0] == [triage.id, sms.id]
    assert (await listed(f"{days}&ai=sms&agent={person.id}", TEXT_ROW))[0] == []

    # refused filters: the form again with a message per field (422), never a 500
    refused = await s.get(f"/supervisor/calls?ai=sms&agent=Alice&from={day}&to=2010-01-01")
    body = await text(refused)
    assert refused.status_code == 422
    assert 'id="filter-errors"' in body and "agent:" in body and "to:" in body
    unknown = await s.get(f"/supervisor/calls?ai=sms&agent={2**40}")
    assert unknown.status_code == 422 and "No such agent" in await text(unknown)

    # one AI call opens with its conversation linked
    detail = await text(await s.get(f"/supervisor/calls/{bot_call}"))
    assert 'id="call-ai-conversation"' in detail and f'href="{anchor}"' in detail


async def test_ai_sms_conversations_page_by_keyset(w: World) -> None:
    day = date(2011, 6, 1)
    bot = await ai_agent(w.dialler, "Paging bot")
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    ids = [
        (await conversation(w.dialler, user_id=user_id, agent_id=bot, channel="sms",
                            steps=[said("hello")], started_at=uk(day, 8) + timedelta(minutes=n))).id
        for n in range(53)
    ]  # fmt: skip
    newest_first = ids[::-1]
    s = await signed_in_supervisor(w)
    first = await text(await s.get(f"/supervisor/calls?from={day}&to={day}&ai=sms"))
    assert [int(i) for i in TEXT_ROW.findall(first)] == newest_first[:50]
    older = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert older, "no link to the older page"
    second = await text(await s.get(older.group(1).replace("&amp;", "&")))
    assert [int(i) for i in TEXT_ROW.findall(second)] == newest_first[50:]
    assert 'rel="next"' not in second
    newer = re.search(r'<a href="([^"]+)" rel="prev">', second)
    assert newer, "no link back to the newer page"
    back = await text(await s.get(newer.group(1).replace("&amp;", "&")))
    assert [int(i) for i in TEXT_ROW.findall(back)] == newest_first[:50]


def test_the_ai_filters_read_and_write_back_the_same() -> None:
    texts, _ = parse_call_filters({"ai": "sms", "queue": "unsigned"})
    assert texts == CallFilters(queue="unsigned", ai_texts=True)
    assert texts.query() == {"ai": "sms", "queue": "unsigned"}
    assert parse_call_filters({"ai": "1"})[0] == CallFilters(ai_only=True)
    assert parse_call_filters({"ai": "on"})[0].query() == {"ai": "1"}
    assert parse_call_filters({"ai": "nonsense"})[0] == CallFilters()


# --- health and the wallboard -----------------------------------------------------------------


async def _health(w: World, **settings: Any) -> tuple[int, dict[str, Any]]:
    deps = services_of(w.app)
    deps.settings = w.settings.model_copy(update=settings)
    try:
        response = await w.app.test_client().get("/api/health")
        return response.status_code, await response.get_json()
    finally:
        deps.settings = w.settings


async def test_health_says_when_the_ai_is_not_configured_without_failing(w: World) -> None:
    status, body = await _health(w, openai_model="")
    assert status == 200 and body["status"] == "ok"
    assert body["ai"]["configured"] is False and body["ai"]["worker_polling"] is None
    assert "no model configured" in body["ai"]["detail"]
    assert "every contact goes to people" in body["ai"]["detail"]


async def test_health_names_the_model_and_whether_the_ai_worker_polls(w: World) -> None:
    # a queue a worker really polls (the test harness's), then one nobody polls
    status, body = await _health(w, openai_model="fake-model", ai_task_queue=w.harness.task_queue)
    assert status == 200
    ai = body["ai"]
    assert ai["configured"] is True and ai["model"] == "fake-model"
    assert ai["worker_polling"] is True and "polling" in ai["detail"]

    status, body = await _health(w, openai_model="fake-model", ai_task_queue="nobody-polls-ai")
    assert status == 200 and body["status"] == "ok"  # the AI's worker does not fail health
    ai = body["ai"]
    assert ai["worker_polling"] is False and ai["task_queue"] == "nobody-polls-ai"
    assert "no AI worker is running" in ai["detail"]


async def _wallboard(w: World, **settings: Any) -> tuple[str, str]:
    deps = services_of(w.app)
    deps.settings = w.settings.model_copy(update=settings)
    try:
        s = await signed_in_supervisor(w)
        floor = await text(await s.client.get("/supervisor/wallboard", headers=HTMX))
        health = await text(await s.client.get("/supervisor/wallboard/health", headers=HTMX))
    finally:
        deps.settings = w.settings
    return floor, health


async def test_the_wallboard_says_the_ai_is_off_or_names_those_on_duty_with_todays_figures(
    w: World,
) -> None:
    floor, health = await _wallboard(w, openai_model="")
    assert "AI: no model configured — all contacts go to people" in floor
    assert 'id="health-ai"><span class="badge">off</span>' in health
    figures = ("ai-calls-today", "ai-sms-today", "ai-triage-today", "ai-handoffs-today")
    before = {key: int(figure(floor, key)) for key in figures}

    bot = await ai_agent(w.dialler, "Duty bot")
    async with w.dialler.begin() as conn:  # the AI worker marks its agent Ready as it starts
        await conn.execute(
            insert(db.agent_state_changes).values(agent_id=bot, state="ready", reason=None)
        )
    user_id = await add_claimant(w.replica, signed=False, pending=1)
    await _voice_handed_off(w, user_id, bot)  # a call, handed off
    await _sms_finished(w, user_id, bot)
    await _sms_finished(w, user_id, bot)
    await conversation(w.dialler, user_id=user_id, agent_id=bot, channel="triage", queue=None,
                       steps=[said("stop")], status="handed_off", handoff_reason="sensitive",
                       summary="Complaint.")  # fmt: skip
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    await conversation(w.dialler, user_id=user_id, agent_id=bot, channel="sms",
                       steps=[said("hi")], started_at=two_days_ago)  # fmt: skip

    floor, health = await _wallboard(
        w, openai_model="fake-model", ai_task_queue=w.harness.task_queue
    )
    assert "no model configured" not in floor
    on_duty = figure(floor, "ai-status")
    assert on_duty.startswith("on duty:") and "Duty bot" in on_duty
    after = {key: int(figure(floor, key)) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        "ai-calls-today": 1,
        "ai-sms-today": 2,
        "ai-triage-today": 1,
        "ai-handoffs-today": 2,
    }
    assert 'id="health-ai" class="ok"' in health and "model fake-model" in health

    _, health = await _wallboard(w, openai_model="fake-model", ai_task_queue="nobody-polls-ai")
    assert 'id="health-ai" class="down"' in health and "no AI worker is running" in health
    assert "attention" in health


async def test_an_ai_agent_gone_offline_is_not_on_duty(w: World) -> None:
    bot = await ai_agent(w.dialler, "Sleeping bot")
    for state, on_duty in (("ready", True), ("offline", False)):
        async with w.dialler.begin() as conn:
            await conn.execute(
                insert(db.agent_state_changes).values(agent_id=bot, state=state, reason=None)
            )
        floor, _ = await _wallboard(w, openai_model="fake-model")
        assert ("Sleeping bot" in figure(floor, "ai-status")) is on_duty, state
