"""When a claimant may next be phoned, and why not sooner.

`earliest_contact` returns `(None, reason)` when outreach must never happen (opted out, which
is final; deceased; no phone number), otherwise the latest of every constraint (a scheduled
callback, the cooldown after the last outcome, the abandoned-call lock, the pause after too
many failed attempts, the contact caps) moved into the next open calling window. The reason
names the binding constraint, so "why not now?" always has an answer.

Rolling 7-day caps: `ContactHistory` carries counts, not the individual attempt times, so we
cannot tell when the oldest counted attempt leaves the window. `last_contact_at + 7 days` is
when the newest one leaves, by which time all of them have: a conservative bound (never too
early for this claimant's own calls). When a phone number is shared, another claimant's call
may be newer than ours; the workflow re-reads the history and re-assesses when `not_before`
arrives, so the cap still holds, only the first estimate is early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.calling_windows import as_utc, format_local, next_opening
from domain.dispositions import Disposition, effect_of
from domain.rules import Caps, ContactRules, DiallerRules
from schemas.outreach import ClaimantFacts, ContactHistory

ROLLING_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class _Constraint:
    until: datetime
    reason: str


def _disposition(value: str | None) -> Disposition | None:
    """Unknown strings (an outcome retired from the enum) carry no cooldown."""
    if value is None:
        return None
    try:
        return Disposition(value)
    except ValueError:
        return None


def _never(facts: ClaimantFacts, history: ContactHistory) -> str | None:
    last = _disposition(history.last_disposition)
    if facts.opted_out or (last is not None and effect_of(last).opt_out):
        return "opted out: outreach stopped for good"
    if facts.deceased or last is Disposition.DECEASED:
        return "recorded as deceased: outreach stopped"
    if facts.phone_key is None:
        return "no phone number to call"
    return None


def _next_local_midnight(now: datetime, zone: ZoneInfo) -> datetime:
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time.min, zone).astimezone(UTC)


def _cap_constraints(
    what: str,
    caps: Caps,
    today: int,
    week: int,
    last_contact_at: datetime | None,
    now: datetime,
    zone: ZoneInfo,
) -> list[_Constraint]:
    found: list[_Constraint] = []
    if today >= caps.daily:
        until = _next_local_midnight(now, zone)  # daily caps reset at local midnight
        found.append(_Constraint(until, f"daily cap of {caps.daily} {what} reached; next day"))
    if week >= caps.rolling_7d:
        until = last_contact_at + ROLLING_WINDOW if last_contact_at is not None else now
        if until <= now:
            # Counts say the cap is hit but the last contact has left the window: the data
            # disagree, so wait for tomorrow's counts rather than trust either.
            until = _next_local_midnight(now, zone)
        when = format_local(until, zone, now)
        found.append(
            _Constraint(
                until, f"rolling 7-day cap of {caps.rolling_7d} {what} reached until {when}"
            )
        )
    return found


def _constraints(
    facts: ClaimantFacts,
    history: ContactHistory,
    rules: ContactRules,
    zone: ZoneInfo,
    now: datetime,
) -> list[_Constraint]:
    """Every reason to wait, in tie-break order (the first of equal deadlines is reported)."""
    found: list[_Constraint] = []
    if facts.callback_at is not None:
        callback_at = as_utc(facts.callback_at, "callback_at")
        when = format_local(callback_at, zone, now)
        found.append(_Constraint(callback_at, f"callback scheduled for {when}"))
    if history.last_abandoned_at is not None:
        until = as_utc(history.last_abandoned_at, "last_abandoned_at") + rules.abandoned_call_lock
        when = format_local(until, zone, now)
        found.append(
            _Constraint(
                until, f"abandoned call: {rules.abandoned_call_lock_hours}-hour lock until {when}"
            )
        )
    last = _disposition(history.last_disposition)
    last_at = history.last_disposition_at or history.last_contact_at
    if last is not None and last_at is not None:
        cooldown = rules.cooldown(last)
        if cooldown is not None:
            until = as_utc(last_at, "last_disposition_at") + cooldown
            when = format_local(until, zone, now)
            found.append(_Constraint(until, f"cooldown after {last.value} until {when}"))
    failed = history.consecutive_failed_attempts
    latest = max(
        (as_utc(t) for t in (history.last_contact_at, history.last_disposition_at) if t),
        default=None,
    )
    if failed >= rules.max_consecutive_failed_attempts and latest is not None:
        until = latest + rules.failed_attempts_pause
        when = format_local(until, zone, now)
        found.append(
            _Constraint(until, f"{failed} consecutive failed attempts: paused until {when}")
        )
    last_contact = as_utc(history.last_contact_at) if history.last_contact_at else None
    found += _cap_constraints(
        "calls",
        rules.claimant_caps,
        history.attempts_today,
        history.attempts_7d,
        last_contact,
        now,
        zone,
    )
    found += _cap_constraints(
        "calls to this number",
        rules.number_caps,
        history.number_attempts_today,
        history.number_attempts_7d,
        last_contact,
        now,
        zone,
    )
    return found


def earliest_contact(
    facts: ClaimantFacts, history: ContactHistory, rules: DiallerRules, now: datetime
) -> tuple[datetime | None, str]:
    now = as_utc(now, "now")
    never = _never(facts, history)
    if never is not None:
        return None, never
    windows = rules.calling_windows
    binding: _Constraint | None = None
    for constraint in _constraints(facts, history, rules.contact, windows.zone, now):
        if constraint.until > now and (binding is None or constraint.until > binding.until):
            binding = constraint
    start = binding.until if binding is not None else now
    # A callback time was agreed with the claimant, so it replaces their usual preferred hours.
    if facts.callback_at is not None:
        opening = next_opening(start, windows, reference=now)
    else:
        opening = next_opening(
            start, windows, facts.preferred_call_start, facts.preferred_call_end, reference=now
        )
    if binding is None:
        if opening.at == now:
            return now, f"can call now ({opening.reason})"
        return opening.at, opening.reason
    if opening.at == start:
        return start, binding.reason + opening.note
    return opening.at, f"{binding.reason}, then {opening.reason}"
