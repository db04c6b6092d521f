"""Reading a TPS/CTPS list file: each line normalised to E.164 (stored as its digits), or
rejected with its line number; lines of any length cost bounded memory."""

from __future__ import annotations

import io

import pytest

from adapters.tps import (
    MAX_LINE_BYTES,
    REJECTS_KEPT,
    _Reader,
    e164_digits,
    numbered_lines,
    parse_number,
)


@pytest.mark.parametrize(
    ("line", "stored"),
    [
        (b"07700900123", 447700900123),
        (b"07700 900 123", 447700900123),
        (b"  07700 900123  ", 447700900123),
        (b"07700-900-123\r", 447700900123),  # a CRLF file
        (b"+447700900123", 447700900123),
        (b"+44 7700 900123", 447700900123),
        (b"00447700900123", 447700900123),
        (b"447700900123", 447700900123),
        (b"+44 (0)7700 900123", 447700900123),
        (b"020 7946 0000", 442079460000),
        (b"(0161) 496 0000", 441614960000),
        (b"+33 1 23 45 67 89", 33123456789),  # not UK: kept in its own E.164
        (b"0033123456789", 33123456789),
        (b"+1 202 555 0143", 12025550143),
    ],
)
def test_spellings_of_a_number_are_stored_as_its_e164_digits(line: bytes, stored: int) -> None:
    assert parse_number(line) == stored


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"07700\x00900123", "NUL"),
        (b"\x00", "NUL"),
        (b"0770090O123", "unexpected characters"),  # a letter O for a zero
        (b"07700 900123 ext 5", "unexpected characters"),
        (b"number", "unexpected characters"),
        ("٠٧٧٠٠٩٠٠١٢٣".encode(), "unexpected characters"),  # not ASCII digits
        (b"\xff\xfe07700900123", "unexpected characters"),
        (b"12345", "not a"),  # a phone number, or a full UK one
        (b"+44 7700", "not a"),
        (b"+999 123", "not a phone number"),
        (b"++", "not a phone number"),
        (b"1" * 30, "not a phone number"),
    ],
)
def test_lines_that_are_not_numbers_are_rejected_with_a_reason(line: bytes, reason: str) -> None:
    parsed = parse_number(line)
    assert isinstance(parsed, str), parsed
    assert reason in parsed


def test_blank_lines_are_neither_numbers_nor_rejections() -> None:
    assert parse_number(b"") is None
    assert parse_number(b"  \t\r") is None


def test_stored_form_is_only_taken_from_e164() -> None:
    assert e164_digits("+447700900123") == 447700900123
    for bad in (None, "", "447700900123", "+44 7700", "+", "+12", "+1234567890123456", "+٣٣٣٣٣٣٣٣"):
        assert e164_digits(bad) is None


def test_lines_are_numbered_across_read_blocks_and_a_huge_line_is_cut_not_kept() -> None:
    huge = b"7" * (5 * 1024 * 1024)  # 5 MiB without a newline: longer than one read
    data = b"07700900001\n" + huge + b"\n07700900002\n\n07700900003"
    lines = [(n, line) for n, line, _ in numbered_lines(io.BytesIO(data))]
    assert lines == [
        (1, b"07700900001"),
        (2, None),
        (3, b"07700900002"),
        (4, b""),
        (5, b"07700900003"),
    ]


def test_a_huge_last_line_without_a_newline_is_rejected() -> None:
    data = b"07700900001\n" + b"0" * (3 * 1024 * 1024)
    assert [(n, line) for n, line, _ in numbered_lines(io.BytesIO(data))] == [
        (1, b"07700900001"),
        (2, None),
    ]


def test_a_line_just_at_the_limit_is_read() -> None:
    line = b" " * (MAX_LINE_BYTES - 11) + b"07700900123"
    assert [x for _, x, _ in numbered_lines(io.BytesIO(line + b"\n"))] == [line]


def test_the_reader_reports_rejections_by_line_number_and_keeps_the_rest() -> None:
    data = (
        b"\xef\xbb\xbf07700900001\r\n"  # a byte-order mark on the first line
        b"07700900002\r\n"
        b"not a number\r\n"
        b"\r\n"
        b"07700\x00900003\r\n" + b"9" * 10_000 + b"\r\n07700900004\r\n"
        b"07700900004\r\n"  # a duplicate is a number (the database keeps one)
    )
    rejected: list[int] = []
    progress: list[int] = []
    reader = _Reader(io.BytesIO(data), progress.append, lambda r: rejected.append(r.line))
    chunks = list(reader.chunks(size=2))
    assert [n for chunk in chunks for (n,) in chunk] == [
        447700900001,
        447700900002,
        447700900004,
        447700900004,
    ]
    assert [len(c) for c in chunks] == [2, 2]
    assert rejected == [3, 5, 6]
    assert [(r.line, r.reason) for r in reader.kept] == [
        (3, "not a phone number (unexpected characters)"),
        (5, "contains a NUL byte"),
        (6, "line too long"),
    ]
    assert (reader.lines, reader.valid, reader.rejected) == (8, 4, 3)
    assert sum(progress) == len(data)


def test_rejections_kept_for_the_report_are_capped_but_all_counted() -> None:
    data = b"x\n" * (REJECTS_KEPT + 50) + b"07700900123\n"
    reader = _Reader(io.BytesIO(data))
    assert [n for chunk in reader.chunks() for (n,) in chunk] == [447700900123]
    assert reader.rejected == REJECTS_KEPT + 50
    assert len(reader.kept) == REJECTS_KEPT
    assert reader.kept[-1].line == REJECTS_KEPT
