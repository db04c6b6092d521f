"""The supervisor analytics' pure rules: the date range a report covers, time in each agent
state clipped to it, rates, hour-of-day buckets and CSV cells. No I/O and no clock reads:
"now" and "today" are passed in.

- A range is whole UK days (Europe/London), both ends included, as [start, end): a day
  across a clock change is 23 or 25 hours (`domain.attribution.report_period`). It is at
  most `MAX_DAYS` long and lies between `EARLIEST` and `LATEST`, so that every date in it
  is one PostgreSQL and Python can hold (9999-12-31 plus a day is not).
- Time in a state comes from `agent_state_changes`: each change starts an interval that the
  agent's next change ends. The database sums the intervals wholly inside the range
  (`StateTotal`); the few that cross its start or are still running (`StateSpan`, at most
  two per agent) are clipped here to [start, min(end, now)).
- A rate is a share of a count (None when the count is zero: "no calls", not "0%").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.attribution import UK, report_period
from schemas.enums import AgentState

DEFAULT_DAYS = 7
MAX_DAYS = 366
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
HOURS = range(24)
# The working states a supervisor reads time in (offline is not working time).
WORKING_STATES = (AgentState.READY, AgentState.PAUSED, AgentState.ON_CALL, AgentState.WRAP_UP)
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class RangeError(ValueError):
    """A date range that cannot be reported on; the message says why, for the supervisor."""


@dataclass(frozen=True)
class DateRange:
    """Whole UK days, `first_day` to `last_day` included."""

    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def period(self) -> tuple[datetime, datetime]:
        """[start, end): the UK midnights as UTC instants (Python subtracts two datetimes of
        one zone by their wall clocks, which across a clock change is an hour out)."""
        start, end = report_period(self.first_day, self.last_day)
        return start.astimezone(UTC), end.astimezone(UTC)

    def query(self) -> dict[str, str]:
        """The range as the page's query parameters."""
        return {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}


def uk_today(now: datetime) -> date:
    return now.astimezone(UK).date()


def last_days(today: date, days: int = DEFAULT_DAYS) -> DateRange:
    """The `days` UK days up to and including `today`."""
    return DateRange(today - timedelta(days=days - 1), today)


def _day(name: str, raw: str) -> date:
    text = raw.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise RangeError(f"{name} ({shown!r}) is not a date: write it as YYYY-MM-DD.") from None
    if not EARLIEST <= day <= LATEST:
        raise RangeError(f"{name} must be between {EARLIEST} and {LATEST}.")
    return day


def parse_range(raw_from: str | None, raw_to: str | None, today: date) -> DateRange:
    """The range a supervisor asked for: both dates given, or neither (the last
    `DEFAULT_DAYS` days to `today`); one alone is completed by the default length."""
    given_from = (raw_from or "").strip()
    given_to = (raw_to or "").strip()
    if not given_from and not given_to:
        return last_days(today)
    first = _day("From", given_from) if given_from else None
    last = _day("To", given_to) if given_to else None
    if first is None:
        assert last is not None
        first = max(EARLIEST, last - timedelta(days=DEFAULT_DAYS - 1))
    if last is None:
        last = min(LATEST, first + timedelta(days=DEFAULT_DAYS - 1))
    if last < first:
        raise RangeError(f"To ({last}) is before From ({first}).")
    chosen = DateRange(first, last)
    if chosen.days > MAX_DAYS:
        raise RangeError(f"Choose at most {MAX_DAYS} days (this range is {chosen.days}).")
    return chosen


# --- settled days -------------------------------------------------------------------------

# A UK day is settled once nothing more is written about it: calls end by the calling
# window's close (21:00), their outcomes and legs are written within the hour, and state
# changes are stamped with the time they happen. A day is counted once it is two days old
# (yesterday can still get the outcome of a call placed at 20:59), and its counts are kept.
SETTLE_DAYS = 2


def settled_days(chosen: DateRange, today: date) -> list[date]:
    """The days of the range that are settled on `today` (UK): their counts can be kept."""
    last = min(chosen.last_day, today - timedelta(days=SETTLE_DAYS))
    return [chosen.first_day + timedelta(days=n) for n in range((last - chosen.first_day).days + 1)]


def day_start(day: date) -> datetime:
    """The UK midnight that starts `day`, in UTC."""
    return report_period(day, day)[0].astimezone(UTC)


# --- time in each state ----------------------------------------------------------------------


@dataclass(frozen=True)
class StateTotal:
    """Seconds an agent spent in a state over intervals wholly inside the range."""

    agent_id: int
    state: str
    seconds: float


@dataclass(frozen=True)
class StateSpan:
    """One interval in a state that crosses the range's start or has not ended (`ended`
    None: the agent is still in that state)."""

    agent_id: int
    state: str
    began: datetime
    ended: datetime | None


def clipped_seconds(began: datetime, ended: datetime, start: datetime, stop: datetime) -> float:
    """How much of [began, ended) lies inside [start, stop) (timezone-aware; computed in UTC,
    so a clock change inside is counted as the time that really passed)."""
    inside = min(ended, stop).astimezone(UTC) - max(began, start).astimezone(UTC)
    return max(0.0, inside.total_seconds())


def time_in_states(
    totals: Iterable[StateTotal],
    spans: Iterable[StateSpan],
    start: datetime,
    end: datetime,
    now: datetime,
) -> dict[int, dict[AgentState, float]]:
    """Per agent, seconds in each working state over [start, end). A span still running
    counts up to `now`; nothing counts past `end` or `now` (a range that runs into the
    future has not happened yet)."""
    stop = min(end, now)
    found: dict[int, dict[AgentState, float]] = defaultdict(
        lambda: dict.fromkeys(WORKING_STATES, 0.0)
    )
    for total in totals:
        state = _working(total.state)
        if state is not None:
            found[total.agent_id][state] += total.seconds
    for span in spans:
        state = _working(span.state)
        if state is not None:
            ended = span.ended if span.ended is not None else stop
            found[span.agent_id][state] += clipped_seconds(span.began, ended, start, stop)
    return dict(found)


def _working(state: str) -> AgentState | None:
    try:
        known = AgentState(state)
    except ValueError:
        return None
    return known if known in WORKING_STATES else None


# --- rates and buckets -----------------------------------------------------------------------


def rate(part: int | float, whole: int | float) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


def percent(value: float | None, places: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{places}f}%"


def average(total: int | float, count: int) -> float | None:
    return total / count if count else None


@dataclass(frozen=True)
class HourFigures:
    """Calls started in one UK hour of the day (hour 9 is 09:00-09:59), over every day of
    the range."""

    hour: int
    calls: int
    reached: int

    @property
    def contact_rate(self) -> float | None:
        return rate(self.reached, self.calls)

    @property
    def label(self) -> str:
        return f"{self.hour:02d}:00"


def hours_of_day(counts: Mapping[int, tuple[int, int]]) -> list[HourFigures]:
    """All 24 UK hours in order from (calls, reached) per hour; an hour without calls is 0."""
    unknown = set(counts) - set(HOURS)
    if unknown:
        raise ValueError(f"not hours of the day: {sorted(unknown)}")
    return [HourFigures(h, *counts.get(h, (0, 0))) for h in HOURS]


def hours_minutes(seconds: float | None) -> str:
    """12h 05m, 4m 09s, 37s: long totals read in hours, short ones in seconds."""
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


# --- CSV ---------------------------------------------------------------------------------------


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet will not run: text starting with = + - @ (or a
    tab or carriage return) is prefixed with a quote. None is an empty cell."""
    if value is None:
        return ""
    text = f"{value:.4f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def csv_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[list[str]]:
    """The header and the rows, every cell made safe."""
    return [[csv_cell(c) for c in columns], *([csv_cell(v) for v in row] for row in rows)]
