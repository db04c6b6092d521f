"""SMS rules: opt-out keywords, re-subscription, delivery-status order, number spellings,
the document reminder, and the API's list of dispositions."""

from __future__ import annotations

import pytest

from domain.dispositions import Disposition
from domain.sms import (
    MAX_BODY_LENGTH,
    Keyword,
    document_reminder,
    keyword_of,
    number_spellings,
    requirement_words,
    status_advances,
)
from domain.suppressions import (
    SMS_START,
    SMS_STOP,
    SuppressionRow,
    start_refusal,
    status_of,
)
from schemas.agent_api import DISPOSITIONS, SMS_MAX_LENGTH

USER, OTHER = 7, 8
NUMBER = "+447700900123"
SPELLINGS = number_spellings(NUMBER)


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", "  Stop \n", "STOPALL", "unsubscribe", "Cancel", "END", "quit"],
)
def test_stop_keywords(body: str) -> None:
    assert keyword_of(body) is Keyword.STOP


@pytest.mark.parametrize("body", ["START", " start ", "Unstop"])
def test_start_keywords(body: str) -> None:
    assert keyword_of(body) is Keyword.START


@pytest.mark.parametrize("body", ["Please stop calling me", "STOP!", "", "stopp", "Yes"])
def test_other_messages_are_not_keywords(body: str) -> None:
    assert keyword_of(body) is None


def _row(
    id: int, reason: str, user_id: int | None = USER, phone: str | None = NUMBER
) -> SuppressionRow:
    return SuppressionRow(id, user_id, phone, reason)


def test_no_rows_means_contactable() -> None:
    assert not status_of([], USER, SPELLINGS).suppressed


def test_stop_then_start_lifts_it_and_a_second_stop_restores_it() -> None:
    stop = _row(1, SMS_STOP)
    assert status_of([stop], USER, SPELLINGS).reasons == {SMS_STOP}
    start = _row(2, SMS_START)
    assert not status_of([stop, start], USER, SPELLINGS).suppressed
    again = _row(3, SMS_STOP)
    assert status_of(
        [start, again, stop], USER, SPELLINGS
    ).suppressed  # order of rows is irrelevant


def test_a_start_never_lifts_a_final_opt_out() -> None:
    rows = [_row(1, "do_not_call", phone=None), _row(2, SMS_STOP), _row(3, SMS_START)]
    status = status_of(rows, USER, SPELLINGS)
    assert status.reasons == {"do_not_call"}
    assert start_refusal(status_of(rows[:2], USER, SPELLINGS)) is not None


def test_the_number_and_the_claimant_are_judged_separately() -> None:
    # The number was stopped by whoever had it before; the claimant's own START (from
    # another number) does not lift the number's STOP.
    old_stop = _row(1, SMS_STOP, user_id=None)
    start_elsewhere = _row(2, SMS_START, phone="+447700900999")
    assert status_of([old_stop, start_elsewhere], USER, SPELLINGS).suppressed
    # ...but a START from that number does.
    assert not status_of([old_stop, _row(3, SMS_START)], USER, SPELLINGS).suppressed


def test_another_claimants_stop_on_a_different_number_does_not_count() -> None:
    rows = [_row(1, SMS_STOP, user_id=OTHER, phone="+447700900999")]
    assert not status_of(rows, USER, SPELLINGS).suppressed


def test_start_refusal_reasons() -> None:
    assert start_refusal(status_of([], USER, SPELLINGS)) == "not opted out"
    assert start_refusal(status_of([_row(1, SMS_STOP)], USER, SPELLINGS)) is None
    refused = start_refusal(status_of([_row(1, SMS_STOP), _row(2, "list")], USER, SPELLINGS))
    assert refused is not None and "list" in refused


def test_number_spellings_cover_e164_and_national() -> None:
    assert number_spellings("+44 7700 900123") == {"+447700900123", "07700900123"}
    assert number_spellings("07700900123") == {"+447700900123", "07700900123"}
    assert number_spellings(None) == frozenset()


def test_status_only_moves_forward() -> None:
    assert status_advances("sending", "queued")
    assert status_advances("queued", "sent")
    assert status_advances("sent", "delivered")
    assert not status_advances("delivered", "sent")  # a late callback
    assert not status_advances("delivered", "delivered")  # a repeat
    assert not status_advances("sent", "made-up")


def test_document_reminder_lists_each_outstanding_type_in_words() -> None:
    text = document_reminder("Ann", ["bank_statements", "photo_id", "bank_statements", "x_ray"])
    assert text.startswith("Hi Ann, this is Resolve My Claim.")
    assert "bank statements, photo ID (passport or driving licence) and x ray" in text
    assert text.count("bank statements") == 1
    assert "Reply STOP to opt out." in text
    assert len(text) <= MAX_BODY_LENGTH
    assert "a few documents" in document_reminder(None, [])
    assert requirement_words("signed_loa") == "a signed letter of authority"


def test_the_api_lists_every_disposition() -> None:
    assert set(DISPOSITIONS) == {d.value for d in Disposition}
    assert SMS_MAX_LENGTH == MAX_BODY_LENGTH
