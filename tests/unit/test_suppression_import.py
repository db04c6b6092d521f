"""Imported suppression lists, the pure part: the file's header and lines (each bad line
refused with its number), email addresses, removals, and what a removal or an address does
to `status_of`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.suppressions import (
    IMPORTED,
    LINE_MAX_BYTES,
    SMS_START,
    SMS_STOP,
    ImportHeaderError,
    ImportLine,
    RejectedLine,
    SuppressionRow,
    normalise_email,
    parse_import,
    removal_refusal,
    start_refusal,
    status_of,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _parse(*lines: bytes) -> list[ImportLine | RejectedLine]:
    return list(parse_import(lines))


def test_lines_become_e164_numbers_and_lower_case_addresses() -> None:
    parsed = _parse(
        b"\xef\xbb\xbfReason , NUMBER,email\r\n",  # a spreadsheet's BOM, any case and order
        b"complaint,07700 900123,\r\n",
        b'"gdpr, erasure",+1 (202) 555-0143, Sam.Smith@Example.CO.UK \n',
        b"\n",  # blank lines are skipped, numbering goes on
        b"asked,,someone@example.com\n",
    )
    assert parsed == [
        ImportLine(2, "+447700900123", None, "complaint"),
        ImportLine(3, "+12025550143", "sam.smith@example.co.uk", "gdpr, erasure"),
        ImportLine(5, None, "someone@example.com", "asked"),
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not a number,,x\n", "line 2: number is not a possible phone number"),
        (b"12,,x\n", "line 2: number is not a possible phone number"),
        (b"0770,,x\n", "line 2: number is not a possible phone number"),
        (b"07700 9001,,x\n", "line 2: number is not a possible phone number"),
        (b",not-an-address,x\n", "line 2: email is not a valid address"),
        (b",a@b,x\n", "line 2: email is not a valid address"),
        (b",a..b@example.com,x\n", "line 2: email is not a valid address"),
        (b"07700900123,,\n", "line 2: reason is empty"),
        (b",,why\n", "line 2: neither a number nor an email"),
        (b'"07700900123,,x\n', "line 2: malformed CSV (an unclosed quote?)"),
        (b"07700900123,x\n", "line 2: 2 fields, the header has 3"),
        (b"07700900123,,x,extra\n", "line 2: 4 fields, the header has 3"),
        (b"0770\x00900123,,x\n", "line 2: contains a NUL byte"),
        (b"07700900123,,caf\xe9\n", "line 2: not UTF-8 text"),
        (b"07700900123,," + b"x" * 600 + b"\n", "line 2: reason is longer than 500 characters"),
        (b"07700900123,," + b"x" * LINE_MAX_BYTES + b"\n", f"line 2: longer than {LINE_MAX_BYTES}"),
    ],
)
def test_a_bad_line_is_refused_with_its_number_and_the_rest_goes_on(
    line: bytes, error: str
) -> None:
    parsed = _parse(b"number,email,reason\n", line, b"07700900999,,fine\n")
    assert isinstance(parsed[0], RejectedLine)
    assert parsed[0].error.startswith(error)
    assert parsed[1:] == [ImportLine(3, "+447700900999", None, "fine")]


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (b"number,phone,reason\n", "line 1: unknown column 'phone'"),
        (b"number,number,reason\n", "line 1: column 'number' appears twice"),
        (b"number,email\n", "line 1: the 'reason' column is missing"),
        (b"reason\n", "line 1: a 'number' or an 'email' column is needed"),
        (b"\n", "line 1: the file is empty"),
        (b"num\xffber,reason\n", "line 1: the header is not UTF-8 text"),
    ],
)
def test_a_bad_header_refuses_the_whole_file(header: bytes, error: str) -> None:
    with pytest.raises(ImportHeaderError, match=error):
        _parse(header, b"07700900123,,x\n")
    with pytest.raises(ImportHeaderError, match="line 1: the file is empty"):
        _parse()


def test_email_addresses() -> None:
    assert normalise_email("  Foo.Bar+tag@Example.COM ") == "foo.bar+tag@example.com"
    assert normalise_email("someone@bücher.de") == "someone@bücher.de"
    bad = ["", "@example.com", "a@", "a@b@c.com", "a b@example.com", "a@-x.com", "a@example",
           "a@1.2.3.4", "x" * 65 + "@example.com", "a@" + "b" * 250 + ".com"]  # fmt: skip
    for address in bad:
        assert normalise_email(address) is None, address


def _imported(id: int, *, email: str | None = None, number: str | None = None,
              removed: bool = False) -> SuppressionRow:  # fmt: skip
    return SuppressionRow(id, None, number, IMPORTED, email, removed)


def test_an_imported_number_or_address_is_final_until_removed() -> None:
    numbers, emails = {"+447700900123", "07700900123"}, {"sam@example.com"}
    by_number = _imported(1, number="+447700900123")
    by_email = _imported(2, email="sam@example.com")
    stop, start = (SuppressionRow(3, 7, None, SMS_STOP), SuppressionRow(4, 7, None, SMS_START))
    for row in (by_number, by_email):
        status = status_of([row, stop, start], 7, numbers, emails)
        assert status.reasons == {IMPORTED}
        assert start_refusal(status) is not None  # no START lifts it
    removed = [_imported(1, number="+447700900123", removed=True),
               _imported(2, email="sam@example.com", removed=True)]  # fmt: skip
    assert not status_of(removed, 7, numbers, emails).suppressed
    # an address is matched only against the claimant's own
    assert not status_of([by_email], 7, numbers, {"other@example.com"}).suppressed


def test_only_an_imported_suppression_in_force_can_be_removed_and_not_into_the_future() -> None:
    row = _imported(5, number="+447700900123")
    assert removal_refusal(row, "claimant asked", "Ops", NOW, NOW) is None
    assert removal_refusal(row, "claimant asked", "Ops", NOW - timedelta(days=3), NOW) is None
    assert removal_refusal(None, "x", "Ops", NOW, NOW) == "no such suppression"
    refusals = {
        "not imported": removal_refusal(SuppressionRow(5, 7, None, "do_not_call"), "x", "Ops",
                                        NOW, NOW),
        "removed": removal_refusal(_imported(5, removed=True), "x", "Ops", NOW, NOW),
        "no reason": removal_refusal(row, "  ", "Ops", NOW, NOW),
        "nobody": removal_refusal(row, "x", " ", NOW, NOW),
        "future": removal_refusal(row, "x", "Ops", NOW + timedelta(minutes=1), NOW),
    }  # fmt: skip
    assert "only imported suppressions can be removed" in str(refusals["not imported"])
    assert "already removed" in str(refusals["removed"])
    assert "needs a reason" in str(refusals["no reason"])
    assert "must be named" in str(refusals["nobody"])
    assert "in the future" in str(refusals["future"])
