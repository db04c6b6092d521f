"""Whether an agent may book a callback at a given time, and if not, why and when they may.

The console's callback form and the API's `POST /api/claimants/<id>/callbacks` both ask here
before the workflow is asked, so a refusal reads the same everywhere and carries the next
allowed times (the workflow's `save_callback` activity checks the windows again, last).
Pure: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from domain.calling_windows import callback_time_allowed, explain, next_opening
from domain.rules import CallingWindows

SUGGESTIONS = 3  # next allowed times offered with a refusal


@dataclass(frozen=True)
class CallbackRefused:
    reason: str
    next_allowed: tuple[datetime, ...]  # UTC; the next openings of the calling windows


def _last_day(now: datetime, windows: CallingWindows, days_ahead: int) -> datetime:
    """The end of the last local day a callback may be booked on (today counts as one)."""
    last = now.astimezone(windows.zone).date() + timedelta(days=days_ahead)
    return datetime.combine(last, time.min, windows.zone).astimezone(UTC)


def next_allowed_times(
    after: datetime, until: datetime, windows: CallingWindows, count: int = SUGGESTIONS
) -> tuple[datetime, ...]:
    """The next `count` openings of the calling windows from `after` (one a day; `after`
    itself when it is open), before `until`."""
    found: list[datetime] = []
    moment = after
    while len(found) < count and moment < until:
        opening = next_opening(moment, windows).at
        if opening >= until:
            break
        found.append(opening)
        next_day = opening.astimezone(windows.zone).date() + timedelta(days=1)
        moment = datetime.combine(next_day, time.min, windows.zone).astimezone(UTC)
    return tuple(found)


def _utc(at: datetime) -> datetime:
    """`at` in UTC; a time at the calendar's edge (year 1 east of UTC, year 9999 west of it)
    has no UTC reading, and stands for "long past" or "far ahead"."""
    try:
        return at.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if at.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)


def refuse_callback(
    at: datetime,
    now: datetime,
    windows: CallingWindows,
    *,
    days_ahead: int,
    lead: timedelta = timedelta(0),
) -> CallbackRefused | None:
    """None if a callback at `at` (aware) may be booked at `now`: after `now` + `lead`,
    within `days_ahead` local days (today the first) and inside the calling windows (bank
    holidays included). Otherwise the reason, for the agent, and the next allowed times."""
    at, now = _utc(at), now.astimezone(UTC)
    earliest = now + lead
    until = _last_day(now, windows, days_ahead)
    if at < earliest:
        reason = "That callback time has passed; choose a later one."
        return CallbackRefused(reason, next_allowed_times(earliest, until, windows))
    if at >= until:
        reason = f"Callbacks can be booked up to {days_ahead} days ahead."
        return CallbackRefused(reason, next_allowed_times(earliest, until, windows))
    if not callback_time_allowed(at, windows):
        local = at.astimezone(windows.zone)
        when = f"{local:%H:%M} on {local:%a} {local.day} {local:%b}"
        reason = f"{when} is outside the calling windows ({explain(at, windows)})."
        return CallbackRefused(reason, next_allowed_times(at, until, windows))
    return None
