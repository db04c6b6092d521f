"""The callback booking rule (pure): inside the calling windows and within the days offered
it is accepted; otherwise the reason and the next allowed times, one a day, each itself
allowed. Times at the calendar's edge are refused, never an error."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from domain.callback_booking import refuse_callback
from domain.calling_windows import callback_time_allowed
from domain.rules import parse_rules

LONDON = ZoneInfo("Europe/London")
WINDOWS = parse_rules("").calling_windows.model_copy(
    update={"bank_holidays": [date(2026, 12, 25), date(2026, 12, 28)]}
)
NOW = datetime(2026, 12, 23, 10, 0, tzinfo=UTC)  # a Wednesday


def london(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), LONDON)


def test_a_time_inside_the_windows_is_accepted() -> None:
    assert refuse_callback(london(date(2026, 12, 24), 10), NOW, WINDOWS, days_ahead=7) is None


def test_a_bank_holiday_is_refused_with_the_next_openings() -> None:
    refused = refuse_callback(london(date(2026, 12, 25), 10), NOW, WINDOWS, days_ahead=7)
    assert refused is not None
    assert "outside the calling windows" in refused.reason and "bank holiday" in refused.reason
    days = [t.astimezone(LONDON).date() for t in refused.next_allowed]
    # Boxing Day (a Saturday), then Sunday; Monday the 28th is a bank holiday, the 29th is
    # past the 7 days offered (23rd to 29th: the 30th is the first day not offered)
    assert days == [date(2026, 12, 26), date(2026, 12, 27), date(2026, 12, 29)]
    assert all(callback_time_allowed(t, WINDOWS) for t in refused.next_allowed)


def test_past_and_too_far_ahead_are_refused() -> None:
    past = refuse_callback(NOW - timedelta(minutes=1), NOW, WINDOWS, days_ahead=7)
    assert past is not None and "has passed" in past.reason
    assert past.next_allowed[0] == NOW  # the windows are open now
    far = refuse_callback(london(date(2026, 12, 30), 10), NOW, WINDOWS, days_ahead=7)
    assert far is not None and "7 days ahead" in far.reason


def test_times_at_the_calendars_edge_are_refused_not_an_error() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    late = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5)))
    for at, reason in ((early, "has passed"), (late, "days ahead")):
        refused = refuse_callback(at, NOW, WINDOWS, days_ahead=7)
        assert refused is not None and reason in refused.reason


@given(st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)))
def test_accepted_or_refused_with_allowed_next_times(at: datetime) -> None:
    refused = refuse_callback(at, NOW, WINDOWS, days_ahead=7)
    if refused is None:
        assert at > NOW and callback_time_allowed(at, WINDOWS)
        return
    assert refused.reason
    assert len(refused.next_allowed) <= 3 and list(refused.next_allowed) == sorted(
        set(refused.next_allowed)
    )
    for t in refused.next_allowed:
        assert t >= NOW and callback_time_allowed(t, WINDOWS)
        assert refuse_callback(t, NOW, WINDOWS, days_ahead=7) is None
