"""Row changes -> typed change events (pure), DMS message parsing, GTID positions and the
in-order commit tracker of the CDC worker."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.cdc_binlog import BinlogConfigError, GtidPosition
from adapters.cdc_source import SourceItem
from adapters.cdc_sqs import MalformedMessage, parse_dms
from domain.change_events import (
    Lookups,
    MalformedRow,
    UnknownTable,
    UnresolvedClaim,
    decode_row_change,
    encode_row_change,
    learned,
    needs,
    translate,
)
from domain.phones import phone_key
from schemas.cdc import Operation, RowChange
from schemas.outreach import ChangeKind
from workers.cdc import ItemTracker

AT = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)


def user_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 42,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone_number": "+447700900123",
        "date_of_birth": date(1960, 1, 2),
        "postcode": "M1 4AB",
        "current_signature_file_id": None,
        "is_enabled": 1,
        "status": "active",
        "is_vulnerable": 0,
        "preferred_call_start": None,
        "preferred_call_end": None,
        "created_at": datetime(2026, 1, 1, 9, 0),
        "updated_at": datetime(2026, 3, 2, 10, 0, 5),
    }
    row.update(overrides)
    return row


def change(
    table: str,
    operation: Operation,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    position: str = "0-1-100#0",
) -> RowChange:
    return RowChange("binlog", table, operation, before, after, AT, position, "rmc")


def kinds(changed: RowChange, lookups: Lookups | None = None) -> list[ChangeKind]:
    return [event.kind for event in translate(changed, lookups).events]


# --- users ----------------------------------------------------------------------------------------


def test_signature_added_and_removed() -> None:
    unsigned, signed = user_row(), user_row(current_signature_file_id=7)
    added = translate(change("users", Operation.UPDATE, unsigned, signed))
    assert [e.kind for e in added.events] == [ChangeKind.SIGNATURE_ADDED]
    assert added.events[0].user_id == 42 and added.events[0].occurred_at == AT
    assert added.touched_user_ids == [42]
    assert kinds(change("users", Operation.UPDATE, signed, unsigned)) == [
        ChangeKind.SIGNATURE_REMOVED
    ]
    # a new signature replacing an old one changes nothing for outreach
    resigned = user_row(current_signature_file_id=8)
    assert kinds(change("users", Operation.UPDATE, signed, resigned)) == []


def test_each_tracked_user_column_has_its_event_and_the_phone_travels_as_a_key() -> None:
    before = user_row()
    after = user_row(is_enabled=0, status="inactive", is_vulnerable=1, phone_number="+447700900999")
    events = translate(change("users", Operation.UPDATE, before, after)).events
    by_kind = {e.kind: e for e in events}
    assert set(by_kind) == {
        ChangeKind.ENABLED_CHANGED,
        ChangeKind.USER_STATUS_CHANGED,
        ChangeKind.VULNERABILITY_CHANGED,
        ChangeKind.PHONE_CHANGED,
    }
    assert by_kind[ChangeKind.ENABLED_CHANGED].is_enabled is False
    assert by_kind[ChangeKind.USER_STATUS_CHANGED].user_status == "inactive"
    assert by_kind[ChangeKind.VULNERABILITY_CHANGED].is_vulnerable is True
    assert by_kind[ChangeKind.PHONE_CHANGED].phone_key == phone_key("+447700900999")
    assert "+447700900999" not in json.dumps([str(e) for e in events])


def test_untracked_columns_touch_the_cache_only_and_scoring_inputs_refresh() -> None:
    renamed = translate(
        change("users", Operation.UPDATE, user_row(), user_row(email="new@example.com"))
    )
    assert renamed.events == [] and renamed.touched_user_ids == [42]
    older = user_row(date_of_birth=date(1950, 1, 2))
    assert kinds(change("users", Operation.UPDATE, user_row(), older)) == [ChangeKind.REFRESH]


def test_user_insert_starts_nothing_and_delete_refreshes() -> None:
    inserted = translate(change("users", Operation.INSERT, None, user_row()))
    assert inserted.events == [] and inserted.touched_user_ids == [42]
    assert kinds(change("users", Operation.DELETE, user_row(), None)) == [ChangeKind.REFRESH]


def test_an_update_without_a_before_image_states_every_tracked_field() -> None:
    events = translate(
        change("users", Operation.UPDATE, None, user_row(current_signature_file_id=3))
    ).events
    assert {e.kind for e in events} == {
        ChangeKind.SIGNATURE_ADDED,
        ChangeKind.ENABLED_CHANGED,
        ChangeKind.USER_STATUS_CHANGED,
        ChangeKind.VULNERABILITY_CHANGED,
        ChangeKind.PHONE_CHANGED,
    }


def test_dms_json_values_are_accepted() -> None:
    before = user_row(is_enabled="1", id="42")
    after = user_row(is_enabled="false", id="42")
    events = translate(change("users", Operation.UPDATE, before, after)).events
    assert [(e.kind, e.is_enabled) for e in events] == [(ChangeKind.ENABLED_CHANGED, False)]


# --- claims and requirements ----------------------------------------------------------------------


def claim_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7,
        "user_id": 42,
        "lender_id": 3,
        "status": "in_progress",
        "estimated_value": Decimal("2500.00"),
        "created_at": datetime(2026, 1, 5, 10, 0),
        "updated_at": datetime(2026, 3, 2, 10, 0, 5),
    }
    row.update(overrides)
    return row


def requirement_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"id": 90, "claim_id": 7, "type": "bank_statements", "status": "PENDING"}
    row.update(overrides)
    return row


def test_claim_added_carries_lender_status_created_and_value() -> None:
    inserted = change("claims", Operation.INSERT, None, claim_row())
    assert needs(inserted).lender_ids == {3}
    [event] = translate(inserted, Lookups(lender_names={3: "Barclays"})).events
    assert event.kind is ChangeKind.CLAIM_ADDED
    assert (event.claim_id, event.lender, event.claim_status) == (7, "Barclays", "in_progress")
    assert event.claim_created_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert event.claim_estimated_value == 2500.0
    # an unknown lender would score wrong: the claimant is reloaded instead
    assert kinds(inserted) == [ChangeKind.REFRESH]


def test_claim_status_change_move_and_delete() -> None:
    before, after = claim_row(), claim_row(status="complete")
    assert kinds(change("claims", Operation.UPDATE, before, after)) == [
        ChangeKind.CLAIM_STATUS_CHANGED
    ]
    moved = translate(change("claims", Operation.UPDATE, before, claim_row(user_id=43)))
    assert [(e.kind, e.user_id) for e in moved.events] == [
        (ChangeKind.REFRESH, 42),
        (ChangeKind.REFRESH, 43),
    ]
    assert sorted(moved.touched_user_ids) == [42, 43]
    assert kinds(change("claims", Operation.DELETE, before, None)) == [ChangeKind.REFRESH]


def test_requirements_need_their_claims_owner() -> None:
    inserted = change("claim_requirements", Operation.INSERT, None, requirement_row())
    assert needs(inserted).claim_ids == {7}
    with pytest.raises(UnresolvedClaim, match="unresolved claim: claim 7"):
        translate(inserted)
    owners = Lookups(claim_owners={7: 42})
    [event] = translate(inserted, owners).events
    assert event.kind is ChangeKind.REQUIREMENT_ADDED
    assert (event.user_id, event.claim_id, event.requirement_id) == (42, 7, 90)
    assert (event.requirement_type, event.requirement_status) == ("bank_statements", "PENDING")
    received = change(
        "claim_requirements",
        Operation.UPDATE,
        requirement_row(),
        requirement_row(status="RECEIVED"),
    )
    assert kinds(received, owners) == [ChangeKind.REQUIREMENT_CHANGED]


def test_a_claims_row_teaches_its_owner() -> None:
    assert learned(change("claims", Operation.INSERT, None, claim_row())).claim_owners == {7: 42}
    lender = change("lenders", Operation.INSERT, None, {"id": 3, "name": "Barclays"})
    assert learned(lender).lender_names == {3: "Barclays"}
    assert translate(lender).events == []


# --- errors, ids ----------------------------------------------------------------------------------


def test_unknown_tables_and_malformed_rows_say_why() -> None:
    with pytest.raises(UnknownTable, match=r"unknown table rmc\.sessions"):
        translate(change("sessions", Operation.INSERT, None, {"id": 1}))
    missing = user_row()
    del missing["status"]
    with pytest.raises(MalformedRow, match=r"users\.status is missing"):
        translate(change("users", Operation.UPDATE, user_row(), missing))
    with pytest.raises(MalformedRow, match=r"users\.id: expected an integer, got 'x1'"):
        translate(change("users", Operation.DELETE, user_row(id="x1"), None))
    with pytest.raises(MalformedRow, match=r"users\.is_enabled: expected a boolean"):
        translate(change("users", Operation.UPDATE, user_row(), user_row(is_enabled=7)))
    with pytest.raises(MalformedRow, match="update without a row image"):
        translate(change("claims", Operation.UPDATE, claim_row(), None))


def test_event_ids_are_deterministic_and_distinct() -> None:
    before, after = user_row(), user_row(current_signature_file_id=7, status="pending")
    first = translate(change("users", Operation.UPDATE, before, after)).events
    again = translate(change("users", Operation.UPDATE, before, after)).events
    other = translate(change("users", Operation.UPDATE, before, after, "0-1-100#1")).events
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first + other}) == 4
    assert first[0].event_id == "binlog:0-1-100#0:users:42:signature_added:42"


def test_row_changes_survive_a_round_trip_through_json() -> None:
    original = change(
        "users",
        Operation.UPDATE,
        user_row(preferred_call_start=timedelta(hours=9, minutes=30)),
        user_row(current_signature_file_id=5),
    )
    restored = decode_row_change(encode_row_change(original))
    assert restored.before is not None and restored.before["preferred_call_start"] == "09:30:00"
    assert (restored.table, restored.position, restored.committed_at) == (
        "users",
        "0-1-100#0",
        AT,
    )
    assert kinds(restored) == kinds(original)
    with pytest.raises(MalformedRow, match="not a row change"):
        decode_row_change('{"table": "users"}')


# --- DMS messages ---------------------------------------------------------------------------------


def dms(operation: str, table: str, data: dict[str, Any], **extra: Any) -> str:
    record: dict[str, Any] = {
        "data": data,
        "metadata": {
            "timestamp": "2026-03-02T10:00:05.123456Z",
            "record-type": "data",
            "operation": operation,
            "partition-key-type": "schema-table",
            "schema-name": "rmc",
            "table-name": table,
            "transaction-id": 8589934592,
        },
    }
    record.update(extra)
    return json.dumps(record)


def test_dms_records_become_row_changes() -> None:
    body = dms(
        "update",
        "users",
        {"id": 42, "current_signature_file_id": 7},
        **{"before-image": {"id": 42, "current_signature_file_id": None}},
    )
    parsed = parse_dms(body, "m-1")
    assert parsed is not None
    assert (parsed.source, parsed.table, parsed.operation) == ("sqs", "users", Operation.UPDATE)
    assert parsed.before == {"id": 42, "current_signature_file_id": None}
    assert parsed.committed_at == datetime(2026, 3, 2, 10, 0, 5, 123456, tzinfo=UTC)
    assert parse_dms(body, "m-2") == parsed  # same record redelivered: same position
    as_json = claim_row(created_at="2026-01-05 10:00:00", updated_at=None, estimated_value=10.5)
    deleted = parse_dms(dms("delete", "claims", as_json))
    assert deleted is not None and deleted.after is None and deleted.before is not None
    loaded = parse_dms(dms("load", "claims", {"id": 1}))
    assert loaded is not None and loaded.operation is Operation.LOAD
    control = json.dumps({"data": {}, "metadata": {"record-type": "control", "operation": "x"}})
    assert parse_dms(control) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"data": {"id": 1}, "metadata": {"operation": "ins', "truncated message"),
        ('{"data": {"id": 1}, "metadata": ', "truncated message"),
        ("not json at all", "malformed JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"data": {"id": 1}}', "'metadata' is missing"),
        (dms("upsert", "users", {"id": 1}), "unknown operation 'upsert'"),
        (dms("insert", "users", {"id": 1}).replace('"2026-03-02T10', '"x'), "not a time"),
    ],
)
def test_unreadable_dms_messages_say_why(body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_dms(body)


# --- GTID positions and the commit tracker --------------------------------------------------------


def test_gtid_positions_advance_per_domain() -> None:
    position = GtidPosition.parse("0-1-41,1-2-7")
    assert not position.is_new(0, 41) and position.is_new(0, 42)
    position.advance(0, 1, 42)
    position.advance(2, 1, 1)
    position.advance(1, 2, 3)  # older: ignored
    assert position.render() == "0-1-42,1-2-7,2-1-1"
    assert GtidPosition.parse("").render() == ""
    with pytest.raises(BinlogConfigError):
        GtidPosition.parse("0-1")


async def _noop(events: int) -> None:
    return None


def _index(items: list[SourceItem], item: SourceItem) -> int:
    return next(n for n, candidate in enumerate(items) if candidate is item)


def test_ordered_tracker_releases_items_only_in_source_order() -> None:
    released: list[tuple[int, int]] = []
    items = [SourceItem(changes=[], ack=_noop) for _ in range(3)]
    tracker = ItemTracker(True, lambda item, n: released.append((_index(items, item), n)))
    first, second, third = (tracker.open(item) for item in items)
    for seq in (first, second):
        tracker.add(seq)
    tracker.seal(first)
    tracker.seal(second)
    tracker.seal(third)  # nothing in it, but it waits for the ones before
    tracker.done(second, 2)
    assert released == []
    tracker.done(first, 1)
    assert released == [(0, 1), (1, 2), (2, 0)]
    assert tracker.in_flight == 0


def test_unordered_tracker_releases_each_item_when_it_is_done() -> None:
    released: list[int] = []
    items = [SourceItem(changes=[], ack=_noop) for _ in range(2)]
    tracker = ItemTracker(False, lambda item, n: released.append(_index(items, item)))
    first, second = (tracker.open(item) for item in items)
    tracker.add(first)
    tracker.seal(first)
    tracker.seal(second)
    assert released == [1]
    tracker.done(first, 1)
    assert released == [1, 0]


# --- consents ---------------------------------------------------------------------------------


def _consent_row(**values: Any) -> dict[str, Any]:
    row = {"id": 5, "user_id": 42, "channel": "live_call", "source": "web_form",
           "wording": "I agree", "given_at": AT, "withdrawn_at": None}  # fmt: skip
    return row | values


def test_every_change_to_a_consent_row_makes_the_claimant_reload_their_consents() -> None:
    given = _consent_row()
    withdrawn = _consent_row(withdrawn_at=AT)
    for changed in (
        change("consents", Operation.INSERT, None, given),
        change("consents", Operation.LOAD, None, given),
        change("consents", Operation.UPDATE, given, withdrawn),
        change("consents", Operation.UPDATE, None, withdrawn),  # DMS without a before image
        change("consents", Operation.DELETE, given, None),
    ):
        translation = translate(changed)
        assert [(e.kind, e.user_id) for e in translation.events] == [
            (ChangeKind.CONSENT_CHANGED, 42)
        ]
        assert translation.touched_user_ids == [42]


def test_a_consent_row_moved_to_another_claimant_reloads_both() -> None:
    moved = translate(
        change("consents", Operation.UPDATE, _consent_row(), _consent_row(user_id=43))
    )
    assert sorted(e.user_id for e in moved.events) == [42, 43]


def test_a_consent_row_without_its_claimant_is_a_dead_letter() -> None:
    with pytest.raises(MalformedRow, match=r"consents\.user_id"):
        translate(change("consents", Operation.INSERT, None, _consent_row(user_id=None)))
