"""When a claimant may be phoned: the legal calling window, bank holidays and the claimant's
own preferred hours, all judged on the wall clock in the rules' time zone (Europe/London).

Instants go in and come out as timezone-aware UTC datetimes. Wall-clock rules make DST the
tricky part: 08:00 in London is 08:00 UTC in winter and 07:00 UTC in summer, and on the change
days some wall times happen twice or never. So rather than converting "today 08:00" to UTC and
hoping, `next_open` considers every instant at which openness can change (each window start on
either side of a fold, plus the offset transitions themselves) and keeps the first one that
`is_open` accepts: the two functions cannot disagree.

The preferred window is honoured where it overlaps the legal window. When it never overlaps on
any kind of day (say 22:00-07:00), honouring it would mean never calling, so it is ignored and
the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from domain.rules import CallingWindows

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bank holidays cannot fall on weekends (validated), so a long search means a broken config.
_MAX_DAYS_AHEAD = 800
_END_OF_DAY = time.max

Interval = tuple[time, time]  # [start, end) on the local wall clock


@dataclass(frozen=True)
class Opening:
    at: datetime  # UTC
    reason: str  # includes `note`
    note: str = ""  # "; the claimant's preferred hours ... are ignored", or empty


@dataclass(frozen=True)
class _Preferred:
    """The claimant's preferred hours as [start, end) pieces of a day; empty: no preference."""

    pieces: tuple[Interval, ...]
    label: str
    ignored: bool  # it never overlaps the legal window

    @property
    def applies(self) -> bool:
        return bool(self.pieces) and not self.ignored


def as_utc(at: datetime, what: str = "time") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def format_local(at: datetime, zone: tzinfo, reference: datetime | None = None) -> str:
    """Local wall time: "14:05" on the reference's local day, else "14:05 Tue 31 Mar", with
    the year added when it differs from the reference's."""
    local = at.astimezone(zone)
    text = f"{local:%H:%M}"
    ref = reference.astimezone(zone) if reference is not None else None
    if ref is not None and ref.date() == local.date():
        return text
    text += f" {_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    if ref is not None and ref.year != local.year:
        text += f" {local.year}"
    return text


# --- the day's allowed intervals -----------------------------------------------------------


def _legal(day: date, windows: CallingWindows) -> Interval | None:
    if windows.is_bank_holiday(day):
        return None
    if day.weekday() >= 5:
        return (windows.weekend_open, windows.weekend_close)
    return (windows.weekday_open, windows.weekday_close)


def _intersect(a: Interval, b: Interval) -> Interval | None:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return (start, end) if start < end else None


def _preferred(start: time | None, end: time | None, windows: CallingWindows) -> _Preferred:
    if start is None and end is None:
        return _Preferred((), "", False)
    lo = start if start is not None else time.min
    hi = end if end is not None else _END_OF_DAY
    label = f"{lo:%H:%M}-{hi:%H:%M}"
    if lo < hi:
        pieces: tuple[Interval, ...] = ((lo, hi),)
    elif lo > hi:  # wraps past midnight, e.g. 18:00-09:00
        pieces = ((lo, _END_OF_DAY), (time.min, hi))
    else:
        return _Preferred((), label, True)
    legal_kinds = (
        (windows.weekday_open, windows.weekday_close),
        (windows.weekend_open, windows.weekend_close),
    )
    overlaps = any(_intersect(p, legal) for p in pieces for legal in legal_kinds)
    return _Preferred(pieces, label, not overlaps)


def _intervals(day: date, windows: CallingWindows, preferred: _Preferred) -> list[Interval]:
    legal = _legal(day, windows)
    if legal is None:
        return []
    if not preferred.applies:
        return [legal]
    found = (_intersect(piece, legal) for piece in preferred.pieces)
    return sorted(i for i in found if i is not None)


def _open_at(at: datetime, windows: CallingWindows, preferred: _Preferred) -> bool:
    local = as_utc(at, "at").astimezone(windows.zone)
    wall = local.time()
    return any(s <= wall < e for s, e in _intervals(local.date(), windows, preferred))


# --- public API ----------------------------------------------------------------------------


def is_open(
    at: datetime,
    windows: CallingWindows,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
) -> bool:
    return _open_at(at, windows, _preferred(preferred_start, preferred_end, windows))


def callback_time_allowed(at: datetime, windows: CallingWindows) -> bool:
    """An agent-picked callback time: legal window and bank holidays only. The claimant chose
    the time on the phone, so their usual preferred hours do not apply."""
    return is_open(at, windows)


def _transitions(day: date, zone: ZoneInfo) -> list[datetime]:
    """UTC instants during the local `day` at which the UTC offset changes (DST)."""
    first = datetime.combine(day, time.min, zone).astimezone(UTC)
    last = datetime.combine(day + timedelta(days=1), time.min, zone).astimezone(UTC)
    if first.astimezone(zone).utcoffset() == last.astimezone(zone).utcoffset():
        return []
    # Bisect on whole seconds: tz database transitions are on whole seconds.
    lo, hi = int(first.timestamp()), int(last.timestamp())
    before = first.astimezone(zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return [datetime.fromtimestamp(hi, UTC)]


def _candidates(day: date, windows: CallingWindows, preferred: _Preferred) -> list[datetime]:
    """Every instant at which calling can become allowed during the local `day`."""
    zone = windows.zone
    found = _transitions(day, zone)
    for start, _ in _intervals(day, windows, preferred):
        for fold in (0, 1):  # both readings of a wall time repeated or skipped by DST
            found.append(datetime.combine(day, start, zone).replace(fold=fold).astimezone(UTC))
    return sorted(set(found))


def _day_label(day: date) -> str:
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"


def _closed_reason(
    at: datetime,
    until: datetime,
    windows: CallingWindows,
    preferred: _Preferred,
    reference: datetime,
) -> str:
    zone = windows.zone
    local = at.astimezone(zone)
    when = format_local(until, zone, reference)
    first, last = local.date(), until.astimezone(zone).date()
    skipped = [d for d in windows.bank_holidays if first <= d < last]
    legal = _legal(first, windows)
    if legal is not None and preferred.applies and legal[0] <= local.time() < legal[1]:
        reason = f"outside the claimant's preferred hours {preferred.label} until {when}"
    else:
        reason = f"calling window closed until {when}"
    if skipped:
        days = ", ".join(_day_label(d) for d in skipped)
        reason += f" (bank holiday {days})"
    return reason


def next_opening(
    at: datetime,
    windows: CallingWindows,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
    *,
    reference: datetime | None = None,
) -> Opening:
    """The earliest instant >= `at` when calling is allowed, with the reason in words.
    Times in the reason are shown relative to `reference` (default `at`): "08:00" on the
    same local day, "08:00 Wed 15 Jul" on another."""
    at = as_utc(at, "at")
    preferred = _preferred(preferred_start, preferred_end, windows)
    note = ""
    if preferred.ignored:
        note = (
            f"; the claimant's preferred hours {preferred.label} never fall inside "
            "the calling window, so they are ignored"
        )
    zone = windows.zone
    if _open_at(at, windows, preferred):
        return Opening(at, _open_reason(at, windows, preferred) + note, note)
    day = at.astimezone(zone).date()
    for offset in range(_MAX_DAYS_AHEAD):
        for candidate in _candidates(day + timedelta(days=offset), windows, preferred):
            if candidate > at and _open_at(candidate, windows, preferred):
                reason = _closed_reason(at, candidate, windows, preferred, reference or at)
                return Opening(candidate, reason + note, note)
    raise ValueError(f"no calling time within {_MAX_DAYS_AHEAD} days of {at.isoformat()}")


def _open_reason(at: datetime, windows: CallingWindows, preferred: _Preferred) -> str:
    local = at.astimezone(windows.zone)
    wall = local.time()
    for start, end in _intervals(local.date(), windows, preferred):
        if start <= wall < end:
            closes = "midnight" if end == _END_OF_DAY else f"{end:%H:%M}"
            return f"calling window open until {closes}"
    return "calling window open"  # unreachable: only called when open


def next_open(
    at: datetime,
    windows: CallingWindows,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
) -> datetime:
    return next_opening(at, windows, preferred_start, preferred_end).at


def explain(
    at: datetime,
    windows: CallingWindows,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
) -> str:
    """E.g. "calling window closed until 09:00 Sat 28 Mar" or "calling window open until 21:00"."""
    return next_opening(at, windows, preferred_start, preferred_end).reason


def callback_slots(day: date, windows: CallingWindows, step_minutes: int = 15) -> list[datetime]:
    """Allowed callback times on the local `day`, every `step_minutes` from midnight (so slots
    read 09:00, 09:15, ...), as UTC instants. A wall time skipped by DST is left out, and one
    repeated by DST is offered once (its first occurrence)."""
    if not 1 <= step_minutes <= 24 * 60:
        raise ValueError("step_minutes must be between 1 and 1440")
    zone = windows.zone
    slots: list[datetime] = []
    for minute in range(0, 24 * 60, step_minutes):
        wall = time(minute // 60, minute % 60)
        instant = datetime.combine(day, wall, zone).astimezone(UTC)
        back = instant.astimezone(zone)
        if back.date() == day and back.time() == wall and callback_time_allowed(instant, windows):
            slots.append(instant)
    return slots
