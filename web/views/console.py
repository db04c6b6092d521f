"""What the console's templates show, built by pure functions: display filters (UK time,
money, phone numbers), and the views that must read true when they are shown: "why now" at
render time, the confirmation of a saved outcome, and the callback picker, whose offered
times are exactly the ones an outcome saves. What the routes do is in `web.actions.console`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from quart import Quart

from domain.callback_booking import refuse_callback
from domain.calling_windows import callback_slots, explain, format_local
from domain.rules import CallingWindows
from web.services import services
from web.temporal_links import outreach_query, visibility_url
from web.voice import STATUS_LABELS

LONDON = ZoneInfo("Europe/London")
QUEUE_LABELS = {
    "unsigned": "Unsigned",
    "outstanding": "Outstanding documents",
    "callback": "Callbacks",
}
CALLBACK_DAYS = 7  # today and the next six days
CALLBACK_LEAD = timedelta(minutes=5)  # the earliest callback offered
UNREADABLE_CALLBACK = "That callback time could not be read; choose one from the list."


# --- display filters ----------------------------------------------------------------------


def _local(at: datetime | None) -> datetime | None:
    return at.astimezone(LONDON) if at is not None else None


def uk_time(at: datetime | None) -> str:
    local = _local(at)
    return f"{local:%H:%M}" if local else ""


def uk_time_iso(value: str | None) -> str:
    """An ISO instant (as live events carry them) as UK wall time."""
    try:
        return uk_time(datetime.fromisoformat(value)) if value else ""
    except ValueError:
        return ""


def uk_datetime(at: datetime | None) -> str:
    """ "Tue 31 Mar 2026, 14:05" (UK time)."""
    local = _local(at)
    if local is None:
        return ""
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M}"


def uk_date(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:%a} {value.day} {value:%b %Y}"


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    minutes, secs = divmod(total, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def pounds(value: float | None) -> str:
    return "" if value is None else f"£{value:,.0f}"


def phone(number: str | None) -> str:
    """+447700900123 -> 07700 900123 (UK mobiles and landlines, as agents read them)."""
    if not number:
        return ""
    if number.startswith("+44") and len(number) == 13:
        national = "0" + number[3:]
        return f"{national[:5]} {national[5:]}"
    return number


def humanise(value: str | None) -> str:
    return (value or "").replace("_", " ").replace("-", " ").strip().capitalize()


def call_status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", humanise(status))


# --- "why now", true when it is read ---------------------------------------------------------


def why_now(
    not_before: datetime | None,
    reason: str,
    now: datetime,
    windows: CallingWindows,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
) -> str:
    """The task's "why now" as it reads at `now`.

    `reason` was written when the task was assessed ("calling window closed until 08:00")
    and the workflow does not re-assess when `not_before` arrives, so once that time has
    passed the words describe a wait that is over. A wait still ahead stays true (its times
    are on or after the day it was written), so it is shown as written; a wait that is over
    is replaced by when it ended and where the calling window stands now."""
    if not_before is None or not_before > now:
        return reason
    since = format_local(not_before, windows.zone, now)
    return f"callable since {since}; {explain(now, windows, preferred_start, preferred_end)}"


def _why_now_at_render(
    not_before: datetime | None,
    reason: str,
    preferred_start: time | None = None,
    preferred_end: time | None = None,
) -> str:
    windows = services().rules().calling_windows
    return why_now(not_before, reason, datetime.now(UTC), windows, preferred_start, preferred_end)


# --- the confirmation of a saved outcome -------------------------------------------------------


def where_claimant_stands(
    queue: str | None, not_before: datetime | None, reason: str, now: datetime
) -> str:
    """Where the claimant is after an outcome, from the workflow's new assessment."""
    if queue is None or not_before is None:
        return f"no further calls ({reason})"
    name = QUEUE_LABELS.get(queue, humanise(queue))
    if not_before <= now:
        return f"in the {name} queue, callable now ({reason})"
    return f"in the {name} queue from {uk_datetime(not_before)} UK time ({reason})"


def outcome_confirmation(outcome_label: str, recorded: Any, now: datetime) -> str:
    """ "Outcome saved: <outcome>; <where the claimant now stands>." `recorded` is the
    workflow's `OutcomeRecorded` (None when it is not known, e.g. wrap-up after a reload)."""
    if recorded is None:
        return f"Outcome saved: {outcome_label}."
    queue = recorded.stage.queue
    stands = where_claimant_stands(
        queue.value if queue is not None else None, recorded.not_before, recorded.reason, now
    )
    return f"Outcome saved: {outcome_label}; {stands}."


# --- the callback picker: what is shown is what is saved ---------------------------------------


@dataclass(frozen=True)
class CallbackDay:
    day: date  # the calling windows' local day (UK)
    label: str
    slots: list[datetime]  # UTC instants; shown as the local wall time on `day`


def offered_callback_days(now: datetime, windows: CallingWindows) -> list[CallbackDay]:
    """Today and the next six local days, each with the callback times the windows allow
    (from `CALLBACK_LEAD` after `now`); days without one are left out."""
    today = now.astimezone(windows.zone).date()
    found: list[CallbackDay] = []
    for offset in range(CALLBACK_DAYS):
        day = today + timedelta(days=offset)
        slots = [s for s in callback_slots(day, windows) if s >= now + CALLBACK_LEAD]
        if not slots:
            continue
        name = f"{day:%a} {day.day} {day:%b}"
        label = {0: f"Today ({name})", 1: f"Tomorrow ({name})"}.get(offset, name)
        found.append(CallbackDay(day, label, slots))
    return found


def parse_callback_time(
    raw: str, day: str, now: datetime, windows: CallingWindows
) -> tuple[datetime | None, str | None]:
    """The submitted callback instant (UTC), or why it cannot be used.

    `day` is the day the picker showed (empty when the client sent none): a time from
    another day means the time list was stale (a lost refresh, a browser restoring the form,
    no script), so the agent saw one day and would have saved another; it is refused. The
    "7 days ahead" limit counts local days, as the picker offers them, not 168 hours (a
    clock change in between makes those differ by an hour)."""
    if not raw:
        return None, "Choose a callback day and time."
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None, UNREADABLE_CALLBACK
    if at.tzinfo is None or at.utcoffset() is None:
        return None, UNREADABLE_CALLBACK
    try:
        at = at.astimezone(UTC)
        local = at.astimezone(windows.zone)
    except OverflowError:  # year 1 east of UTC, year 9999 west: off the calendar
        return None, UNREADABLE_CALLBACK
    when = f"{local:%H:%M} on {local:%a} {local.day} {local:%b}"
    if day and day != local.date().isoformat():
        return None, f"The time chosen ({when}) is not on the day shown; choose the time again."
    # The booking rules are the callback form's and the API's: one place says them. A time
    # at `now` itself has passed (hence the microsecond of lead).
    refused = refuse_callback(
        at, now, windows, days_ahead=CALLBACK_DAYS, lead=timedelta(microseconds=1)
    )
    if refused is not None:
        return None, refused.reason
    return at, None


def _temporal_ui_home() -> str:
    """The Temporal UI's list of running outreach workflows (supervisor menu)."""
    settings = services().settings
    return visibility_url(settings, outreach_query())


def install_filters(app: Quart) -> None:
    app.jinja_env.filters.update(
        call_status_label=call_status_label,
        uk_time_iso=uk_time_iso,
        uk_time=uk_time,
        uk_datetime=uk_datetime,
        uk_date=uk_date,
        duration=duration,
        pounds=pounds,
        phone=phone,
        humanise=humanise,
    )
    app.jinja_env.globals["why_now"] = _why_now_at_render
    app.jinja_env.globals["temporal_ui_home"] = _temporal_ui_home
    app.jinja_env.globals["queue_label"] = lambda q: QUEUE_LABELS.get(str(q), humanise(str(q)))
