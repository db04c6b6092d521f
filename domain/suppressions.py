"""Opt-outs: when is a claimant (or a phone number) suppressed, and may a START lift it?

The `suppressions` table is append-only (a trigger refuses UPDATE and DELETE), so an opt-out
is never edited away. Re-subscription by SMS is modelled as another appended row:

- `sms_stop`: the claimant (or the number) replied STOP, UNSUBSCRIBE, ...
- `sms_start`: the same claimant (or number) later replied START or UNSTOP.

For the two SMS reasons only the latest row counts, separately for the claimant (rows with
their `user_id`) and for the number (rows with that `phone_number`): a START lifts the STOP
it follows. Every other reason (`do_not_call`, `list`, an opt-out from the main app, ...)
is final: no row ever lifts it, so a START from a claimant who is also on do-not-call
changes nothing. Pure functions; the queries are in `adapters.suppressions`.

Imported lists (`dialler compliance suppress FILE`, reason `list`) name a number (E.164) or
an email address (lower-case); they are final like `do_not_call`, and end only by a dated,
audited removal (`suppression_removals`): a removed row no longer counts. `parse_import`
reads such a file line by line (`IMPORT_COLUMNS`), rejecting a bad line with its number.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from domain.phones import to_e164

SMS_STOP = "sms_stop"
SMS_START = "sms_start"
SMS_REASONS = frozenset({SMS_STOP, SMS_START})
IMPORTED = "list"  # the reason of every row an imported list adds


@dataclass(frozen=True)
class SuppressionRow:
    id: int  # identity: a later row has a larger id
    user_id: int | None
    phone_number: str | None
    reason: str
    email: str | None = None
    removed: bool = False  # a dated, audited removal ended it (imported rows only)


@dataclass(frozen=True)
class SuppressionStatus:
    """The reasons in force for one claimant and number (empty: they may be contacted)."""

    reasons: frozenset[str]

    @property
    def suppressed(self) -> bool:
        return bool(self.reasons)

    @property
    def only_sms_stop(self) -> bool:
        """Suppressed by an SMS STOP and nothing else: the claimant's own START may lift it."""
        return self.reasons == {SMS_STOP}


def _latest_sms_reason(rows: Iterable[SuppressionRow]) -> str | None:
    latest = max((r for r in rows if r.reason in SMS_REASONS), key=lambda r: r.id, default=None)
    return latest.reason if latest is not None else None


def status_of(
    rows: Iterable[SuppressionRow],
    user_id: int | None,
    numbers: Collection[str],
    emails: Collection[str] = (),
) -> SuppressionStatus:
    """What `rows` (every row naming `user_id`, one of `numbers` or one of `emails`) say
    about contacting this claimant at this number and address. `numbers` are spellings of
    one number (+44..., 0...); `emails` are lower-case. Removed rows do not count."""
    rows = [r for r in rows if not r.removed]
    mine = [r for r in rows if user_id is not None and r.user_id == user_id]
    by_number = [r for r in rows if r.phone_number is not None and r.phone_number in numbers]
    by_email = [r for r in rows if r.email is not None and r.email in emails]
    reasons = {r.reason for r in mine + by_number + by_email if r.reason not in SMS_REASONS}
    if _latest_sms_reason(mine) == SMS_STOP or _latest_sms_reason(by_number) == SMS_STOP:
        reasons.add(SMS_STOP)
    return SuppressionStatus(frozenset(reasons))


def start_refusal(status: SuppressionStatus) -> str | None:
    """Why a START from the claimant cannot re-subscribe them (None: it can)."""
    if not status.suppressed:
        return "not opted out"
    if not status.only_sms_stop:
        others = sorted(status.reasons - {SMS_STOP})
        return "suppressed for a reason an SMS cannot lift: " + ", ".join(others)
    return None


# --- removals -------------------------------------------------------------------------------

REMOVAL_REASON_MAX = 500
REMOVED_BY_MAX = 120  # suppression_removals.removed_by


def removal_refusal(
    row: SuppressionRow | None, reason: str, removed_by: str, effective_at: datetime, now: datetime
) -> str | None:
    """Why this removal cannot be recorded (None: it can). Only an imported suppression
    still in force can be removed, with a reason, a name, and a date not in the future."""
    if row is None:
        return "no such suppression"
    if row.reason != IMPORTED:
        return (
            f"suppression {row.id} is a '{row.reason}' opt-out, not an imported one: "
            "only imported suppressions can be removed"
        )
    if row.removed:
        return f"suppression {row.id} was already removed"
    if not reason.strip():
        return "a removal needs a reason"
    if len(reason) > REMOVAL_REASON_MAX:
        return f"the reason is longer than {REMOVAL_REASON_MAX} characters"
    if not removed_by.strip() or len(removed_by) > REMOVED_BY_MAX:
        return f"who removes it must be named (1 to {REMOVED_BY_MAX} characters)"
    if effective_at > now:
        return "the removal's effective date is in the future: record it on that day"
    return None


# --- email addresses ------------------------------------------------------------------------

EMAIL_MAX = 254  # suppressions.email; RFC 5321's limit on a path
_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def email_key(email: str | None) -> str | None:
    """How an address is compared: trimmed and lower-case (None: no address)."""
    if email is None:
        return None
    key = email.strip().lower()
    return key or None


def normalise_email(text: str) -> str | None:
    """The address trimmed and lower-cased when it is a plausible address
    (local@domain.tld: a dot-atom local part of at most 64 characters and a domain of
    letters, digits and hyphens with at least two labels); None otherwise."""
    email = email_key(text)
    if email is None or len(email) > EMAIL_MAX or email.count("@") != 1:
        return None
    local, domain = email.split("@")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return email


# --- the import file ----------------------------------------------------------------------------

IMPORT_COLUMNS = ("number", "email", "reason")
NOTE_MAX = 500  # characters of a line's reason
LINE_MAX_BYTES = 4096  # a longer line is refused (a huge field), not read into memory


@dataclass(frozen=True)
class ImportLine:
    """One accepted line: a number (E.164), an address (lower-case), or both, and why."""

    line: int
    number: str | None
    email: str | None
    note: str


@dataclass(frozen=True)
class RejectedLine:
    line: int
    error: str


class ImportHeaderError(ValueError):
    """The header cannot be read: nothing in the file can be imported."""


def parse_header(raw: bytes) -> list[str]:
    """The columns of the header line, in file order (lower-case, trimmed); an unknown,
    repeated or missing column is an `ImportHeaderError` naming it."""
    text = _decode(raw.removeprefix(b"\xef\xbb\xbf"))  # a spreadsheet's UTF-8 signature
    if text is None:
        raise ImportHeaderError("line 1: the header is not UTF-8 text")
    fields = _fields(text)
    if fields is None:
        raise ImportHeaderError("line 1: the header is not a CSV line")
    columns = [field.strip().lower() for field in fields]
    expected = ", ".join(IMPORT_COLUMNS)
    for column in columns:
        if column not in IMPORT_COLUMNS:
            raise ImportHeaderError(
                f"line 1: unknown column '{column[:40]}' (the columns are: {expected})"
            )
        if columns.count(column) > 1:
            raise ImportHeaderError(f"line 1: column '{column}' appears twice")
    if "reason" not in columns:
        raise ImportHeaderError("line 1: the 'reason' column is missing")
    if "number" not in columns and "email" not in columns:
        raise ImportHeaderError("line 1: a 'number' or an 'email' column is needed")
    return columns


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None


def _fields(text: str) -> list[str] | None:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return rows[0] if rows else []


def parse_line(columns: list[str], number: int, raw: bytes) -> ImportLine | RejectedLine | None:
    """One data line (`number` counts from 1, the header); None for a blank line."""
    if len(raw) > LINE_MAX_BYTES:
        return RejectedLine(number, f"line {number}: longer than {LINE_MAX_BYTES} bytes")
    if b"\x00" in raw:
        return RejectedLine(number, f"line {number}: contains a NUL byte")
    text = _decode(raw)
    if text is None:
        return RejectedLine(number, f"line {number}: not UTF-8 text")
    if not text.strip():
        return None
    fields = _fields(text)
    if fields is None:
        return RejectedLine(number, f"line {number}: malformed CSV (an unclosed quote?)")
    if len(fields) != len(columns):
        return RejectedLine(
            number, f"line {number}: {len(fields)} fields, the header has {len(columns)}"
        )
    values = {column: field.strip() for column, field in zip(columns, fields, strict=True)}
    reason = values.get("reason", "")
    if not reason:
        return RejectedLine(number, f"line {number}: reason is empty")
    if len(reason) > NOTE_MAX:
        return RejectedLine(number, f"line {number}: reason is longer than {NOTE_MAX} characters")
    phone, email = values.get("number", ""), values.get("email", "")
    if not phone and not email:
        return RejectedLine(number, f"line {number}: neither a number nor an email")
    e164 = to_e164(phone) if phone else None
    if phone and e164 is None:
        return RejectedLine(number, f"line {number}: number is not a possible phone number")
    address = normalise_email(email) if email else None
    if email and address is None:
        return RejectedLine(number, f"line {number}: email is not a valid address")
    return ImportLine(number, e164, address, reason)


def parse_import(lines: Iterable[bytes]) -> Iterator[ImportLine | RejectedLine]:
    """The lines of an import file (raw, as read; a line longer than LINE_MAX_BYTES may come
    cut, it is refused either way), header first. An empty file or a bad header raises
    `ImportHeaderError`; every other problem is one `RejectedLine` and the rest goes on."""
    iterator = iter(lines)
    header = next(iterator, None)
    if header is None or not header.strip():
        raise ImportHeaderError(
            "line 1: the file is empty (expected a header such as number,email,reason)"
        )
    columns = parse_header(header)
    for number, raw in enumerate(iterator, start=2):
        parsed = parse_line(columns, number, raw)
        if parsed is not None:
            yield parsed
