"""The supervisor's calls list and audit viewer: their filters as read from a query string,
and the keyset that pages them (newest first). Pure: no I/O, the zone is passed in.

A value that cannot be a filter (a date past 2100, an id past the database's bigint, a
word where a number belongs) is a message for its field, collected for every field at once
(`InvalidFilters`), never an exception the views do not expect. Whether an agent or an
action exists is the services' question: it needs the database.

Days are UK days: "from 1 March to 3 March" is every instant from midnight starting
1 March to midnight ending 3 March, London time, whatever the clocks did in between.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.dispositions import Disposition
from schemas.enums import Queue

MAX_ID = 2**63 - 1  # every id is a PostgreSQL bigint
EARLIEST_DAY = date(2000, 1, 1)  # no call or audit entry is older than the dialler
LATEST_DAY = date(2100, 12, 31)
MAX_TEXT = 254  # the longest value any filter takes (an email address)
NO_OUTCOME = "none"  # the outcome filter's value for calls with no outcome recorded
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_ACTION = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")  # audit_log.action is 64 characters
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_KEYSET = re.compile(r"(-?[0-9]{1,17})\.([0-9]{1,19})")


class InvalidFilters(ValueError):
    """Field name -> what is wrong with its value (every field found wrong)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = dict(fields)


# --- values ----------------------------------------------------------------------------------


def _text(args: Mapping[str, str], name: str, errors: dict[str, str]) -> str | None:
    """The field trimmed, None when empty; too long is an error."""
    value = (args.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        errors[name] = f"At most {MAX_TEXT} characters."
        return None
    return value or None


def parse_id(raw: str | None) -> int | None:
    """A database id (1 to the bigint's largest), None when `raw` cannot be one."""
    if raw is None or not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def parse_day(raw: str | None) -> date | None:
    """A YYYY-MM-DD day between `EARLIEST_DAY` and `LATEST_DAY`, None otherwise."""
    if raw is None or not _DAY.fullmatch(raw):
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


@dataclass(frozen=True)
class DayRange:
    """UK days, both ends included (None: open)."""

    first: date | None = None
    last: date | None = None

    def instants(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """[start, end): midnight starting `first` and midnight ending `last`, in `zone`."""
        start = datetime.combine(self.first, time(), zone) if self.first else None
        end = datetime.combine(self.last + timedelta(days=1), time(), zone) if self.last else None
        return start, end


def _days(args: Mapping[str, str], errors: dict[str, str]) -> DayRange:
    found: dict[str, date | None] = {}
    for name in ("from", "to"):
        raw = _text(args, name, errors)
        found[name] = parse_day(raw) if raw else None
        if raw and found[name] is None and name not in errors:
            errors[name] = (
                f"A day as YYYY-MM-DD, between {EARLIEST_DAY:%d %b %Y} and {LATEST_DAY:%d %b %Y}."
            )
    first, last = found["from"], found["to"]
    if first and last and last < first:
        errors["to"] = "The last day is before the first."
    return DayRange(first, last)


# --- paging ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Keyset:
    """A row's place in newest-first order: its time, then its id (ties broken by id)."""

    at: datetime
    id: int

    def token(self) -> str:
        """For a link: the time in microseconds since 1970 (UTC) and the id."""
        micros = (self.at - EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.id}"

    @classmethod
    def parse(cls, raw: str) -> Keyset | None:
        found = _KEYSET.fullmatch(raw)
        if found is None:
            return None
        row_id = parse_id(found.group(2))
        try:
            at = EPOCH + timedelta(microseconds=int(found.group(1)))
        except OverflowError:
            return None
        if row_id is None or not EARLIEST_DAY.year <= at.year <= LATEST_DAY.year:
            return None
        return cls(at, row_id)


@dataclass(frozen=True)
class PageRequest:
    """Which page: the newest (neither), the one older than `before`, or the one newer
    than `after` (the "newer" link of an older page)."""

    before: Keyset | None = None
    after: Keyset | None = None


BAD_PAGE = "That page link is not valid any more; start again from the newest."


def parse_page(args: Mapping[str, str], errors: dict[str, str]) -> PageRequest:
    keys: dict[str, Keyset | None] = {}
    for name in ("before", "after"):
        raw = args.get(name) or ""
        keys[name] = Keyset.parse(raw) if raw else None
        if raw and keys[name] is None:
            errors["page"] = BAD_PAGE
    if keys["before"] and keys["after"]:
        errors["page"] = BAD_PAGE
    return PageRequest(keys["before"], keys["after"])


# --- the calls list --------------------------------------------------------------------------


AI_CALLS = "1"  # `ai=1`: the calls of AI agents only
AI_TEXTS = "sms"  # `ai=sms`: the AI's SMS conversations and inbound-text triage, not calls


@dataclass(frozen=True)
class CallFilters:
    agent_id: int | None = None
    outcome: str | None = None  # a Disposition's value, or NO_OUTCOME
    queue: str | None = None  # a Queue's value
    days: DayRange = field(default_factory=DayRange)
    ai_only: bool = False  # calls by AI agents only
    ai_texts: bool = False  # the AI's SMS conversations instead of calls

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for paging links), empty ones left out."""
        values = {
            "agent": str(self.agent_id) if self.agent_id else "",
            "outcome": self.outcome or "",
            "queue": self.queue or "",
            "from": self.days.first.isoformat() if self.days.first else "",
            "to": self.days.last.isoformat() if self.days.last else "",
            "ai": AI_TEXTS if self.ai_texts else AI_CALLS if self.ai_only else "",
        }
        return {name: value for name, value in values.items() if value}


OUTCOMES = frozenset(d.value for d in Disposition) | {NO_OUTCOME}
QUEUES = frozenset(q.value for q in Queue)


def parse_call_filters(args: Mapping[str, str]) -> tuple[CallFilters, PageRequest]:
    """The calls list's filters and page; `InvalidFilters` naming every bad field."""
    errors: dict[str, str] = {}
    agent_raw = _text(args, "agent", errors)
    agent_id = parse_id(agent_raw) if agent_raw else None
    if agent_raw and agent_id is None and "agent" not in errors:
        errors["agent"] = "Choose an agent from the list."
    outcome = _text(args, "outcome", errors)
    if outcome and outcome not in OUTCOMES and "outcome" not in errors:
        errors["outcome"] = "Choose an outcome from the list."
    queue = _text(args, "queue", errors)
    if queue and queue not in QUEUES and "queue" not in errors:
        errors["queue"] = "Choose a queue from the list."
    days = _days(args, errors)
    ai = (args.get("ai") or "").strip()
    ai_texts = ai == AI_TEXTS
    ai_only = ai in (AI_CALLS, "on", "true")
    page = parse_page(args, errors)
    if errors:
        raise InvalidFilters(errors)
    return CallFilters(agent_id, outcome, queue, days, ai_only, ai_texts), page


# --- the audit viewer ------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor_id: int | None = None  # an agent, by id...
    actor_email: str | None = None  # ...or by email (lower case)
    claimant_id: int | None = None
    action: str | None = None
    days: DayRange = field(default_factory=DayRange)

    def query(self) -> dict[str, str]:
        values = {
            "actor": str(self.actor_id) if self.actor_id else (self.actor_email or ""),
            "claimant": str(self.claimant_id) if self.claimant_id else "",
            "action": self.action or "",
            "from": self.days.first.isoformat() if self.days.first else "",
            "to": self.days.last.isoformat() if self.days.last else "",
        }
        return {name: value for name, value in values.items() if value}


def parse_audit_filters(args: Mapping[str, str]) -> tuple[AuditFilters, PageRequest]:
    """The audit viewer's filters and page; `InvalidFilters` naming every bad field."""
    errors: dict[str, str] = {}
    actor = _text(args, "actor", errors)
    actor_id = actor_email = None
    if actor and "actor" not in errors:
        if actor.isascii() and actor.isdigit():
            actor_id = parse_id(actor)
            if actor_id is None:
                errors["actor"] = "No agent has that id."
        elif _EMAIL.fullmatch(actor):
            actor_email = actor.lower()
        else:
            errors["actor"] = "An agent's id or email address."
    claimant_raw = _text(args, "claimant", errors)
    claimant_id = parse_id(claimant_raw) if claimant_raw else None
    if claimant_raw and claimant_id is None and "claimant" not in errors:
        errors["claimant"] = "A claimant's id: a whole number."
    action = _text(args, "action", errors)
    if action and not _ACTION.fullmatch(action) and "action" not in errors:
        errors["action"] = "Choose an action from the list."
    days = _days(args, errors)
    page = parse_page(args, errors)
    if errors:
        raise InvalidFilters(errors)
    return AuditFilters(actor_id, actor_email, claimant_id, action, days), page


# --- CSV ------------------------------------------------------------------------------------

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection):
# such a cell is written with a leading apostrophe, which shows it as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """`value` as a CSV cell's text that no spreadsheet will run."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
