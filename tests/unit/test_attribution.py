"""domain.attribution: which events convert, the last contact within the window (not one
outside it, not one after the conversion), the link used, the retention cut-off and the
report period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from domain.attribution import (
    Contact,
    Conversion,
    LinkUse,
    attribute,
    conversion_of,
    conversions_in,
    look_back,
    months_before,
    report_period,
)
from schemas.attribution import ContactKind, ConversionKind
from schemas.outreach import ChangeEvent, ChangeKind

AT = datetime(2030, 3, 20, 15, 0, tzinfo=UTC)
WINDOW = timedelta(days=14)
USER = 7


def _signed(event_id: str = "binlog:1:users:7:signature_added:7") -> Conversion:
    conversion = conversion_of(ChangeEvent(event_id, ChangeKind.SIGNATURE_ADDED, USER, AT))
    assert conversion is not None
    return conversion


def test_signatures_and_completed_requirements_convert_once_per_subject() -> None:
    signed = _signed()
    assert signed.kind is ConversionKind.SIGNED and signed.subject_key == "signature:7"

    def requirement(status: str, event_id: str = "e") -> ChangeEvent:
        return ChangeEvent(event_id, ChangeKind.REQUIREMENT_CHANGED, USER, AT, claim_id=3,
                           requirement_id=31, requirement_status=status)  # fmt: skip

    received = conversion_of(requirement("RECEIVED"))
    approved = conversion_of(requirement("APPROVED"))
    assert received is not None and approved is not None
    assert received.kind is ConversionKind.DOCUMENTS
    assert received.subject_key == approved.subject_key == "requirement:31"
    assert received.claim_id == 3 and received.requirement_id == 31
    for status in ("PENDING", "REJECTED", "WAIVED"):
        assert conversion_of(requirement(status)) is None
    for kind in (ChangeKind.SIGNATURE_REMOVED, ChangeKind.REQUIREMENT_ADDED, ChangeKind.REFRESH):
        assert conversion_of(ChangeEvent("x", kind, USER, AT, requirement_id=31,
                                         requirement_status="RECEIVED")) is None  # fmt: skip
    # the same event twice (a redelivered item) is one conversion
    same = ChangeEvent("dup", ChangeKind.SIGNATURE_ADDED, USER, AT)
    assert len(conversions_in([same, same, requirement("RECEIVED", "r")])) == 2


def test_the_last_contact_within_the_window_is_credited() -> None:
    contacts = [
        Contact(USER, ContactKind.CALL, "1", AT - timedelta(days=15), agent_id=1),  # outside
        Contact(USER, ContactKind.SMS, "2", AT - timedelta(days=6), agent_id=2),
        Contact(USER, ContactKind.CALL, "3", AT - timedelta(days=2), agent_id=3, queue="unsigned"),
        Contact(USER, ContactKind.CALL, "4", AT + timedelta(minutes=1), agent_id=4),  # after
        Contact(USER + 1, ContactKind.CALL, "5", AT - timedelta(hours=1), agent_id=5),  # another
    ]
    got = attribute(_signed(), contacts, [], WINDOW)
    assert got.contact is not None and got.contact.ref == "3" and got.contact.agent_id == 3
    assert got.link_id is None

    # only a contact older than the window: credited to nobody (not to the old one)
    alone = attribute(_signed(), contacts[:1], [], WINDOW)
    assert alone.contact is None
    # exactly at the window's edge is inside; a tie at one instant goes to the call
    edge = Contact(USER, ContactKind.SMS, "9", AT - WINDOW)
    assert attribute(_signed(), [edge], [], WINDOW).contact == edge
    tie = [Contact(USER, ContactKind.SMS, "8", AT), Contact(USER, ContactKind.CALL, "7", AT)]
    tied = attribute(_signed(), tie, [], WINDOW).contact
    assert tied is not None and tied.kind is ContactKind.CALL


def test_the_last_link_used_within_the_window_is_credited() -> None:
    uses = [
        LinkUse(10, USER, AT - timedelta(days=20)),  # outside the window
        LinkUse(11, USER, AT - timedelta(days=3)),
        LinkUse(12, USER, AT - timedelta(hours=1)),
        LinkUse(13, USER, AT + timedelta(hours=1)),  # after the conversion
        LinkUse(14, USER + 1, AT - timedelta(minutes=5)),  # someone else's
    ]
    assert attribute(_signed(), [], uses, WINDOW).link_id == 12
    assert attribute(_signed(), [], uses[:1], WINDOW).link_id is None


def test_bad_windows_and_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        attribute(_signed(), [], [], timedelta(0))
    with pytest.raises(ValueError, match="nothing"):
        look_back([], WINDOW)
    span = look_back([_signed()], WINDOW)
    assert span.user_ids == [USER] and span.since == AT - WINDOW and span.until == AT


def test_months_before_is_calendar_months() -> None:
    assert months_before(datetime(2026, 3, 31, 9, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, 9, tzinfo=UTC
    )
    assert months_before(datetime(2026, 12, 3, tzinfo=UTC), 24) == datetime(2024, 12, 3, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(
        2024, 12, 15, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        months_before(AT, -1)


def test_report_period_is_whole_uk_days() -> None:
    start, end = report_period(date(2030, 3, 4), date(2030, 3, 5))
    assert start == datetime(2030, 3, 4, tzinfo=UTC)  # GMT in early March
    assert end == datetime(2030, 3, 6, tzinfo=UTC)
    summer_start, _ = report_period(date(2030, 7, 1), date(2030, 7, 1))
    assert summer_start == datetime(2030, 6, 30, 23, tzinfo=UTC)  # BST
    with pytest.raises(ValueError, match="before"):
        report_period(date(2030, 3, 5), date(2030, 3, 4))
