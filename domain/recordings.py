"""Recordings: how long they are kept, and who may play one back (pure; time is passed in).

A call's recording and transcript are deleted `recording_retention_months` calendar months
after the call started (`ComplianceRules`, never under 12): a call is past retention when it
started strictly before `retention_cutoff(now, months)`, so a call at the cut-off itself is
kept until the next day's clean-up.
"""

from __future__ import annotations

import calendar
from datetime import datetime

from schemas.enums import AgentRole

# Who may play back any recording; an agent may play back only the calls they made.
PLAYS_EVERY_RECORDING = frozenset({AgentRole.SUPERVISOR, AgentRole.ADMIN})


def months_before(at: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months earlier; the day is clamped to the
    end of a shorter month (31 March less one month is 28 or 29 February)."""
    if months < 0:
        raise ValueError("months must not be negative")
    index = at.year * 12 + (at.month - 1) - months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def retention_cutoff(now: datetime, retention_months: int) -> datetime:
    """Recordings of calls started before this are past retention."""
    return months_before(now, retention_months)


def may_play(role: AgentRole, agent_id: int, caller_agent_id: int | None) -> bool:
    """Supervisors and admins may play any recording; an agent only the calls they made."""
    if role in PLAYS_EVERY_RECORDING:
        return True
    return caller_agent_id is not None and caller_agent_id == agent_id


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes the recording does not have."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) a `Range: bytes=...` header asks for out of
    `size`; None for the whole file (no header, or one this server ignores: another unit,
    several ranges, or malformed, which RFC 9110 lets a server answer with the whole).
    Raises `RangeNotSatisfiable` when the range starts past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header.removeprefix("bytes=").strip().partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(header)
    if end < start:
        return None
    return start, end
