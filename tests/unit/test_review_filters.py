"""The calls list's and audit viewer's filters (domain.review_filters): what a query string
may say, what each bad value is told, UK days as instants across the clock changes, the
keyset's round trip, and CSV cells no spreadsheet runs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.review_filters import (
    MAX_ID,
    NO_OUTCOME,
    AuditFilters,
    CallFilters,
    DayRange,
    InvalidFilters,
    Keyset,
    PageRequest,
    csv_cell,
    parse_audit_filters,
    parse_call_filters,
    parse_day,
    parse_id,
)

UK = ZoneInfo("Europe/London")


def test_no_filters_is_every_call_from_the_newest() -> None:
    assert parse_call_filters({}) == (CallFilters(), PageRequest())
    assert parse_audit_filters({}) == (AuditFilters(), PageRequest())


def test_call_filters_are_read_and_written_back_the_same() -> None:
    args = {"agent": "12", "outcome": "no_answer", "queue": "callback",
            "from": "2026-03-01", "to": "2026-03-03", "ai": "1"}  # fmt: skip
    filters, page = parse_call_filters(args)
    assert filters == CallFilters(
        12, "no_answer", "callback", DayRange(date(2026, 3, 1), date(2026, 3, 3)), True
    )
    assert page == PageRequest()
    assert filters.query() == args
    assert parse_call_filters(filters.query())[0] == filters
    assert parse_call_filters({"outcome": NO_OUTCOME})[0].outcome == NO_OUTCOME
    assert parse_call_filters({"agent": " 7 ", "ai": ""})[0] == CallFilters(agent_id=7)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"agent": "Alice"}, "agent"),
        ({"agent": "0"}, "agent"),
        ({"agent": "-3"}, "agent"),
        ({"agent": str(MAX_ID + 1)}, "agent"),
        ({"agent": "9" * 400}, "agent"),
        ({"agent": "١٢"}, "agent"),  # Arabic-Indic digits are not an id
        ({"outcome": "sold"}, "outcome"),
        ({"queue": "vip"}, "queue"),
        ({"from": "99999-01-01"}, "from"),
        ({"from": "2026-02-30"}, "from"),
        ({"from": "1999-12-31"}, "from"),
        ({"to": "2101-01-01"}, "to"),
        ({"to": "01/03/2026"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"before": "yesterday"}, "page"),
        ({"before": f"1772000000000000.{MAX_ID + 1}"}, "page"),
        ({"before": "99999999999999999.1"}, "page"),  # the year 5138
        ({"after": "-99999999999999999.1"}, "page"),  # before the year 1
        ({"before": "1772000000000000.1", "after": "1772000000000000.2"}, "page"),
    ],
)
def test_a_bad_call_filter_names_its_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidFilters) as raised:
        parse_call_filters(args)
    assert list(raised.value.fields) == [field]
    assert raised.value.fields[field]  # a message a person can act on


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidFilters) as raised:
        parse_call_filters({"agent": "x", "queue": "y", "from": "z"})
    assert set(raised.value.fields) == {"agent", "queue", "from"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"actor": "42"}, AuditFilters(actor_id=42)),
        ({"actor": " Sup.Visor@Example.COM "}, AuditFilters(actor_email="sup.visor@example.com")),
        ({"claimant": "1001"}, AuditFilters(claimant_id=1001)),
        ({"action": "played_recording"}, AuditFilters(action="played_recording")),
        ({"from": "2026-03-29", "to": "2026-03-29"},
         AuditFilters(days=DayRange(date(2026, 3, 29), date(2026, 3, 29)))),
    ],
)  # fmt: skip
def test_audit_filters(args: dict[str, str], expected: AuditFilters) -> None:
    filters, _ = parse_audit_filters(args)
    assert filters == expected
    assert parse_audit_filters(filters.query())[0] == filters


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"actor": str(2**64)}, "actor"),
        ({"actor": "somebody"}, "actor"),
        ({"actor": "a@b@c"}, "actor"),
        ({"actor": "x" * 300 + "@example.com"}, "actor"),
        ({"claimant": "1e9"}, "claimant"),
        ({"claimant": "9" * 30}, "claimant"),
        ({"action": "Played Recording"}, "action"),
        ({"action": "'; drop table audit_log; --"}, "action"),
        ({"action": "a" * 65}, "action"),
        ({"from": "99999-01-01"}, "from"),
        ({"after": "1.1.1"}, "page"),
    ],
)
def test_a_bad_audit_filter_names_its_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidFilters) as raised:
        parse_audit_filters(args)
    assert list(raised.value.fields) == [field]


def test_uk_days_are_london_midnights_whatever_the_clocks_do() -> None:
    # the clocks went forward on 29 March 2026: that day is 23 hours long
    start, end = DayRange(date(2026, 3, 29), date(2026, 3, 29)).instants(UK)
    assert start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # GMT
    assert end == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)  # midnight BST
    start, end = DayRange(date(2026, 7, 1), date(2026, 7, 2)).instants(UK)
    assert (start, end) == (
        datetime(2026, 6, 30, 23, tzinfo=UTC),
        datetime(2026, 7, 2, 23, tzinfo=UTC),
    )
    assert DayRange().instants(UK) == (None, None)
    assert DayRange(last=date(2100, 12, 31)).instants(UK)[1] is not None  # no overflow


def test_a_keyset_round_trips_through_its_token() -> None:
    key = Keyset(datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC), 987654321)
    assert Keyset.parse(key.token()) == key
    assert parse_call_filters({"before": key.token()})[1] == PageRequest(before=key)
    assert parse_audit_filters({"after": key.token()})[1] == PageRequest(after=key)
    assert Keyset.parse("1.0") is None  # id 0 names nothing


def test_parse_id_and_day_bounds() -> None:
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(str(MAX_ID + 1)) is None
    assert parse_id("") is None and parse_id(None) is None
    assert parse_day("2000-01-01") == date(2000, 1, 1)
    assert parse_day("2100-12-31") == date(2100, 12, 31)
    assert parse_day("20260301") is None  # only the form a date input sends


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 7700 900123", "'+44 7700 900123"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("played_recording", "played_recording"),
        ('{"range": "bytes=0-"}', '{"range": "bytes=0-"}'),
        (42, "42"),
        (None, ""),
    ],
)
def test_csv_cells_never_start_a_formula(value: object, cell: str) -> None:
    assert csv_cell(value) == cell
