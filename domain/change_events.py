"""Row changes of the main app, as typed change events for the claimants' workflows.

Pure: `translate` takes one `RowChange` (from the binlog or from AWS DMS) and the lookups
the caller resolved for it (`needs` says which), and returns the `ChangeEvent`s to signal
and the claimants whose cached context the change makes stale. A row that cannot be turned
into events raises a `ChangeError` whose message is the reason kept with the dead letter.

What each table yields:

- users: insert or load, nothing (a claimant without claims has nothing to chase; their
  first claim starts outreach); update, signature added/removed, enabled, status,
  vulnerability, phone (as `phone_key`, never the number), and a refresh when the date of
  birth or the preferred calling window changed; delete, a refresh.
- claims: insert or load, claim added (lender, status, created, estimated value); update,
  status changed, or a refresh when the claim moved to another claimant or its lender or
  value changed; delete, a refresh.
- claim_requirements: insert or load, requirement added; update, requirement changed
  (status, type), or a refresh when it moved to another claim; delete, a refresh. Rows do
  not carry the claimant: the caller resolves claim -> user (`needs`, `Lookups`).
- consents: any insert, load, update or delete, consent changed (the workflow reloads the
  claimant's consents: grants and withdrawals are folded there, `domain.consent`).
- lenders: nothing (reference data; lender names feed the lookups).

An update without a before image (DMS without `BeforeImageSettings`) cannot say what
changed, so it states every tracked field as it now is: applying a state that is already
known changes nothing, so this is safe, only chattier.

Event ids are `source:position:table:primary key:kind:user`, so redelivery of the same row
change produces the same ids and the workflow ignores the copies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from domain.phones import phone_key
from schemas.cdc import Operation, RowChange
from schemas.outreach import ChangeEvent, ChangeKind

KNOWN_TABLES = frozenset({"users", "claims", "claim_requirements", "lenders", "consents"})
_USER_REFRESH_COLUMNS = ("date_of_birth", "preferred_call_start", "preferred_call_end")
_CREATES = (Operation.INSERT, Operation.LOAD)


class ChangeError(Exception):
    """The row change cannot be turned into events; the message is the dead letter's reason."""

    @property
    def reason(self) -> str:
        return str(self)


class MalformedRow(ChangeError):
    """A column is missing or has a value of the wrong type."""


class UnknownTable(ChangeError):
    """A table the dialler does not follow."""


class UnresolvedClaim(ChangeError):
    """A requirement whose claim (and so claimant) could not be found."""

    def __init__(self, claim_id: int) -> None:
        super().__init__(f"unresolved claim: claim {claim_id} was not found on the replica")
        self.claim_id = claim_id


@dataclass(frozen=True)
class Needs:
    """What `translate` needs resolved for a row change: claim owners, lender names."""

    claim_ids: frozenset[int] = frozenset()
    lender_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Lookups:
    claim_owners: Mapping[int, int] = field(default_factory=dict)  # claim id -> user id
    lender_names: Mapping[int, str] = field(default_factory=dict)  # lender id -> name


@dataclass
class Translation:
    events: list[ChangeEvent] = field(default_factory=list)
    touched_user_ids: list[int] = field(default_factory=list)  # unique, in order


# --- what the caller must resolve, and what a row teaches it -----------------------------------


def needs(change: RowChange) -> Needs:
    """Ids to resolve before `translate`: the claim(s) of a requirement, a claim's lender."""
    rows = [row for row in (change.before, change.after) if row is not None]
    if change.table == "claim_requirements":
        return Needs(claim_ids=frozenset(_int(r, "claim_id", change.table) for r in rows))
    if change.table == "claims" and change.after is not None:
        lender = _opt_int(change.after, "lender_id", change.table)
        return Needs(lender_ids=frozenset({lender} if lender is not None else set()))
    return Needs()


def learned(change: RowChange) -> Lookups:
    """Mappings a row itself proves: a claims row names its owner, a lenders row its name.
    The caller adds them to its caches, so requirements of a claim created in the same
    transaction resolve without a query."""
    owners: dict[int, int] = {}
    names: dict[int, str] = {}
    for row in (change.before, change.after):
        if row is None:
            continue
        if change.table == "claims" and "id" in row and "user_id" in row:
            owners[_int(row, "id", "claims")] = _int(row, "user_id", "claims")
        if change.table == "lenders" and "id" in row and row.get("name") is not None:
            names[_int(row, "id", "lenders")] = _str(row, "name", "lenders")
    return Lookups(claim_owners=owners, lender_names=names)


# --- the translation ----------------------------------------------------------------------------


def translate(change: RowChange, lookups: Lookups | None = None) -> Translation:
    lookups = lookups or Lookups()
    if change.table not in KNOWN_TABLES:
        where = f"{change.schema}.{change.table}" if change.schema else change.table
        raise UnknownTable(f"unknown table {where}")
    if change.after is None and change.operation is not Operation.DELETE:
        raise MalformedRow(f"{change.table}: {change.operation.value} without a row image")
    if change.before is None and change.operation is Operation.DELETE:
        raise MalformedRow(f"{change.table}: delete without a row image")
    builder = _Builder(change)
    match change.table:
        case "users":
            _users(change, builder)
        case "claims":
            _claims(change, builder, lookups)
        case "claim_requirements":
            _requirements(change, builder, lookups)
        case "consents":
            _consents(change, builder)
        case _:  # lenders: reference data only
            pass
    return builder.result


class _Builder:
    def __init__(self, change: RowChange) -> None:
        self.change = change
        self.result = Translation()

    def touch(self, user_id: int) -> None:
        if user_id not in self.result.touched_user_ids:
            self.result.touched_user_ids.append(user_id)

    def add(self, kind: ChangeKind, user_id: int, key: int, **fields: Any) -> None:
        change = self.change
        event_id = f"{change.source}:{change.position}:{change.table}:{key}:{kind.value}:{user_id}"
        self.result.events.append(
            ChangeEvent(
                event_id=event_id,
                kind=kind,
                user_id=user_id,
                occurred_at=change.committed_at,
                **fields,
            )
        )
        self.touch(user_id)

    def refresh(self, user_id: int, key: int, why: str) -> None:
        self.add(ChangeKind.REFRESH, user_id, key, reason=f"cdc: {why}")


def _changed(before: dict[str, Any] | None, after: dict[str, Any], column: str) -> bool:
    """True when the column changed, or when there is no before image to compare with."""
    return before is None or before.get(column) != after.get(column)


def _users(change: RowChange, out: _Builder) -> None:
    table = change.table
    row = change.after if change.after is not None else change.before
    assert row is not None
    user_id = _int(row, "id", table)
    out.touch(user_id)
    if change.operation is Operation.DELETE:
        out.refresh(user_id, user_id, "user deleted")
        return
    if change.operation in _CREATES:
        return
    after, before = change.after, change.before
    assert after is not None
    signed = _opt_int(after, "current_signature_file_id", table) is not None
    was_signed = (
        None if before is None else _opt_int(before, "current_signature_file_id", table) is not None
    )
    if was_signed is None or was_signed != signed:
        kind = ChangeKind.SIGNATURE_ADDED if signed else ChangeKind.SIGNATURE_REMOVED
        out.add(kind, user_id, user_id)
    if _changed(before, after, "is_enabled"):
        enabled = _bool(after, "is_enabled", table)
        out.add(ChangeKind.ENABLED_CHANGED, user_id, user_id, is_enabled=enabled)
    if _changed(before, after, "status"):
        status = _str(after, "status", table)
        out.add(ChangeKind.USER_STATUS_CHANGED, user_id, user_id, user_status=status)
    if _changed(before, after, "is_vulnerable"):
        vulnerable = _bool(after, "is_vulnerable", table)
        out.add(ChangeKind.VULNERABILITY_CHANGED, user_id, user_id, is_vulnerable=vulnerable)
    if _changed(before, after, "phone_number"):
        key = phone_key(_opt_str(after, "phone_number", table))
        out.add(ChangeKind.PHONE_CHANGED, user_id, user_id, phone_key=key)
    if before is not None and any(before.get(c) != after.get(c) for c in _USER_REFRESH_COLUMNS):
        out.refresh(user_id, user_id, "date of birth or preferred calling window changed")


def _consents(change: RowChange, out: _Builder) -> None:
    row = change.after if change.after is not None else change.before
    assert row is not None
    user_id = _int(row, "user_id", change.table)
    out.add(ChangeKind.CONSENT_CHANGED, user_id, _int(row, "id", change.table))
    if change.before is not None and change.after is not None:
        moved_from = _int(change.before, "user_id", change.table)
        if moved_from != user_id:  # a consent row re-pointed: both claimants reload
            out.add(ChangeKind.CONSENT_CHANGED, moved_from, _int(row, "id", change.table))


def _claims(change: RowChange, out: _Builder, lookups: Lookups) -> None:
    table = change.table
    row = change.after if change.after is not None else change.before
    assert row is not None
    claim_id = _int(row, "id", table)
    user_id = _int(row, "user_id", table)
    out.touch(user_id)
    if change.operation is Operation.DELETE:
        out.refresh(user_id, claim_id, "claim deleted")
        return
    after, before = change.after, change.before
    assert after is not None
    status = _str(after, "status", table)
    lender_id = _opt_int(after, "lender_id", table)
    lender = lookups.lender_names.get(lender_id) if lender_id is not None else None
    if change.operation in _CREATES:
        if lender is None:
            # without the lender's name the score would be wrong until a reload: reload now
            out.refresh(user_id, claim_id, "claim added (lender not resolved)")
            return
        out.add(
            ChangeKind.CLAIM_ADDED,
            user_id,
            claim_id,
            claim_id=claim_id,
            lender=lender,
            claim_status=status,
            claim_created_at=_opt_datetime(after, "created_at", table),
            claim_estimated_value=_opt_float(after, "estimated_value", table),
        )
        return
    if before is not None and _int(before, "user_id", table) != user_id:
        previous = _int(before, "user_id", table)
        out.refresh(previous, claim_id, "claim moved to another claimant")
        out.refresh(user_id, claim_id, "claim moved from another claimant")
        return
    if _changed(before, after, "status"):
        out.add(
            ChangeKind.CLAIM_STATUS_CHANGED,
            user_id,
            claim_id,
            claim_id=claim_id,
            claim_status=status,
            lender=lender,
        )
    if before is not None and any(
        before.get(c) != after.get(c) for c in ("lender_id", "estimated_value")
    ):
        out.refresh(user_id, claim_id, "claim lender or estimated value changed")


def _requirements(change: RowChange, out: _Builder, lookups: Lookups) -> None:
    table = change.table
    row = change.after if change.after is not None else change.before
    assert row is not None
    requirement_id = _int(row, "id", table)
    claim_id = _int(row, "claim_id", table)
    user_id = _owner(lookups, claim_id)
    out.touch(user_id)
    if change.operation is Operation.DELETE:
        out.refresh(user_id, requirement_id, "requirement deleted")
        return
    after, before = change.after, change.before
    assert after is not None
    fields: dict[str, Any] = {
        "claim_id": claim_id,
        "requirement_id": requirement_id,
        "requirement_type": _str(after, "type", table),
        "requirement_status": _str(after, "status", table),
    }
    if change.operation in _CREATES:
        out.add(ChangeKind.REQUIREMENT_ADDED, user_id, requirement_id, **fields)
        return
    if before is not None and _int(before, "claim_id", table) != claim_id:
        previous = _owner(lookups, _int(before, "claim_id", table))
        out.refresh(previous, requirement_id, "requirement moved to another claim")
        out.refresh(user_id, requirement_id, "requirement moved from another claim")
        return
    if _changed(before, after, "status") or _changed(before, after, "type"):
        out.add(ChangeKind.REQUIREMENT_CHANGED, user_id, requirement_id, **fields)


def _owner(lookups: Lookups, claim_id: int) -> int:
    owner = lookups.claim_owners.get(claim_id)
    if owner is None:
        raise UnresolvedClaim(claim_id)
    return owner


# --- typed column values (binlog gives Python values, DMS gives JSON) -------------------------


def _value(row: Mapping[str, Any], column: str, table: str) -> Any:
    if column not in row:
        raise MalformedRow(f"{table}.{column} is missing")
    return row[column]


def _bad(table: str, column: str, expected: str, value: Any) -> MalformedRow:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return MalformedRow(f"{table}.{column}: expected {expected}, got {shown}")


def _opt_int(row: Mapping[str, Any], column: str, table: str) -> int | None:
    value = _value(row, column, table)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise _bad(table, column, "an integer", value)


def _int(row: Mapping[str, Any], column: str, table: str) -> int:
    value = _opt_int(row, column, table)
    if value is None:
        raise _bad(table, column, "an integer", None)
    return value


def _bool(row: Mapping[str, Any], column: str, table: str) -> bool:
    value = _value(row, column, table)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise _bad(table, column, "a boolean", value)


def _opt_str(row: Mapping[str, Any], column: str, table: str) -> str | None:
    value = _value(row, column, table)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _bad(table, column, "text", value) from None
    raise _bad(table, column, "text", value)


def _str(row: Mapping[str, Any], column: str, table: str) -> str:
    value = _opt_str(row, column, table)
    if value is None:
        raise _bad(table, column, "text", None)
    return value


def _opt_float(row: Mapping[str, Any], column: str, table: str) -> float | None:
    value = row.get(column)  # optional column: absent means unknown
    if value is None:
        return None
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _bad(table, column, "a number", value)


def _opt_datetime(row: Mapping[str, Any], column: str, table: str) -> datetime | None:
    """Replica DATETIMEs are naive UTC; DMS writes them as text."""
    value = row.get(column)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time.min, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _bad(table, column, "a date and time", value) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _bad(table, column, "a date and time", value)


def json_safe(value: Any) -> Any:
    """A row value as JSON can hold it (dead letters keep binlog rows as JSON)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):  # MySQL TIME columns arrive as timedelta
        total = int(value.total_seconds())
        return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def encode_row_change(change: RowChange) -> str:
    """A row change as JSON: what a dead letter of the binlog source keeps as its payload."""
    return json.dumps(
        {
            "source": change.source,
            "schema": change.schema,
            "table": change.table,
            "operation": change.operation.value,
            "before": json_safe(change.before),
            "after": json_safe(change.after),
            "committed_at": change.committed_at.isoformat(),
            "position": change.position,
        },
        sort_keys=True,
    )


def decode_row_change(text: str) -> RowChange:
    """The inverse of `encode_row_change` (values come back as JSON types, which
    `translate` accepts as DMS values); a bad payload raises MalformedRow."""
    try:
        data = json.loads(text)
        before, after = data["before"], data["after"]
        if not (before is None or isinstance(before, dict)) or not (
            after is None or isinstance(after, dict)
        ):
            raise TypeError("row images must be objects")
        committed = datetime.fromisoformat(data["committed_at"])
        return RowChange(
            source=str(data["source"]),
            table=str(data["table"]),
            operation=Operation(data["operation"]),
            before=before,
            after=after,
            committed_at=committed if committed.tzinfo else committed.replace(tzinfo=UTC),
            position=str(data["position"]),
            schema=data.get("schema"),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise MalformedRow(f"not a row change: {type(error).__name__}: {error}") from None
