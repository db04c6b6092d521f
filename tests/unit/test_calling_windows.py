"""Calling windows on the London wall clock: weekdays, weekends, bank holidays, the claimant's
preferred hours, and both 2026 DST changes (29 March and 25 October)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calling_windows import (
    callback_slots,
    callback_time_allowed,
    explain,
    format_local,
    is_open,
    next_open,
    next_opening,
)
from domain.rules import CallingWindows

WINDOWS = CallingWindows()
NARROW = CallingWindows(weekday_open=time(10, 0), weekday_close=time(16, 30))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, sec, tzinfo=UTC)


# --- weekdays, weekends, bank holidays ---------------------------------------------------------


@pytest.mark.parametrize(
    "at, expected",
    [
        # winter (GMT = UTC): Monday 12 Jan 2026
        (utc(2026, 1, 12, 7, 59), False),
        (utc(2026, 1, 12, 8, 0), True),
        (utc(2026, 1, 12, 20, 59, 59), True),
        (utc(2026, 1, 12, 21, 0), False),
        # Saturday 10 Jan 2026: opens at 09:00
        (utc(2026, 1, 10, 8, 30), False),
        (utc(2026, 1, 10, 9, 0), True),
        # summer (BST = UTC+1): Wednesday 15 Jul 2026
        (utc(2026, 7, 15, 6, 59), False),
        (utc(2026, 7, 15, 7, 0), True),
        (utc(2026, 7, 15, 19, 59), True),
        (utc(2026, 7, 15, 20, 0), False),
        # bank holidays: closed all day
        (utc(2026, 12, 25, 12, 0), False),
        (utc(2026, 12, 28, 12, 0), False),
        (utc(2026, 4, 3, 12, 0), False),
    ],
)
def test_is_open(at: datetime, expected: bool) -> None:
    assert is_open(at, WINDOWS) is expected


def test_friday_evening_waits_for_saturday_morning() -> None:
    opening = next_opening(utc(2026, 1, 9, 21, 30), WINDOWS)
    assert opening.at == utc(2026, 1, 10, 9, 0)
    assert opening.reason == "calling window closed until 09:00 Sat 10 Jan"


def test_before_opening_the_same_day_shows_just_the_time() -> None:
    assert explain(utc(2026, 1, 12, 6, 0), WINDOWS) == "calling window closed until 08:00"


def test_open_explains_when_it_closes() -> None:
    assert explain(utc(2026, 1, 12, 12, 0), WINDOWS) == "calling window open until 21:00"
    assert next_open(utc(2026, 1, 12, 12, 0), WINDOWS) == utc(2026, 1, 12, 12, 0)


def test_easter_skips_good_friday_and_says_so() -> None:
    # Thursday 2 Apr 2026 21:30 BST; Friday 3 Apr is Good Friday.
    opening = next_opening(utc(2026, 4, 2, 20, 30), WINDOWS)
    assert opening.at == utc(2026, 4, 4, 8, 0)  # Saturday 09:00 BST
    assert opening.reason == "calling window closed until 09:00 Sat 4 Apr (bank holiday Fri 3 Apr)"


def test_easter_monday_skipped_from_the_weekend() -> None:
    assert next_open(utc(2026, 4, 5, 20, 30), WINDOWS) == utc(2026, 4, 7, 7, 0)


def test_christmas_2026_substitute_day() -> None:
    # Christmas Day Friday, Boxing Day Saturday (open), substitute Monday 28 Dec.
    assert next_open(utc(2026, 12, 24, 21, 0), WINDOWS) == utc(2026, 12, 26, 9, 0)
    assert next_open(utc(2026, 12, 27, 21, 0), WINDOWS) == utc(2026, 12, 29, 8, 0)


def test_new_year_reason_shows_the_year() -> None:
    reason = explain(utc(2027, 12, 31, 22, 0), WINDOWS)
    assert reason == "calling window closed until 09:00 Sat 1 Jan 2028"


def test_configured_narrow_window() -> None:
    assert not is_open(utc(2026, 1, 12, 9, 0), NARROW)
    assert next_open(utc(2026, 1, 12, 16, 30), NARROW) == utc(2026, 1, 13, 10, 0)
    assert is_open(utc(2026, 1, 10, 9, 0), NARROW)  # weekend hours unchanged


# --- DST -----------------------------------------------------------------------------------


def test_spring_forward_2026() -> None:
    # Sunday 29 Mar 2026: clocks go forward at 01:00 UTC. Weekend opening 09:00 BST = 08:00 UTC.
    assert next_open(utc(2026, 3, 28, 21, 0), WINDOWS) == utc(2026, 3, 29, 8, 0)
    assert not is_open(utc(2026, 3, 29, 7, 59), WINDOWS)
    assert is_open(utc(2026, 3, 29, 8, 0), WINDOWS)
    assert is_open(utc(2026, 3, 29, 19, 59), WINDOWS)
    assert not is_open(utc(2026, 3, 29, 20, 0), WINDOWS)  # 21:00 BST
    # The Friday before is winter time, the Monday after summer time.
    assert next_open(utc(2026, 3, 27, 5, 0), WINDOWS) == utc(2026, 3, 27, 8, 0)
    assert next_open(utc(2026, 3, 30, 5, 0), WINDOWS) == utc(2026, 3, 30, 7, 0)


def test_fall_back_2026() -> None:
    # Sunday 25 Oct 2026: clocks go back at 01:00 UTC. Weekend opening 09:00 GMT = 09:00 UTC.
    assert next_open(utc(2026, 10, 24, 20, 30), WINDOWS) == utc(2026, 10, 25, 9, 0)
    assert not is_open(utc(2026, 10, 25, 8, 0), WINDOWS)  # 08:00 GMT
    assert is_open(utc(2026, 10, 25, 20, 59), WINDOWS)
    assert not is_open(utc(2026, 10, 25, 21, 0), WINDOWS)
    # Saturday before: summer time, so 21:00 BST is 20:00 UTC.
    assert is_open(utc(2026, 10, 24, 19, 59), WINDOWS)
    assert not is_open(utc(2026, 10, 24, 20, 0), WINDOWS)
    assert next_open(utc(2026, 10, 26, 0, 0), WINDOWS) == utc(2026, 10, 26, 8, 0)


def test_reasons_use_local_time_across_dst() -> None:
    assert explain(utc(2026, 3, 29, 1, 30), WINDOWS) == "calling window closed until 09:00"
    assert explain(utc(2026, 10, 25, 1, 30), WINDOWS) == "calling window closed until 09:00"


# --- preferred windows -----------------------------------------------------------------------


def test_preferred_window_narrows_the_day() -> None:
    monday_noon = utc(2026, 1, 12, 12, 0)
    assert not is_open(monday_noon, WINDOWS, time(18, 0), time(20, 0))
    opening = next_opening(monday_noon, WINDOWS, time(18, 0), time(20, 0))
    assert opening.at == utc(2026, 1, 12, 18, 0)
    assert opening.reason == "outside the claimant's preferred hours 18:00-20:00 until 18:00"
    assert next_open(utc(2026, 1, 12, 20, 0), WINDOWS, time(18), time(20)) == utc(
        2026, 1, 13, 18, 0
    )


def test_preferred_window_is_clipped_to_the_legal_window() -> None:
    # Prefers 06:00-10:00: only 08:00-10:00 is legal on weekdays, 09:00-10:00 at weekends.
    assert next_open(utc(2026, 1, 12, 5, 0), WINDOWS, time(6), time(10)) == utc(2026, 1, 12, 8)
    assert next_open(utc(2026, 1, 10, 5, 0), WINDOWS, time(6), time(10)) == utc(2026, 1, 10, 9)


def test_preferred_window_only_possible_on_weekdays_skips_the_weekend() -> None:
    # 08:00-09:00 fits weekdays only: from Saturday, wait for Monday.
    opening = next_opening(utc(2026, 1, 10, 10, 0), WINDOWS, time(8), time(9))
    assert opening.at == utc(2026, 1, 12, 8, 0)
    assert opening.reason == (
        "outside the claimant's preferred hours 08:00-09:00 until 08:00 Mon 12 Jan"
    )


def test_preferred_window_wrapping_midnight() -> None:
    # Prefers 19:00-09:00 (evenings and early mornings).
    start, end = time(19), time(9)
    assert is_open(utc(2026, 1, 12, 8, 30), WINDOWS, start, end)
    assert not is_open(utc(2026, 1, 12, 12, 0), WINDOWS, start, end)
    assert next_open(utc(2026, 1, 12, 12, 0), WINDOWS, start, end) == utc(2026, 1, 12, 19)


def test_preferred_window_outside_calling_hours_is_ignored_and_said() -> None:
    opening = next_opening(utc(2026, 1, 12, 12, 0), WINDOWS, time(22), time(23))
    assert opening.at == utc(2026, 1, 12, 12, 0)
    assert "preferred hours 22:00-23:00 never fall inside the calling window" in opening.reason
    assert opening.note in opening.reason


def test_preferred_window_with_one_end() -> None:
    assert next_open(utc(2026, 1, 12, 9, 0), WINDOWS, time(17), None) == utc(2026, 1, 12, 17)
    assert not is_open(utc(2026, 1, 12, 12, 0), WINDOWS, None, time(11))
    assert is_open(utc(2026, 1, 12, 10, 0), WINDOWS, None, time(11))


def test_empty_preferred_window_is_ignored() -> None:
    assert is_open(utc(2026, 1, 12, 12, 0), WINDOWS, time(10), time(10))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(datetime(2026, 1, 12, 12, 0), WINDOWS)


# --- callbacks ---------------------------------------------------------------------------------


def test_callback_time_allowed_ignores_preferences_but_not_the_law() -> None:
    assert callback_time_allowed(utc(2026, 1, 12, 8, 0), WINDOWS)
    assert not callback_time_allowed(utc(2026, 1, 12, 21, 0), WINDOWS)
    assert not callback_time_allowed(utc(2026, 12, 25, 12, 0), WINDOWS)
    assert not callback_time_allowed(utc(2026, 1, 10, 8, 30), WINDOWS)


def test_callback_slots_weekday_weekend_holiday() -> None:
    weekday = callback_slots(date(2026, 1, 12), WINDOWS)
    assert weekday[0] == utc(2026, 1, 12, 8, 0)
    assert weekday[-1] == utc(2026, 1, 12, 20, 45)
    assert len(weekday) == 13 * 4
    saturday = callback_slots(date(2026, 1, 10), WINDOWS, step_minutes=30)
    assert saturday[0] == utc(2026, 1, 10, 9, 0)
    assert len(saturday) == 12 * 2
    assert callback_slots(date(2026, 12, 25), WINDOWS) == []


def test_callback_slots_on_dst_days_are_local_times() -> None:
    spring = callback_slots(date(2026, 3, 29), WINDOWS)
    assert spring[0] == utc(2026, 3, 29, 8, 0)  # 09:00 BST
    assert spring[-1] == utc(2026, 3, 29, 19, 45)  # 20:45 BST
    autumn = callback_slots(date(2026, 10, 25), WINDOWS)
    assert autumn[0] == utc(2026, 10, 25, 9, 0)  # 09:00 GMT
    assert len(spring) == len(autumn) == 48


def test_callback_slots_rejects_a_silly_step() -> None:
    with pytest.raises(ValueError, match="step_minutes"):
        callback_slots(date(2026, 1, 12), WINDOWS, step_minutes=0)


def test_format_local() -> None:
    ref = utc(2026, 7, 15, 9, 0)
    assert format_local(utc(2026, 7, 15, 13, 5), WINDOWS.zone, ref) == "14:05"
    assert format_local(utc(2026, 7, 16, 13, 5), WINDOWS.zone, ref) == "14:05 Thu 16 Jul"


# --- properties ----------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 1, 1),
    max_value=datetime(2028, 12, 20),
    timezones=st.just(UTC),
)
wall_times = st.times().map(lambda t: t.replace(second=0, microsecond=0))
preferences = st.one_of(
    st.just((None, None)),
    st.tuples(wall_times, wall_times),
    st.tuples(wall_times, st.none()),
    st.tuples(st.none(), wall_times),
)


def _minutes_between(start: datetime, end: datetime) -> list[datetime]:
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += timedelta(minutes=1)
    count = max(0, int((end - first) / timedelta(minutes=1)) + 1)
    return [t for t in (first + timedelta(minutes=i) for i in range(count)) if t < end]


@settings(max_examples=300, deadline=None)
@given(at=instants, preferred=preferences)
def test_next_open_is_open_not_earlier_and_nothing_earlier_is_open(
    at: datetime, preferred: tuple[time | None, time | None]
) -> None:
    start, end = preferred
    result = next_open(at, WINDOWS, start, end)
    assert result.tzinfo is UTC
    assert result >= at
    assert is_open(result, WINDOWS, start, end)
    if is_open(at, WINDOWS, start, end):
        assert result == at
    for minute in _minutes_between(at, result):
        assert not is_open(minute, WINDOWS, start, end), minute


# Sundays on which the clocks change, 2025-2028: probe the hours around them hardest.
DST_CHANGES = [
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2027, 3, 28),
    date(2027, 10, 31),
    date(2028, 3, 26),
    date(2028, 10, 29),
]
near_dst = st.builds(
    lambda day, seconds: datetime.combine(day, time(1), UTC) + timedelta(seconds=seconds),
    st.sampled_from(DST_CHANGES),
    st.integers(min_value=-2 * 86400, max_value=2 * 86400),
)


def test_dst_dates_are_the_real_changes() -> None:
    for day in DST_CHANGES:
        before = datetime.combine(day, time(0, 59), UTC).astimezone(WINDOWS.zone)
        after = datetime.combine(day, time(1, 1), UTC).astimezone(WINDOWS.zone)
        assert before.utcoffset() != after.utcoffset()


@settings(max_examples=300, deadline=None)
@given(at=near_dst, preferred=preferences)
def test_next_open_around_dst_changes(
    at: datetime, preferred: tuple[time | None, time | None]
) -> None:
    start, end = preferred
    result = next_open(at, WINDOWS, start, end)
    assert result >= at
    assert is_open(result, WINDOWS, start, end)
    for minute in _minutes_between(at, result):
        assert not is_open(minute, WINDOWS, start, end)


@settings(max_examples=200, deadline=None)
@given(at=instants)
def test_next_open_with_narrow_config(at: datetime) -> None:
    result = next_open(at, NARROW)
    assert result >= at
    assert is_open(result, NARROW)
    for minute in _minutes_between(at, result):
        assert not is_open(minute, NARROW)


@settings(max_examples=100, deadline=None)
@given(day=st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)))
def test_callback_slots_are_all_allowed_and_on_that_local_day(day: date) -> None:
    slots = callback_slots(day, WINDOWS)
    assert slots == sorted(set(slots))
    for slot in slots:
        assert callback_time_allowed(slot, WINDOWS)
        assert slot.astimezone(WINDOWS.zone).date() == day
    assert (slots == []) == WINDOWS.is_bank_holiday(day)
