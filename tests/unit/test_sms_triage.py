"""The triage's pure rules: the prompt, parsing the model's answer against its schema (never
raising, whatever the model wrote), the retry-once rule, the plan per intent, and what the
claimant is told from their own claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from domain import sms_triage as triage
from domain.rules import parse_rules
from schemas.ai import ContextAnswer, TriageDecision, TriageIntent

UK = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # a Tuesday, 10:00 in London (GMT)


def test_the_prompt_carries_the_time_and_the_message_but_no_claimant_data() -> None:
    messages = triage.classification_messages("Call me tomorrow at 3pm", NOW, UK)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "2026-03-03T10:00" in messages[0]["content"] and "Tuesday" in messages[0]["content"]
    assert messages[1]["content"] == "Call me tomorrow at 3pm"
    retry = triage.classification_messages("x" * 5000, NOW, UK, correction="not JSON")
    assert len(retry[1]["content"]) == 1600  # one SMS's worth reaches the model
    assert retry[-1]["role"] == "system" and "not JSON" in retry[-1]["content"]


def test_keywords_and_empty_messages_never_reach_the_model() -> None:
    for body in ("STOP", " stop ", "Unsubscribe", "START", "  "):
        assert triage.needs_no_model(body) is not None, body
    assert triage.needs_no_model("please stop calling me at work") is None


def test_a_callback_request_is_read_as_uk_local_time() -> None:
    answer = json.dumps({"intent": "callback_request", "callback_at": "2026-07-01T15:30"})
    parsed = triage.parse_classification(answer, UK)
    assert parsed.malformed is None and parsed.intent is TriageIntent.CALLBACK_REQUEST
    assert parsed.callback_at == datetime(2026, 7, 1, 14, 30, tzinfo=UTC)  # BST
    offset = json.dumps({"intent": "callback_request", "callback_at": "2026-07-01T15:30+00:00"})
    assert triage.parse_classification(offset, UK).callback_at == datetime(
        2026, 7, 1, 15, 30, tzinfo=UTC
    )


def test_answers_that_fail_the_schema_say_why() -> None:
    cases = [
        None,
        "",
        "Sure! The intent is callback_request.",
        "[1, 2]",
        json.dumps({"intent": "refund"}),
        json.dumps({"intent": 3}),
        json.dumps({"intent": "callback_request", "callback_at": "tomorrow at 3"}),
        json.dumps({"intent": "callback_request", "callback_at": 1500}),
    ]
    for content in cases:
        parsed = triage.parse_classification(content, UK)
        assert parsed.malformed, content
        assert parsed.intent is None and parsed.callback_at is None


@given(st.text(max_size=300))
def test_parsing_never_raises(content: str) -> None:
    parsed = triage.parse_classification(content, UK)
    assert (parsed.malformed is None) == (parsed.intent is not None)


def test_retry_once_then_a_person() -> None:
    assert triage.retry_after(1, "not JSON")
    assert not triage.retry_after(2, "not JSON")
    assert not triage.retry_after(1, None)


def test_the_plan_per_intent() -> None:
    at = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    book = triage.plan_for(TriageDecision(TriageIntent.CALLBACK_REQUEST, callback_at=at))
    assert book.action is triage.TriageAction.BOOK_CALLBACK and book.callback_at == at
    no_time = triage.plan_for(TriageDecision(TriageIntent.CALLBACK_REQUEST))
    assert no_time.action is triage.TriageAction.PERSON and "without a time" in no_time.reason
    answer = triage.plan_for(TriageDecision(TriageIntent.DOCUMENTS_QUESTION))
    assert answer.action is triage.TriageAction.ANSWER
    assert triage.plan_for(TriageDecision(TriageIntent.OTHER)).action is triage.TriageAction.PERSON


def test_callback_times_are_checked_against_the_calling_windows() -> None:
    windows = parse_rules("").calling_windows
    assert windows.weekday_open <= time(15, 0) <= windows.weekday_close
    afternoon = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    assert triage.callback_refusal(afternoon, NOW, windows) is None
    night = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
    assert "outside the calling windows" in (triage.callback_refusal(night, NOW, windows) or "")
    past = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert triage.callback_refusal(past, NOW, windows) is not None
    far = datetime(2026, 4, 20, 15, 0, tzinfo=UTC)
    assert triage.callback_refusal(far, NOW, windows) is not None


def test_the_documents_answer_comes_from_the_claimants_own_claims() -> None:
    context = ContextAnswer(
        lenders=["Santander", "Santander", "Barclays"],
        missing_documents=["bank_statements", "photo_id", "bank_statements"],
        signed=False,
    )
    text = triage.documents_answer("Ann", context) or ""
    assert text.startswith("Hi Ann,") and "automated assistant" in text
    assert "claims against Santander and Barclays" in text
    assert "bank statements and photo ID" in text and text.count("bank statements") == 1
    assert "sign" in text and text.endswith("Reply STOP to opt out.")
    done = triage.documents_answer(None, ContextAnswer(["Santander"], [], True)) or ""
    assert done.startswith("Hello,") and "don't need any documents" in done
    assert "sign your claim form" not in done
    assert triage.documents_answer("Ann", ContextAnswer([], ["photo_id"], True)) is None


def test_the_note_for_a_person() -> None:
    assert triage.person_note("the model could not answer") == (
        "AI triage: needs a person (the model could not answer)."
    )
