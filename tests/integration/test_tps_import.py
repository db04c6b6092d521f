"""The TPS/CTPS import and screening against the real PostgreSQL: idempotent imports, an
atomic replace (a reader sees the old list or the new one, whole), bad lines reported by
line number while the rest imports, an empty replace refused, one import at a time."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import tps
from schemas import dialler_db as db

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def numbers(start: int, count: int) -> list[str]:
    """`count` mobile numbers in the national spelling (07700 9xxxxx)."""
    return [f"07700{n:06d}" for n in range(start, start + count)]


def stored(national: str) -> int:
    return int("44" + national[1:])


def listing(lines: list[str]) -> io.BytesIO:
    return io.BytesIO(("\n".join(lines) + "\n").encode())


@pytest.fixture(autouse=True)
async def no_lists(dialler_db: AsyncEngine) -> AsyncIterator[None]:
    async with dialler_db.begin() as conn:
        await conn.execute(text("DELETE FROM tps_numbers"))
        await conn.execute(text("DELETE FROM tps_list_versions"))
    yield


async def imported(
    engine: AsyncEngine, lines: list[str], *, list_name: tps.ListName = "tps", replace: bool
) -> tps.ImportReport:
    return await tps.import_list(
        engine, listing(lines), list_name=list_name, replace=replace, source="test.txt"
    )


async def screen(engine: AsyncEngine, national: str) -> tps.TpsScreening:
    async with engine.connect() as conn:
        return await tps.screening(conn, "+44" + national[1:], NOW)


async def in_force(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return await tps.in_force_counts(conn)


async def test_with_no_list_imported_nothing_is_listed(dialler_db: AsyncEngine) -> None:
    found = await screen(dialler_db, "07700900123")
    assert found == tps.TpsScreening(listed=False, screened_at=NOW, list_version=None)
    async with dialler_db.connect() as conn:
        assert (await tps.screening(conn, None, NOW)).listed is False
        assert (await tps.screening(conn, "07700900123", NOW)).listed is False  # not E.164


async def test_an_import_lists_its_numbers_and_importing_it_again_changes_nothing(
    dialler_db: AsyncEngine,
) -> None:
    lines = [*numbers(900000, 500), "+44 7700 900000", "0044 7700 900001"]  # and duplicates
    first = await imported(dialler_db, lines, replace=False)
    assert first.changed and (first.numbers, first.added, first.rejected) == (500, 500, 0)
    listed = await screen(dialler_db, "07700900499")
    assert listed.listed and listed.list_version == first.version_id
    assert not (await screen(dialler_db, "07700900500")).listed

    again = await imported(dialler_db, list(reversed(lines)), replace=False)
    assert not again.changed and again.version_id is None and again.added == 0
    replaced_same = await imported(dialler_db, lines, replace=True)
    assert not replaced_same.changed and replaced_same.removed == 0
    async with dialler_db.connect() as conn:
        versions = await conn.scalar(select(func.count()).select_from(db.tps_list_versions))
    assert versions == 1  # the unchanged imports left no version behind
    assert await in_force(dialler_db) == {"tps": 500}
    assert (await screen(dialler_db, "07700900000")).list_version == first.version_id


async def test_additions_add_and_a_replace_replaces_one_list_only(
    dialler_db: AsyncEngine,
) -> None:
    await imported(dialler_db, numbers(900000, 100), replace=False)
    added = await imported(dialler_db, numbers(900050, 100), replace=False)
    assert (added.added, added.in_force) == (50, 150)
    ctps = await imported(dialler_db, numbers(800000, 10), list_name="ctps", replace=False)
    assert await in_force(dialler_db) == {"tps": 150, "ctps": 10}

    replaced = await imported(dialler_db, numbers(900100, 100), replace=True)
    assert (replaced.numbers, replaced.added, replaced.removed) == (100, 50, 100)
    assert await in_force(dialler_db) == {"tps": 100, "ctps": 10}
    assert not (await screen(dialler_db, "07700900000")).listed
    assert (await screen(dialler_db, "07700900199")).listed
    ctps_number = await screen(dialler_db, "07700800000")  # CTPS untouched by a TPS replace
    assert ctps_number.listed and ctps.version_id is not None
    assert ctps_number.list_version == replaced.version_id  # the newest version in force


async def test_a_reader_during_a_replace_sees_the_old_list_or_the_new_one_whole(
    dialler_db: AsyncEngine,
) -> None:
    old, new = numbers(100000, 20_000), numbers(300000, 20_000)
    await imported(dialler_db, old, replace=True)
    probe = [stored(n) for n in (*old[::997], *new[::997])]
    old_seen = {stored(n) for n in old[::997]}
    new_seen = {stored(n) for n in new[::997]}
    observed: list[frozenset[int]] = []
    importing = True

    async def read_forever() -> None:
        while importing:
            async with dialler_db.connect() as conn:
                observed.append(frozenset(await tps.listed_numbers(conn, probe)))
                counts = await tps.in_force_counts(conn)
            assert counts == {"tps": 20_000}  # never empty, never both
            await asyncio.sleep(0)

    seen_before_commit: list[frozenset[int]] = []

    async def before_commit() -> None:  # written, not committed: readers see the old list
        async with dialler_db.connect() as conn:
            seen_before_commit.append(frozenset(await tps.listed_numbers(conn, probe)))

    reader = asyncio.create_task(read_forever())
    try:
        report = await tps.import_list(
            dialler_db, listing(new), list_name="tps", replace=True, source="new.txt",
            before_commit=before_commit,
        )  # fmt: skip
        async with dialler_db.connect() as conn:
            seen_after = frozenset(await tps.listed_numbers(conn, probe))
    finally:
        importing = False
        await reader
    assert report.changed and report.removed == 20_000
    assert seen_before_commit == [old_seen]
    assert seen_after == new_seen
    assert observed and set(observed) <= {frozenset(old_seen), frozenset(new_seen)}

    # dropping the old version's rows later changes nothing a reader sees
    pending = await tps.pending_rescreens(dialler_db)
    for p in pending:
        await tps.mark_rescreened(dialler_db, p.version_id, NOW)
    assert await tps.drop_retired_numbers(dialler_db, NOW) == 20_000
    async with dialler_db.connect() as conn:
        assert frozenset(await tps.listed_numbers(conn, probe)) == new_seen
        left = await conn.scalar(select(func.count()).select_from(db.tps_numbers))
    assert left == 20_000


async def test_bad_lines_are_reported_by_line_number_and_the_rest_imports(
    dialler_db: AsyncEngine,
) -> None:
    lines = [
        "07700900001",
        "07700 9OO002",  # letters O
        "",
        "07700\x00900003",
        "9" * 1000,
        "07700900004",
        "+44 7700",
    ]
    rejected: list[tps.Rejection] = []
    report = await tps.import_list(
        dialler_db, listing(lines), list_name="tps", replace=False, source="bad.txt",
        on_rejected=rejected.append,
    )  # fmt: skip
    assert [(r.line, r.reason) for r in report.rejections][:3] == [
        (2, "not a phone number (unexpected characters)"),
        (4, "contains a NUL byte"),
        (5, "line too long"),
    ]
    assert report.rejections[3].line == 7  # not a phone number, or not a full UK one
    assert report.rejections[3].reason.startswith("not a ")
    assert rejected == report.rejections
    assert (report.lines, report.valid, report.rejected, report.added) == (7, 2, 4, 2)
    assert (await screen(dialler_db, "07700900001")).listed
    assert (await screen(dialler_db, "07700900004")).listed
    async with dialler_db.connect() as conn:
        recorded = await conn.scalar(select(db.tps_list_versions.c.rejected_lines))
    assert recorded == 4


async def test_a_replace_with_no_numbers_is_refused_unless_asked_for(
    dialler_db: AsyncEngine,
) -> None:
    await imported(dialler_db, numbers(900000, 10), replace=True)
    for empty in ([], ["", "  "], ["not a number", "0"]):
        with pytest.raises(tps.ImportRefused, match="would empty the list"):
            await imported(dialler_db, empty, replace=True)
    assert await in_force(dialler_db) == {"tps": 10}
    assert not (await imported(dialler_db, [], replace=False)).changed

    emptied = await tps.import_list(
        dialler_db, listing([]), list_name="tps", replace=True, source="empty.txt",
        allow_empty=True,
    )  # fmt: skip
    assert emptied.changed and emptied.removed == 10
    assert await in_force(dialler_db) == {}
    assert not (await screen(dialler_db, "07700900000")).listed
    listed = await screen(dialler_db, "07700900000")
    assert listed.list_version == emptied.version_id  # a list is in force: an empty one


async def test_one_import_at_a_time(dialler_db: AsyncEngine) -> None:
    async with dialler_db.connect() as holder, holder.begin():
        await holder.execute(select(func.pg_advisory_xact_lock(tps.IMPORT_LOCK)))
        with pytest.raises(tps.ImportRefused, match="another TPS/CTPS import is running"):
            await imported(dialler_db, numbers(900000, 10), replace=False)
    assert await in_force(dialler_db) == {}


async def test_changed_screenings_compare_the_queue_before_and_after_an_import(
    dialler_db: AsyncEngine,
) -> None:
    await imported(dialler_db, numbers(900000, 10), replace=True)
    await imported(dialler_db, numbers(900005, 10), list_name="ctps", replace=True)
    queue = {1: stored("07700900000"), 2: stored("07700900007"), 3: stored("07700900012"),
             4: stored("07700900020"), 5: stored("07700900001")}  # fmt: skip
    # TPS replaced: 900000-900004 drop out of the TPS, 900020 comes in. 900007 stays listed
    # (now on the CTPS only); 900012 is on the CTPS throughout.
    await imported(dialler_db, [*numbers(900005, 5), "07700900020"], replace=True)
    pending = await tps.pending_rescreens(dialler_db)
    assert len(pending) == 3
    changes = []
    for p in pending:
        changes += await tps.changed_screenings(dialler_db, queue, p)
    last = await tps.changed_screenings(dialler_db, queue, pending[-1])
    assert last == [
        tps.ScreeningChange(1, listed=False),
        tps.ScreeningChange(4, listed=True),
        tps.ScreeningChange(5, listed=False),
    ]
    assert tps.ScreeningChange(3, listed=True) in changes  # the CTPS import listed it
    assert await tps.changed_screenings(dialler_db, {}, pending[-1]) == []
    # the rows a pending re-screening compares against are kept until it is done
    assert await tps.drop_retired_numbers(dialler_db, NOW) == 0
    for p in pending:
        await tps.mark_rescreened(dialler_db, p.version_id, NOW)
    assert await tps.drop_retired_numbers(dialler_db, NOW) == 10
    assert await tps.pending_rescreens(dialler_db) == []
