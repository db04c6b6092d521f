"""The TPS and CTPS lists in the dialler DB, and the screening of numbers against them.

Owner of `tps_list_versions` and `tps_numbers` (migration 0006). A list in force is its
versions that are not retired: the last full import (`replace`) and the imports added to it
since (`add`, each holding only the numbers the list did not have yet). Numbers are stored
as the digits of their E.164 form (`+447700900123` -> 447700900123): one bigint compare per
index step, half the size of text.

- `screening`: is a number on any list in force? One statement: an index lookup by number.
- `import_list` (`dialler compliance tps-import`): streams a file of one number per line
  through COPY into a staging table, a chunk at a time (memory stays flat whatever the file's
  size), then into a new version in the same transaction. A replace retires the list's
  versions in that transaction: readers see the old list or the new one, never a mix and
  never an empty list. Importing what is already in force changes nothing (the transaction
  is rolled back). A line that is not a number is reported with its line number; the rest
  imports.
- Re-screening: every import records the versions in force before and after it
  (`screened_before`, `screened_after`); `changed_screenings` compares a set of numbers (the
  queued claimants') against both in PostgreSQL, and `mark_rescreened` records that their
  claimants were told. The retired versions' rows are dropped (`drop_retired_numbers`) once
  no re-screening still needs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Literal

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.phones import to_e164
from schemas import dialler_db as db

ListName = Literal["tps", "ctps"]
LISTS: tuple[ListName, ...] = ("tps", "ctps")

MAX_LINE_BYTES = 64  # the longest spelling of a number is about 25; longer is not a number
READ_BYTES = 1 << 20  # the file is read this much at a time
CHUNK_NUMBERS = 50_000  # numbers per COPY into the staging table
REJECTS_KEPT = 100  # rejected lines kept for the report (all are counted)
IMPORT_LOCK = 0x7D5_0006  # pg_advisory_xact_lock key: one import at a time
_ALLOWED = b"0123456789+-(). \t"
_BOM = b"\xef\xbb\xbf"

_V = db.tps_list_versions.c
_N = db.tps_numbers.c


@dataclass(frozen=True)
class TpsScreening:
    listed: bool
    screened_at: datetime
    list_version: int | None  # None: no list has been imported yet


def e164_digits(number_e164: str | None) -> int | None:
    """The stored form of an E.164 number (its digits as an integer); None if not E.164."""
    if not number_e164 or not number_e164.startswith("+"):
        return None
    digits = number_e164[1:]
    if not digits.isascii() or not digits.isdigit() or not 7 <= len(digits) <= 15:
        return None
    return int(digits)


_SCREENING = select(
    select(func.max(_V.id)).where(_V.retired_at.is_(None)).scalar_subquery().label("version"),
    select(_N.number)
    .join(db.tps_list_versions, _V.id == _N.version_id)
    .where(_N.number == bindparam("number"), _V.retired_at.is_(None))
    .exists()
    .label("listed"),
)


async def screening(conn: AsyncConnection, number_e164: str | None, now: datetime) -> TpsScreening:
    """Is this number on the TPS or CTPS list in force? `now` is the screening's time. A
    number that is not E.164 (or none) is not on a list."""
    digits = e164_digits(number_e164)
    row = (await conn.execute(_SCREENING, {"number": digits if digits is not None else -1})).one()
    version = None if row.version is None else int(row.version)
    return TpsScreening(listed=bool(row.listed) and digits is not None, screened_at=now,
                        list_version=version)  # fmt: skip


# --- reading a list file ------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based
    reason: str
    excerpt: str  # the start of the line, printable


def numbered_lines(stream: IO[bytes], max_bytes: int = MAX_LINE_BYTES) -> Iterator[
    tuple[int, bytes | None, int]
]:  # fmt: skip
    """(line number, line without its newline or None when longer than `max_bytes`, bytes
    read so far). A line of any length costs at most `max_bytes` + one read of memory."""
    number = 0
    carry = b""
    overlong = False
    consumed = 0
    while block := stream.read(READ_BYTES):
        consumed += len(block)
        parts = block.split(b"\n")
        parts[0] = carry + parts[0]
        carry = parts.pop()
        for part in parts:
            number += 1
            if overlong or len(part) > max_bytes:
                overlong = False
                yield number, None, consumed
            else:
                yield number, part, consumed
        if len(carry) > max_bytes:  # keep reading to its end, but not keeping it
            overlong, carry = True, b""
    if carry or overlong:
        yield number + 1, None if overlong else carry, consumed


def parse_number(raw: bytes) -> int | str | None:
    """A list line as stored (E.164 digits), or why it is rejected; None for a blank line."""
    line = raw.strip()
    if not line:
        return None
    if b"\x00" in line:
        return "contains a NUL byte"
    if line.translate(None, _ALLOWED):
        return "not a phone number (unexpected characters)"
    number = to_e164(line.decode("ascii"))
    if number is None:
        return "not a phone number"
    digits = e164_digits(number)
    return "not a phone number" if digits is None else digits


def _excerpt(raw: bytes | None) -> str:
    if raw is None:
        return f"(longer than {MAX_LINE_BYTES} bytes)"
    shown = raw[:40].decode("ascii", errors="replace")
    return repr(shown + ("..." if len(raw) > 40 else ""))


@dataclass
class _Reader:
    """Parses a list file a chunk of numbers at a time, counting and keeping rejections."""

    stream: IO[bytes]
    on_progress: Callable[[int], None] | None = None
    on_rejected: Callable[[Rejection], None] | None = None
    lines: int = 0
    valid: int = 0
    rejected: int = 0
    kept: list[Rejection] = field(default_factory=list)
    _read: int = 0

    def chunks(self, size: int = CHUNK_NUMBERS) -> Iterator[list[tuple[int]]]:
        chunk: list[tuple[int]] = []
        for line, raw, consumed in numbered_lines(self.stream):
            self.lines = line
            if consumed != self._read and self.on_progress is not None:
                self.on_progress(consumed - self._read)
            self._read = consumed
            if raw is not None and line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            parsed = "line too long" if raw is None else parse_number(raw)
            if parsed is None:
                continue
            if isinstance(parsed, str):
                self._reject(Rejection(line, parsed, _excerpt(raw)))
                continue
            self.valid += 1
            chunk.append((parsed,))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.kept) < REJECTS_KEPT:
            self.kept.append(rejection)
        if self.on_rejected is not None:
            self.on_rejected(rejection)


# --- importing ------------------------------------------------------------------------------


class ImportRefused(Exception):
    """Nothing was changed; `str(error)` says why, for an operator."""


@dataclass
class ImportReport:
    list_name: ListName
    replace: bool
    lines: int
    valid: int  # lines holding a number (duplicates included)
    rejected: int
    rejections: list[Rejection]  # the first REJECTS_KEPT
    changed: bool
    version_id: int | None = None  # the new version (None: nothing changed)
    numbers: int = 0  # distinct numbers in the new version
    added: int = 0  # numbers the list did not have
    removed: int = 0  # numbers it no longer has (replace)
    in_force: int = 0  # the list's numbers after the import


async def _versions_in_force(conn: AsyncConnection) -> list[tuple[int, str]]:
    rows = await conn.execute(select(_V.id, _V.list).where(_V.retired_at.is_(None)).order_by(_V.id))
    return [(int(r.id), str(r.list)) for r in rows]


async def import_list(
    engine: AsyncEngine,
    stream: IO[bytes],
    *,
    list_name: ListName,
    replace: bool,
    source: str,
    allow_empty: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_rejected: Callable[[Rejection], None] | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> ImportReport:
    """Import a list file (one number per line) in one transaction; see the module's
    docstring. `before_commit` runs when everything is written but not yet committed (tests
    look at the lists from another connection then). Raises ImportRefused (nothing changed)
    when another import is running or a replace would empty the list without `allow_empty`.
    """
    if list_name not in LISTS:
        raise ImportRefused(f"unknown list {list_name!r}: tps or ctps")
    reader = _Reader(stream, on_progress, on_rejected)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            report = await _import(conn, reader, list_name, replace, source, allow_empty)
            if not report.changed:
                await transaction.rollback()
                return report
            if before_commit is not None:
                await before_commit()
            await transaction.commit()
        except BaseException:
            if transaction.is_active:
                await transaction.rollback()
            raise
        # Fresh statistics: the planner's row estimates decide between index probes and scans.
        await conn.execute(text("ANALYZE tps_numbers"))
        await conn.commit()
    return report


async def _import(
    conn: AsyncConnection,
    reader: _Reader,
    list_name: ListName,
    replace: bool,
    source: str,
    allow_empty: bool,
) -> ImportReport:
    locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(IMPORT_LOCK)))
    if not locked:
        raise ImportRefused("another TPS/CTPS import is running; try again when it has finished")
    before = await _versions_in_force(conn)
    own = [version for version, name in before if name == list_name]
    version_id = int(
        await conn.scalar(
            insert(db.tps_list_versions)
            .values(
                list=list_name,
                mode="replace" if replace else "add",
                source=source[-255:],
                numbers=0,
                screened_before=[],
                screened_after=[],
            )
            .returning(_V.id)
        )
    )
    await conn.execute(text("CREATE TEMP TABLE tps_staging (number bigint) ON COMMIT DROP"))
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    for chunk in reader.chunks():
        await driver.copy_records_to_table("tps_staging", records=chunk, columns=["number"])
    report = ImportReport(list_name, replace, reader.lines, reader.valid, reader.rejected,
                          reader.kept, changed=False)  # fmt: skip
    if replace and reader.valid == 0 and not allow_empty:
        raise ImportRefused(
            f"the file holds no numbers ({reader.lines:,} lines, {reader.rejected:,} rejected): "
            f"replacing the {list_name.upper()} list with it would empty the list. "
            "Nothing was changed; pass --allow-empty to empty it on purpose."
        )
    params = {"v": version_id, "own": own}
    if replace:
        inserted = await conn.execute(
            text(
                "INSERT INTO tps_numbers (number, version_id) "
                "SELECT DISTINCT number, CAST(:v AS bigint) FROM tps_staging ORDER BY number"
            ),
            {"v": version_id},
        )
        report.numbers = inserted.rowcount
        report.added = int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM tps_numbers n "
                    "WHERE n.version_id = CAST(:v AS bigint) AND NOT EXISTS "
                    "(SELECT 1 FROM tps_numbers o WHERE o.number = n.number "
                    "AND o.version_id = ANY(CAST(:own AS bigint[])))"
                ),
                params,
            )
            or 0
        )
        report.removed = int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM tps_numbers o "
                    "WHERE o.version_id = ANY(CAST(:own AS bigint[])) AND NOT "
                    "EXISTS (SELECT 1 FROM tps_numbers n WHERE n.number = o.number "
                    "AND n.version_id = CAST(:v AS bigint))"
                ),
                params,
            )
            or 0
        )
        # A first import of an empty list (allowed) changes what `tps-status` shows.
        report.changed = bool(report.added or report.removed or not own)
        retired = own
    else:
        inserted = await conn.execute(
            text(
                "INSERT INTO tps_numbers (number, version_id) "
                "SELECT DISTINCT s.number, CAST(:v AS bigint) FROM tps_staging s WHERE NOT EXISTS "
                "(SELECT 1 FROM tps_numbers n WHERE n.number = s.number "
                "AND n.version_id = ANY(CAST(:own AS bigint[]))) ORDER BY s.number"
            ),
            params,
        )
        report.numbers = report.added = inserted.rowcount
        report.changed = report.added > 0
        retired = []
    if not report.changed:
        return report
    if retired:
        await conn.execute(
            update(db.tps_list_versions).where(_V.id.in_(retired)).values(retired_at=func.now())
        )
    before_ids = [version for version, _ in before]
    after_ids = [v for v in before_ids if v not in retired] + [version_id]
    await conn.execute(
        update(db.tps_list_versions)
        .where(_V.id == version_id)
        .values(numbers=report.numbers, rejected_lines=reader.rejected,
                screened_before=before_ids, screened_after=after_ids)
    )  # fmt: skip
    report.version_id = version_id
    report.in_force = await _count_in_force(conn, list_name)
    return report


async def _count_in_force(conn: AsyncConnection, list_name: str) -> int:
    found = await conn.scalar(
        select(func.coalesce(func.sum(_V.numbers), 0)).where(
            _V.list == list_name, _V.retired_at.is_(None)
        )
    )
    return int(found or 0)


# --- re-screening ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingRescreen:
    """An import whose claimants have not all been told yet."""

    version_id: int
    list_name: str
    before: list[int]
    after: list[int]


@dataclass(frozen=True)
class ScreeningChange:
    user_id: int
    listed: bool  # after the import


async def pending_rescreens(engine: AsyncEngine) -> list[PendingRescreen]:
    """Imports not re-screened yet, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_V.id, _V.list, _V.screened_before, _V.screened_after)
            .where(_V.rescreened_at.is_(None))
            .order_by(_V.id)
        )
        return [
            PendingRescreen(int(r.id), str(r.list), [int(v) for v in r.screened_before],
                            [int(v) for v in r.screened_after])
            for r in rows
        ]  # fmt: skip


async def changed_screenings(
    engine: AsyncEngine, numbers: Mapping[int, int], pending: PendingRescreen
) -> list[ScreeningChange]:
    """Of these claimants (user id -> number as stored), those whose number is listed under
    the versions in force after the import and was not before, or the other way round: one
    set operation in PostgreSQL (the numbers are copied into a temporary table and joined
    to the lists, each side an index probe)."""
    if not numbers:
        return []
    async with engine.connect() as conn, conn.begin():
        await conn.execute(
            text("CREATE TEMP TABLE tps_queued (user_id bigint, number bigint) ON COMMIT DROP")
        )
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(
            "tps_queued", records=list(numbers.items()), columns=["user_id", "number"]
        )
        await conn.execute(text("ANALYZE tps_queued"))
        rows = await conn.execute(
            text(
                "SELECT user_id, now_listed FROM ("
                " SELECT q.user_id,"
                "  EXISTS (SELECT 1 FROM tps_numbers n WHERE n.number = q.number"
                "   AND n.version_id = ANY(CAST(:before AS bigint[]))) AS was_listed,"
                "  EXISTS (SELECT 1 FROM tps_numbers n WHERE n.number = q.number"
                "   AND n.version_id = ANY(CAST(:after AS bigint[]))) AS now_listed"
                " FROM tps_queued q) s "
                "WHERE was_listed <> now_listed ORDER BY user_id"
            ),
            {"before": pending.before, "after": pending.after},
        )
        return [ScreeningChange(int(r.user_id), bool(r.now_listed)) for r in rows]


async def mark_rescreened(engine: AsyncEngine, version_id: int, now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(db.tps_list_versions).where(_V.id == version_id).values(rescreened_at=now)
        )


async def drop_retired_numbers(engine: AsyncEngine, now: datetime) -> int:
    """Delete the rows of retired versions that no pending re-screening still compares
    against; returns the rows deleted."""
    pending = await pending_rescreens(engine)
    needed = {v for p in pending for v in (*p.before, *p.after)}
    async with engine.begin() as conn:
        rows = await conn.execute(
            select(_V.id).where(_V.retired_at.is_not(None), _V.numbers_dropped_at.is_(None))
        )
        droppable = [int(r.id) for r in rows if int(r.id) not in needed]
        if not droppable:
            return 0
        deleted = await conn.execute(
            text("DELETE FROM tps_numbers WHERE version_id = ANY(CAST(:ids AS bigint[]))"),
            {"ids": droppable},
        )
        await conn.execute(
            update(db.tps_list_versions).where(_V.id.in_(droppable)).values(numbers_dropped_at=now)
        )
        return deleted.rowcount


# --- what is in force ---------------------------------------------------------------------


@dataclass(frozen=True)
class ListVersion:
    version_id: int
    list_name: str
    mode: str
    source: str
    numbers: int
    rejected_lines: int
    imported_at: datetime
    rescreened: bool


async def lists_in_force(engine: AsyncEngine) -> list[ListVersion]:
    """The versions in force, by list then age (a list's full import first)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(_V.id, _V.list, _V.mode, _V.source, _V.numbers, _V.rejected_lines,
                   _V.imported_at, _V.rescreened_at)
            .where(_V.retired_at.is_(None))
            .order_by(_V.list.desc(), _V.id)
        )  # fmt: skip
        return [
            ListVersion(int(r.id), str(r.list), str(r.mode), str(r.source), int(r.numbers),
                        int(r.rejected_lines), r.imported_at, r.rescreened_at is not None)
            for r in rows
        ]  # fmt: skip


async def listed_numbers(conn: AsyncConnection, numbers: Sequence[int]) -> set[int]:
    """Which of these stored numbers are on a list in force, read in one statement (one
    snapshot)."""
    rows = await conn.execute(
        select(_N.number)
        .join(db.tps_list_versions, _V.id == _N.version_id)
        .where(_N.number.in_(list(numbers)), _V.retired_at.is_(None))
    )
    return {int(r.number) for r in rows}


async def in_force_counts(conn: AsyncConnection) -> dict[str, int]:
    """Rows in force per list, counted (not the versions' recorded figures)."""
    rows = await conn.execute(
        select(_V.list, func.count())
        .select_from(db.tps_numbers)
        .join(db.tps_list_versions, _V.id == _N.version_id)
        .where(_V.retired_at.is_(None))
        .group_by(_V.list)
    )
    return {str(name): int(count) for name, count in rows}
