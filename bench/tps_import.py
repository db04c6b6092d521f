"""TPS/CTPS import and the screening of every queued number, at 1 and 10 million numbers.

    .venv/bin/python -m bench.tps_import [--sizes 1000000,10000000] [--queue 50000]
                                         [--listed-share 0.1] [--no-record]

For each size: a file of realistic UK numbers is generated in /tmp (mobiles and landlines,
spelt the ways lists spell them: 07..., +44 7..., 0044..., with spaces; a few duplicates
and malformed lines), then, on scratch databases (no Temporal: the refreshes go to a
counting stand-in for the workflow door):

- first import (`--replace` into an empty list): lines/s, and the process's peak RSS;
- the same file again (nothing changes: the idempotence check's cost);
- a monthly update (`--replace` with 1 % of the numbers gone and as many new): lines/s;
- screening every queued number against the lists before and after that update: the
  re-screen of `--queue` claimants with a task (numbers read from the replica in batches,
  normalised, copied into a temporary table and compared in one query); `--listed-share`
  of the queued claimants' numbers are on the list;
- one `screening()` lookup (what a workflow's fact load does): p50/p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from adapters import task_store, tps
from adapters.replica_reader import ReplicaReader
from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say, verdict
from bench.harness.machine import Phase, PhaseLoad, code_version, load_table, machine_info, stamp
from bench.harness.seed import seed
from bench.harness.stack import Databases, scratch_databases
from bench.harness.stats import ms
from domain.phones import to_e164
from schemas.outreach import ChangeEvent
from services.tps_screening import rescreen_pending

FILE_SEED = 11
REJECT_EVERY = 100_000  # one malformed line per this many


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def spell(national: str, rng: random.Random) -> str:
    """A national number (0 + 10 digits) as a list might spell it."""
    roll = rng.random()
    if roll < 0.70:
        return national
    if roll < 0.85:
        return f"{national[:5]} {national[5:]}"
    if roll < 0.95:
        return f"+44 {national[1:5]} {national[5:]}"
    return "0044" + national[1:]


def random_national(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"07{rng.randrange(100_000_000, 999_999_999):09d}"  # mobile
    area = rng.choice(("01", "02", "03"))
    return f"{area}{rng.randrange(10_000_000, 99_999_999):08d}"


def write_list(path: Path, size: int, listed: list[str], seed: int, skip_every: int = 0) -> int:
    """Stream `size` numbers to `path` (the same sequence for the same seed, nothing held in
    memory): `listed` spread through it, random numbers otherwise, a malformed line now and
    then. With `skip_every`, every such line of the sequence is replaced by a new random
    number (a monthly update). Returns the lines written."""
    rng = random.Random(seed)
    fresh = random.Random(seed + 1)
    spread = max(1, size // max(1, len(listed)))
    lines = 0
    with path.open("w", encoding="ascii") as out:
        for i in range(size):
            national = random_national(rng)
            is_listed = bool(listed) and i % spread == 0 and i // spread < len(listed)
            if is_listed:
                national = listed[i // spread]
            if skip_every and (
                i % skip_every == skip_every - 1 or (is_listed and (i // spread) % skip_every == 0)
            ):
                national = random_national(fresh)  # 1 % of the lines, and of the queue's
            out.write(spell(national, rng) + "\n")
            lines += 1
            if i % REJECT_EVERY == REJECT_EVERY - 1:
                out.write("0770O 9000OO\n")
                lines += 1
    return lines


class RssSampler:
    """The process's resident memory sampled every 50 ms while a phase runs: its peak."""

    def __init__(self) -> None:
        self.peak = current_rss_mib()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, current_rss_mib())
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        self.peak = max(self.peak, current_rss_mib())
        if self._task is not None:
            self._task.cancel()


class CountingDoor:
    """Stands in for OutreachClient: counts the refreshes the re-screen sends."""

    def __init__(self) -> None:
        self.delivered: list[ChangeEvent] = []

    async def deliver(self, event: ChangeEvent) -> None:
        self.delivered.append(event)


@dataclass
class Timed:
    seconds: float
    report: tps.ImportReport


async def timed_import(dbs: Databases, path: Path, replace: bool) -> Timed:
    began = time.perf_counter()
    with path.open("rb") as stream:
        report = await tps.import_list(
            dbs.dialler, stream, list_name="tps", replace=replace, source=path.name
        )
    return Timed(time.perf_counter() - began, report)


async def fill_queue(dbs: Databases, queue: int) -> dict[int, str]:
    """`queue` demo claimants with a task each (synthetic rows: statuses mixed as a live
    projection has them); returns their numbers as the replica spells them."""
    await seed(dbs, queue)
    async with dbs.replica.connect() as conn:
        rows = (await conn.execute(text("SELECT id, phone_number FROM users"))).all()
    numbers = {int(r.id): str(r.phone_number) for r in rows if r.phone_number}
    users = sorted(numbers)
    statuses = ["ready", "ready", "ready", "claimed", "withdrawn"]
    async with dbs.dialler.begin() as conn:
        await conn.execute(text("TRUNCATE call_tasks CASCADE"))
        await conn.execute(
            text(
                "INSERT INTO call_tasks (user_id, workflow_id, queue, score, not_before, "
                "status, version) SELECT u, 'outreach-' || u, 'unsigned', 50, now(), s, 1 "
                "FROM unnest(CAST(:users AS bigint[]), CAST(:statuses AS text[])) AS t(u, s)"
            ),
            {"users": users, "statuses": [statuses[u % 5] for u in users]},
        )
        await conn.execute(text("ANALYZE call_tasks"))
    return numbers


async def table_mib(dbs: Databases) -> float:
    async with dbs.dialler.connect() as conn:
        size = await conn.scalar(text("SELECT pg_total_relation_size('tps_numbers')"))
    return int(size or 0) / 2**20


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument(
        "--sizes", default="1000000,10000000", help="numbers per list, comma-separated"
    )
    cli.add_argument("--queue", type=int, default=50_000, help="claimants with a task")
    cli.add_argument("--listed-share", type=float, default=0.1, help="of the queue, on the list")
    args = cli.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[list[str]] = []
    screen_rows: list[list[str]] = []
    loads: list[PhaseLoad] = []
    figures: list[Figure] = []
    async with scratch_databases("tps") as dbs:
        machine = await machine_info(dbs)
        queued = await fill_queue(dbs, args.queue)
        normalised = {u: to_e164(n) for u, n in queued.items()}
        queue_nationals = ["0" + n[3:] for n in normalised.values() if n and n.startswith("+44")]
        base_rss = current_rss_mib()
        peaks: list[float] = []
        for size in sizes:
            rng = random.Random(FILE_SEED + size)
            async with dbs.dialler.begin() as conn:
                await conn.execute(text("TRUNCATE tps_numbers, tps_list_versions"))
            listed = rng.sample(queue_nationals, int(len(queue_nationals) * args.listed_share))
            first = Path(tempfile.gettempdir()) / f"bench_tps_{size}.txt"
            update = Path(tempfile.gettempdir()) / f"bench_tps_{size}_update.txt"
            say(f"writing {size:,} numbers to {first} and the update")
            lines = write_list(first, size, listed, FILE_SEED + size)
            lines_update = write_list(update, size, listed, FILE_SEED + size, skip_every=100)
            results: dict[str, Timed] = {}
            for name, path, replace, n_lines in (
                ("first import (replace, empty list)", first, True, lines),
                ("same file again (nothing changes)", first, True, lines),
                ("monthly update (replace, 1 % changed)", update, True, lines_update),
            ):
                say(f"{size:,}: {name}")
                async with Phase(f"{name}, {size:,}") as phase, RssSampler() as rss:
                    result = await timed_import(dbs, path, replace)
                peaks.append(rss.peak)
                loads.append(phase.load)
                results[name] = result
                r = result.report
                rows.append([
                    f"{size:,}", name, f"{n_lines:,}", f"{r.rejected:,}",
                    f"{r.numbers:,}" if r.changed else "unchanged",
                    f"{r.added:,} / {r.removed:,}", f"{result.seconds:.1f} s",
                    f"{n_lines / result.seconds:,.0f}", f"{rss.peak:,.0f} MiB",
                ])  # fmt: skip
            table_size = await table_mib(dbs)
            # the update's re-screen: every queued claimant's number, before vs after
            async with dbs.dialler.begin() as conn:  # only the update is pending
                await conn.execute(
                    text(
                        "UPDATE tps_list_versions SET rescreened_at = now() "
                        "WHERE id <> (SELECT max(id) FROM tps_list_versions)"
                    )
                )
            door = CountingDoor()
            async with Phase(f"re-screen the queue, {size:,}") as phase:
                began = time.perf_counter()
                user_ids = await task_store.task_user_ids(dbs.dialler)
                phones = await ReplicaReader(dbs.replica).phone_numbers(user_ids)
                read = time.perf_counter()
                digits = {u: d for u, p in phones.items()
                          if (d := tps.e164_digits(to_e164(p))) is not None}  # fmt: skip
                normalised_at = time.perf_counter()
                pending = (await tps.pending_rescreens(dbs.dialler))[-1]
                changes = await tps.changed_screenings(dbs.dialler, digits, pending)
                compared = time.perf_counter()
                done = await rescreen_pending(
                    dbs.dialler, dbs.replica, door,  # type: ignore[arg-type]
                    datetime.now(UTC),
                )  # fmt: skip
                whole = time.perf_counter() - compared
            loads.append(phase.load)
            screen_total = compared - began
            async with dbs.dialler.connect() as conn:
                probes = rng.sample(list(digits.values()), min(2000, len(digits)))
                lookups = []
                listed_now = 0
                for number in probes:
                    t0 = time.perf_counter()
                    found = await tps.screening(conn, f"+{number}", datetime.now(UTC))
                    lookups.append(time.perf_counter() - t0)
                    listed_now += found.listed
            lookups.sort()
            screen_rows.append([
                f"{size:,}", f"{len(user_ids):,}", f"{len(digits):,}", ms(read - began),
                ms(normalised_at - read), ms(compared - normalised_at), f"**{ms(screen_total)}**",
                f"{len(changes):,}", f"{len(door.delivered):,}", ms(whole),
                f"{ms(statistics.median(lookups))} / {ms(lookups[int(len(lookups) * 0.99)])}",
                f"{table_size:,.0f} MiB",
            ])  # fmt: skip
            assert len(door.delivered) == len(changes) == sum(d.changed for d in done)
            first_rate = lines / results["first import (replace, empty list)"].seconds
            update_rate = lines_update / results["monthly update (replace, 1 % changed)"].seconds
            label = f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size:,}"
            figures += [
                Figure(f"first import, {label} numbers: lines/s", f"{first_rate:,.0f}"),
                Figure(f"monthly update, {label} numbers: lines/s", f"{update_rate:,.0f}"),
                Figure(f"re-screen {len(user_ids):,} queued numbers, {label} list",
                       ms(screen_total), "≤ 5 s (queue refresh)", verdict(screen_total <= 5.0)),
                Figure(f"peak RSS during the imports, {label} numbers",
                       f"{max(peaks[-3:]):,.0f} MiB",
                       f"flat: ≤ {base_rss:,.0f} MiB before + 200 MiB",
                       verdict(max(peaks[-3:]) <= base_rss + 200)),
            ]  # fmt: skip
            for path in (first, update):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    tables = [
        Table(
            "Imports (peak RSS: the process's resident memory, sampled every 50 ms)",
            ["numbers", "import", "lines", "rejected", "distinct stored", "added / removed",
             "time", "lines/s", "peak RSS"],
            rows,
        ),
        Table(
            "Re-screening the queue after the monthly update, and single lookups",
            ["list size", "claimants with a task", "with a number", "read numbers (replica)",
             "normalise", "compare (PostgreSQL)", "screen the queue", "changed",
             "refreshes sent", "rescreen_pending (whole, again)", "screening() p50 / p99",
             "tps_numbers size"],
            screen_rows,
        ),
        load_table(loads),
    ]  # fmt: skip
    notes = [
        f"Process RSS before the first import: {base_rss:,.0f} MiB; high-water mark of the "
        f"whole run (seeding included) {rss_mib():,.0f} MiB (Python, SQLAlchemy, "
        "phonenumbers' metadata, the queue's numbers); the import reads 1 MiB at a time and "
        f"copies {tps.CHUNK_NUMBERS:,} numbers per COPY, so its memory does not grow with "
        "the file.",
        "Each import is one transaction: COPY into a temporary staging table, then one "
        "INSERT ... SELECT DISTINCT ... ORDER BY into tps_numbers (PK number, version), then "
        "the added/removed counts (anti-joins against the versions in force); unchanged "
        "imports roll back.",
        f"The queue: {args.queue:,} demo claimants (seeded), every one with a call_tasks row "
        f"(ready, claimed, withdrawn); {args.listed_share:.0%} of their numbers are on the "
        "list. 'screen the queue' = task user ids + numbers from the replica + normalise + "
        "the before/after comparison in PostgreSQL; 'rescreen_pending (whole, again)' also "
        "marks the import re-screened and drops the retired version's rows.",
        "Files are generated with a fixed seed: 60 % mobiles, 40 % landlines (01/02/03), "
        "70 % spelt 07..., 15 % with a space, 10 % +44 with spaces, 5 % 0044; one malformed "
        f"line every {REJECT_EVERY:,}.",
    ]
    record = RunRecord("tps_import", "TPS/CTPS import and queue screening", stamp(),
                       code_version(), machine, params(args), figures, notes, tables)  # fmt: skip
    finish(record, no_record=args.no_record)
    return 0


if __name__ == "__main__":
    run(main)
