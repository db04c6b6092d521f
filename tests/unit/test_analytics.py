"""The analytics' pure rules (`domain.analytics`): date ranges of UK days, time in each
state clipped to the range and to now, rates, hour-of-day buckets and CSV cells."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.analytics import (
    EARLIEST,
    LATEST,
    MAX_DAYS,
    DateRange,
    RangeError,
    StateSpan,
    StateTotal,
    clipped_seconds,
    csv_cell,
    csv_rows,
    day_start,
    hours_minutes,
    hours_of_day,
    last_days,
    parse_range,
    percent,
    rate,
    settled_days,
    time_in_states,
    uk_today,
)
from domain.attribution import UK
from schemas.enums import AgentState

TODAY = date(2026, 3, 29)  # the clocks went forward at 01:00 UTC that Sunday


def at(hour: float, day: int = 29) -> datetime:
    return datetime(2026, 3, day, tzinfo=UTC) + timedelta(hours=hour)


# --- ranges -------------------------------------------------------------------------------


def test_no_dates_is_the_last_seven_uk_days() -> None:
    assert parse_range(None, None, TODAY) == DateRange(date(2026, 3, 23), TODAY)
    assert parse_range("  ", "", TODAY) == last_days(TODAY)
    assert last_days(TODAY, 1) == DateRange(TODAY, TODAY)


def test_one_date_alone_is_completed_by_a_week() -> None:
    assert parse_range("2026-01-01", None, TODAY) == DateRange(date(2026, 1, 1), date(2026, 1, 7))
    assert parse_range(None, "2026-01-07", TODAY) == DateRange(date(2026, 1, 1), date(2026, 1, 7))
    assert parse_range(None, "2000-01-02", TODAY).first_day == EARLIEST
    assert parse_range("2100-12-30", None, TODAY).last_day == LATEST


def test_the_longest_range_is_allowed_and_one_day_more_is_not() -> None:
    longest = parse_range("2024-01-01", "2024-12-31", TODAY)  # a leap year: 366 days
    assert longest.days == MAX_DAYS
    with pytest.raises(RangeError, match=r"at most 366 days \(this range is 367\)"):
        parse_range("2024-01-01", "2025-01-01", TODAY)


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "message"),
    [
        ("2026-03-02", "2026-03-01", r"To \(2026-03-01\) is before From \(2026-03-02\)"),
        ("1st March", "2026-03-01", "From .'1st March'. is not a date"),
        ("2026-03-01", "2026-02-30", "To .'2026-02-30'. is not a date"),
        ("99999-01-01", "2026-03-01", "is not a date"),
        ("9999-12-31", "9999-12-31", "From must be between 2000-01-01 and 2100-12-31"),
        ("1999-12-31", "2000-01-01", "From must be between"),
        ("2026-01-01", "2101-01-01", "To must be between"),
        ("1" * 1000, "2026-03-01", r"'1{20}…'\) is not a date"),
    ],
)
def test_bad_ranges_are_refused_with_a_message(raw_from: str, raw_to: str, message: str) -> None:
    with pytest.raises(RangeError, match=message):
        parse_range(raw_from, raw_to, TODAY)


def test_a_range_is_uk_midnight_to_midnight_in_utc() -> None:
    spring = DateRange(date(2026, 3, 29), date(2026, 3, 29))  # a 23-hour day
    start, end = spring.period
    assert (start, end) == (
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 29, 23, tzinfo=UTC),
    )
    assert end - start == timedelta(hours=23)
    summer = DateRange(date(2026, 7, 1), date(2026, 7, 2))
    assert summer.period[0] == datetime(2026, 6, 30, 23, tzinfo=UTC)
    assert summer.days == 2
    assert summer.query() == {"from": "2026-07-01", "to": "2026-07-02"}


def test_today_is_the_uk_date() -> None:
    assert uk_today(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)
    assert uk_today(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2026, 12, 31)


# --- settled days ------------------------------------------------------------------------


def test_days_two_days_old_are_settled() -> None:
    week = DateRange(date(2026, 3, 23), date(2026, 3, 29))
    assert settled_days(week, date(2026, 3, 29)) == [date(2026, 3, d) for d in range(23, 28)]
    assert settled_days(week, date(2026, 3, 25)) == [date(2026, 3, 23)]
    assert settled_days(week, date(2026, 3, 24)) == []
    assert settled_days(week, date(2026, 4, 30)) == [date(2026, 3, d) for d in range(23, 30)]


def test_a_day_starts_at_uk_midnight() -> None:
    assert day_start(date(2026, 3, 29)) == datetime(2026, 3, 29, tzinfo=UTC)
    assert day_start(date(2026, 3, 30)) == datetime(2026, 3, 29, 23, tzinfo=UTC)


# --- time in each state -----------------------------------------------------------------------


def test_clipping_keeps_only_the_part_inside() -> None:
    start, stop = at(10), at(12)
    assert clipped_seconds(at(9), at(11), start, stop) == 3600
    assert clipped_seconds(at(11), at(13), start, stop) == 3600
    assert clipped_seconds(at(9), at(13), start, stop) == 7200
    assert clipped_seconds(at(10.5), at(11), start, stop) == 1800
    assert clipped_seconds(at(7), at(8), start, stop) == 0
    assert clipped_seconds(at(13), at(14), start, stop) == 0


def test_clipping_counts_real_time_across_a_clock_change() -> None:
    """Both ends in UK time on the day the clocks went forward: 23 hours passed, not 24."""
    start, end = DateRange(TODAY, TODAY).period
    assert clipped_seconds(start.astimezone(UK), end.astimezone(UK), start, end) == 23 * 3600
    assert clipped_seconds(start, end, start.astimezone(UK), end.astimezone(UK)) == 23 * 3600


def test_time_in_states_adds_whole_intervals_and_clips_the_crossing_ones() -> None:
    start, end = at(0), at(24)
    totals = [
        StateTotal(1, "ready", 3600),
        StateTotal(1, "on_call", 600),
        StateTotal(1, "ready", 60),  # two rows for one state add up
        StateTotal(2, "offline", 50_000),  # not working time
        StateTotal(2, "wrap_up", 30),
    ]
    spans = [
        StateSpan(1, "paused", at(-2), at(1)),  # began before the range: 1 h inside
        StateSpan(1, "ready", at(23), None),  # still ready: up to the range's end
        StateSpan(2, "paused", at(-5), None),  # paused all along
        StateSpan(3, "mystery", at(-5), None),  # a state we do not know: ignored
    ]
    found = time_in_states(totals, spans, start, end, now=at(48))
    assert found[1] == {
        AgentState.READY: 3600 + 60 + 3600,
        AgentState.PAUSED: 3600,
        AgentState.ON_CALL: 600,
        AgentState.WRAP_UP: 0,
    }
    assert found[2] == {
        AgentState.READY: 0,
        AgentState.PAUSED: 24 * 3600,
        AgentState.ON_CALL: 0,
        AgentState.WRAP_UP: 30,
    }
    assert 3 not in found


def test_a_running_state_counts_up_to_now_and_not_past_it() -> None:
    spans = [StateSpan(7, "ready", at(2), None)]
    start, end = at(0), at(24)
    assert time_in_states([], spans, start, end, now=at(5))[7][AgentState.READY] == 3 * 3600
    assert time_in_states([], spans, start, end, now=at(1))[7][AgentState.READY] == 0
    # a range that is still to come has no time in it
    later = time_in_states([], spans, at(48), at(72), now=at(30))
    assert later[7][AgentState.READY] == 0


# --- rates, buckets, formats ----------------------------------------------------------------


def test_rates_are_none_without_a_whole() -> None:
    assert rate(1, 4) == 0.25
    assert rate(0, 0) is None
    assert percent(rate(2, 3)) == "66.7%"
    assert percent(None) == ""
    assert percent(1.0, 0) == "100%"


def test_hours_of_day_are_all_24_in_order() -> None:
    hours = hours_of_day({9: (10, 4), 23: (1, 0)})
    assert [h.hour for h in hours] == list(range(24))
    assert (hours[9].calls, hours[9].reached, hours[9].contact_rate) == (10, 4, 0.4)
    assert hours[23].contact_rate == 0
    assert hours[0].contact_rate is None
    assert hours[9].label == "09:00"
    with pytest.raises(ValueError, match="not hours of the day"):
        hours_of_day({24: (1, 1)})


def test_durations_read_in_hours_or_seconds() -> None:
    assert hours_minutes(37) == "37s"
    assert hours_minutes(249) == "4m 09s"
    assert hours_minutes(43_500) == "12h 05m"
    assert hours_minutes(0.4) == "0s"
    assert hours_minutes(-5) == "0s"
    assert hours_minutes(None) == ""


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+44 7700 900000", "'+44 7700 900000"),
        ("-1+1", "'-1+1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        ("Alice (#3)", "Alice (#3)"),
        ("a=b", "a=b"),
        (None, ""),
        (12, "12"),
        (0.25, "0.25"),
        (1.0, "1"),
        (2 / 3, "0.6667"),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_csv_rows_quote_the_header_too_and_round_trip() -> None:
    rows = csv_rows(["=Agent", "Calls"], [['@x, "y"', 3], ["Bob", None]])
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [
        ["'=Agent", "Calls"],
        ['\'@x, "y"', "3"],
        ["Bob", ""],
    ]
