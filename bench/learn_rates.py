"""The nightly learned rates (issue 14) at seed scale and at 10x: how long the job takes, and
how that compares with a plain count of the same calls measured in the same run.

    .venv/bin/python -m bench.learn_rates [--users 50000] [--calls 1000000] [--days 180]
        [--scales 1,10] [--repeats 3] [--sms-share 0.04] [--no-workflow] [--no-record]

For each scale (1: seed scale, 50,000 claimants and a million calls; 10: ten times both), on
scratch databases of its own: demo data for `--users` x scale claimants in the replica
(users with postcodes and birth dates, ~3 claims each with their lenders), `--calls` x scale
calls of synthetic history over `--days` days (`bench.supervisor_history`: 100 agents, 10 of
them AI; the outcomes, links and conversions credited to calls; no state changes or texts,
which the job does not read), and AI SMS conversations, `--sms-share` of the calls, a third
answered, a quarter of those converting through a text. Vacuumed and analysed.

Timed, each `--repeats` times (median), in this process against the databases:

- baseline: `SELECT count(*) FROM calls` over the job's window (the least any job reading
  the window's calls can cost), and the analytics' one-scan call breakdown
  (`call_log.call_breakdown`) over the same window, for context;
- the job: `LearningActivities.run_now`, the nightly workflow's three activities one after
  the other (gather: both channels counted by the database and the claimants' attributes
  from the replica; learn; save a version);
- its parts alone: the calls' count, the SMS conversations' count, the replica's
  attributes, the fold by region/lender/age band, the rates, the save.

With the workflow (default), also once per scale through Temporal: `LearnRatesWorkflow` on a
dev server, a worker in this process with the learning activities, from start to result.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from temporalio.worker import Worker

from activities.learning import LearningActivities, gather_request, save_request
from adapters import ai_conversations, call_log, conversions, learned_rates
from adapters.databases import for_reports
from adapters.replica_reader import ReplicaReader
from bench.harness.cli import (
    Figure,
    RunRecord,
    Table,
    finish,
    params,
    parser,
    run,
    say,
    verdict,
)
from bench.harness.machine import Phase, PhaseLoad, code_version, load_table, machine_info, stamp
from bench.harness.seed import seed
from bench.harness.stack import Databases, connect_client, dev_server, scratch_databases
from bench.harness.stats import ms
from bench.supervisor_history import write_history
from domain.learned_rates import AttemptSource, learn_rates, segment_counts
from schemas.learned_rates import LearnRatesInput, LearnRatesResult, RateInput, SaveRates
from workflows.learning import LearnRatesWorkflow

UK = "Europe/London"
HISTORY_STEPS = ("calls", "links from calls", "automatic links", "link events", "signatures",
                 "documents")  # fmt: skip

# AI SMS conversations: started at random in the window by the history's AI agents, a third
# answered (1-6 claimant turns), a quarter of those converting through a text sent 10
# minutes in (credited to the conversation's agent, as attribution would)
_SMS = text(
    """
    INSERT INTO ai_conversations (user_id, agent_id, channel, queue, workflow_id, status,
                                  turns, started_at, ended_at)
    SELECT u, a.id, 'sms', a.queue, 'bench-sms-' || g,
           CASE WHEN r < 0.33 THEN 'finished' ELSE 'no_contact' END,
           CASE WHEN r < 0.33 THEN 1 + floor(random() * 6)::int ELSE 0 END,
           at, at + interval '2 hours'
    FROM (
        SELECT g, random() AS r,
               (CAST(:users AS bigint[]))[1 + floor(random() * CAST(:n_users AS int))::int] AS u,
               1 + floor(random() * 10)::int AS an,
               CAST(:now AS timestamptz)
                   - make_interval(secs => 3600 + random() * (CAST(:days AS int) * 86400 - 7200))
                   AS at
        FROM generate_series(1, CAST(:n AS int)) g
    ) s
    JOIN (SELECT id, queue, row_number() OVER (ORDER BY id)::int AS n FROM agents
          WHERE email LIKE 'history-%' AND is_ai) a ON a.n = s.an
    """
)
_SMS_CONVERSIONS = text(
    """
    INSERT INTO conversions (event_id, subject_key, user_id, kind, occurred_at, contact_kind,
                             contact_ref, contact_at, agent_id)
    SELECT 'bench-sms:' || id, 'bench-sms:' || id, user_id, 'signed',
           started_at + interval '1 hour', 'sms', 'bench-' || id,
           started_at + interval '10 minutes', agent_id
    FROM ai_conversations WHERE channel = 'sms' AND turns > 0 AND random() < 0.25
    """
)
_COUNT = text("SELECT count(*) FROM calls WHERE started_at >= :start AND started_at < :end")


@dataclass
class Scale:
    factor: int
    users: int
    rows: dict[str, int] = field(default_factory=dict)
    setup_seconds: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    claimants: int = 0
    segments: int = 0
    times: dict[str, list[float]] = field(default_factory=dict)
    workflow_wall: float | None = None
    workflow_seconds: float | None = None
    loads: list[PhaseLoad] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])


async def timed(times: list[float], work: Callable[[], Awaitable[Any]]) -> Any:
    began = time.perf_counter()
    result = await work()
    times.append(time.perf_counter() - began)
    return result


async def write_data(
    dbs: Databases, scale: Scale, calls: int, days: int, sms_share: float
) -> datetime:
    began = time.perf_counter()
    seeded = await seed(dbs, scale.users)
    scale.setup_seconds["seed"] = time.perf_counter() - began
    async with dbs.replica.connect() as conn:
        users = [int(u) for (u,) in await conn.execute(text("SELECT id FROM users"))]
    say(f"writing {calls:,} calls of history over {days} days")
    history = await write_history(dbs.dialler, users, seeded.now, calls, days, only=HISTORY_STEPS)
    scale.setup_seconds["history"] = history.seconds
    began = time.perf_counter()
    async with dbs.dialler.begin() as conn:
        await conn.execute(text("SELECT setseed(0.14)"))
        await conn.execute(
            _SMS,
            {"users": users, "n_users": len(users), "now": seeded.now, "days": days,
             "n": int(calls * sms_share)},
        )  # fmt: skip
        await conn.execute(_SMS_CONVERSIONS)
    async with dbs.dialler.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("ai_conversations", "conversions"):
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
        for table in ("calls", "conversions", "ai_conversations"):
            scale.rows[table] = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
    scale.rows.update(
        {f"replica {k}": v for k, v in seeded.rows.items() if k in ("users", "claims")}
    )
    scale.setup_seconds["sms"] = time.perf_counter() - began
    return seeded.now


PART_CALLS = "part: calls counted (call_log.attempt_counts)"
PART_TEXTS = "part: SMS conversations counted (ai_conversations.sms_attempt_counts)"
PART_REPLICA = "part: claimants' attributes (ReplicaReader.claimant_attributes)"
PART_FOLD = "part: fold by region, lender, age band (segment_counts)"
PART_LEARN = "part: rates, intervals, shrinkage (learn_rates)"
PART_SAVE = "part: save the version (learned_rates.save_version)"
JOB = "job: LearningActivities.run_now"
FIRST = "job, first run after the history was written"
BASELINE = "baseline: count(*) of the window's calls"
BREAKDOWN = "context: analytics call breakdown (call_log.call_breakdown)"


async def time_parts(dbs: Databases, scale: Scale, now: datetime, repeats: int) -> None:
    """The job's parts alone, as `LearningActivities.gather` runs them."""
    request = gather_request(LearnRatesInput(), now)
    start, end = request.window_start, request.window_end
    reader = ReplicaReader(dbs.replica)
    times = scale.times
    for name in (PART_CALLS, PART_TEXTS, PART_REPLICA, PART_FOLD, PART_LEARN, PART_SAVE):
        times.setdefault(name, [])
    for _ in range(repeats):
        async with dbs.dialler.begin() as conn:
            await for_reports(conn)
            calls = await timed(times[PART_CALLS], lambda: call_log.attempt_counts(
                conn, start, end, conversions.converted_calls(start)))  # fmt: skip
            texts = await timed(times[PART_TEXTS], lambda: ai_conversations.sms_attempt_counts(
                conn, start, end, conversions.converted_texts(start)))  # fmt: skip
        users = sorted(set(calls.by_user) | set(texts.by_user))
        attributes = await timed(times[PART_REPLICA], partial(reader.claimant_attributes, users))
        began = time.perf_counter()
        on = end.astimezone(ZoneInfo(UK)).date()
        gathered = segment_counts(AttemptSource(start, end, calls, texts, attributes, on, UK))
        times[PART_FOLD].append(time.perf_counter() - began)
        began = time.perf_counter()
        learned = learn_rates(RateInput(gathered.overall, gathered.counts))
        times[PART_LEARN].append(time.perf_counter() - began)
        saving = save_request(gathered, learned, 0.0)
        await timed(times[PART_SAVE], partial(_save, dbs, saving))


async def _save(dbs: Databases, saving: SaveRates) -> int:
    async with dbs.dialler.begin() as conn:
        return await learned_rates.save_version(
            conn, window_start=saving.window_start, window_end=saving.window_end,
            attempts=saving.attempts, reached=saving.reached, conversions=saving.conversions,
            seconds=0.0, rates=saving.rates,
        )  # fmt: skip


async def time_scale(dbs: Databases, scale: Scale, now: datetime, repeats: int) -> None:
    activities = LearningActivities(dbs.dialler, dbs.replica)
    window = gather_request(LearnRatesInput(), now)
    start, end = window.window_start, window.window_end

    async def count() -> int:
        async with dbs.dialler.connect() as conn:
            return int(await conn.scalar(_COUNT, {"start": start, "end": end}) or 0)

    async def breakdown() -> Any:
        async with dbs.dialler.connect() as conn:
            await for_reports(conn)
            return await call_log.call_breakdown(conn, start, end, UK)

    def job_at(at: datetime) -> Callable[[], Awaitable[LearnRatesResult]]:
        return lambda: activities.run_now(LearnRatesInput(), at)

    # the first run after the history was written: what a night's run meets
    result = await timed(scale.times.setdefault(FIRST, []), job_at(now))
    scale.attempts, scale.claimants = result.attempts, result.claimants
    scale.segments = result.segments
    say(f"  first run: {scale.times[FIRST][0]:.1f}s ({result.attempts:,} attempts)")
    async with Phase(f"baseline count(*), scale {scale.factor}") as phase:
        for _ in range(repeats):
            await timed(scale.times.setdefault(BASELINE, []), count)
    scale.loads.append(phase.load)
    async with Phase(f"call breakdown, scale {scale.factor}") as phase:
        for _ in range(repeats):
            await timed(scale.times.setdefault(BREAKDOWN, []), breakdown)
    scale.loads.append(phase.load)
    async with Phase(f"the job, scale {scale.factor}") as phase:
        for n in range(repeats):
            # each run a window of its own, so each saves a version as a night's run does
            await timed(scale.times.setdefault(JOB, []), job_at(now + timedelta(seconds=n + 1)))
    scale.loads.append(phase.load)
    say(f"  job: median {scale.median(JOB):.1f}s; count(*) {ms(scale.median(BASELINE))}")
    async with Phase(f"the parts alone, scale {scale.factor}") as phase:
        await time_parts(dbs, scale, now, repeats)
    scale.loads.append(phase.load)


async def time_workflow(dbs: Databases, scale: Scale, now: datetime, address: str) -> None:
    client = await connect_client(address)
    task_queue = f"bench-learn-{uuid.uuid4().hex[:8]}"
    activities = LearningActivities(dbs.dialler, dbs.replica)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[LearnRatesWorkflow],
        activities=[activities.gather, activities.learn, activities.save],
    )
    async with worker, Phase(f"the workflow, scale {scale.factor}") as phase:
        began = time.perf_counter()
        result = await client.execute_workflow(
            LearnRatesWorkflow.run,
            LearnRatesInput(now=now + timedelta(minutes=5)),
            id=f"learn-rates-bench-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        scale.workflow_wall = time.perf_counter() - began
    scale.loads.append(phase.load)
    scale.workflow_seconds = result.seconds
    say(f"  workflow: {scale.workflow_wall:.1f}s start to result ({result.seconds:.1f}s by its "
        "clock)")  # fmt: skip


def _each(scales: list[Scale], cell: Callable[[Scale], str]) -> list[str]:
    return [cell(s) for s in scales]


def report(args: Any, scales: list[Scale], machine: dict[str, str]) -> RunRecord:
    names = list(dict.fromkeys(n for s in scales for n in s.times))
    headers = [f"scale {s.factor} ({s.users:,} claimants)" for s in scales]

    def median_of(name: str) -> Callable[[Scale], str]:
        return lambda s: ms(s.median(name)) if name in s.times else "-"

    def rows_of(name: str) -> Callable[[Scale], str]:
        return lambda s: f"{s.rows.get(name, 0):,}"

    timing_rows = [[name, *_each(scales, median_of(name))] for name in names]
    timing_rows.append([
        "workflow through Temporal, start to result (once)",
        *_each(scales, lambda s: "-" if s.workflow_wall is None else ms(s.workflow_wall)),
    ])  # fmt: skip
    data_rows = [
        [name, *_each(scales, rows_of(name))]
        for name in dict.fromkeys(k for s in scales for k in s.rows)
    ]
    steps = ("seed", "history", "sms")
    data_rows += [
        ["attempts in the window (calls + SMS)", *_each(scales, lambda s: f"{s.attempts:,}")],
        ["claimants attempted", *_each(scales, lambda s: f"{s.claimants:,}")],
        ["segments learned", *_each(scales, lambda s: str(s.segments))],
        ["set-up seconds: seed / history / SMS", *_each(
            scales, lambda s: " / ".join(f"{s.setup_seconds.get(k, 0):.0f}" for k in steps))],
    ]  # fmt: skip
    tables = [
        Table("Median of the timed runs (the job, then each part alone)", ["timed", *headers],
              timing_rows),
        Table("Data", ["", *headers], data_rows),
        load_table([p for s in scales for p in s.loads]),
    ]  # fmt: skip
    figures: list[Figure] = []
    for s in scales:
        label = "seed scale" if s.factor == 1 else f"{s.factor}x seed scale"
        calls = f"{s.rows.get('calls', 0) / 1e6:g}M calls"
        job = s.median(JOB)
        figures += [
            Figure(f"learned rates job, {label} ({s.users:,} claimants, {calls}): median",
                   ms(job)),
            Figure(f"learned rates job ÷ count(*) of the window's calls, {label}",
                   f"{job / s.median(BASELINE):.1f}x"),
        ]  # fmt: skip
    if len(scales) > 1:
        small, large = scales[0], scales[-1]
        size = large.factor / small.factor
        growth = large.median(JOB) / small.median(JOB)
        figures.append(Figure(f"learned rates job growth, {size:g}x the data", f"{growth:.1f}x",
                              f"≤ {size:g}x (linear)", verdict(growth <= size)))  # fmt: skip
    notes = [
        f"Each scale on fresh scratch databases: {args.users:,} x scale demo claimants, "
        f"{args.calls:,} x scale calls over {args.days} days (bench/supervisor_history.py, "
        f"steps {', '.join(HISTORY_STEPS)}), AI SMS conversations {args.sms_share:.0%} of the "
        "calls; vacuumed and analysed.",
        f"Timed in this process, {args.repeats} runs each after the first (its own row): the "
        "job is the workflow's three activities one after the other (`run_now`), each run with "
        "a window of its own so each saves a version; the parts are timed alone in the same "
        "way. The workflow row is one run through a Temporal dev server and a worker in this "
        "process.",
        "The machine's 2 cores are shared with other engineers' test runs: the load table says "
        "what else ran; compare the job with the count(*) of the same run.",
    ]
    return RunRecord("learn_rates", "Learned rates: the nightly job", stamp(), code_version(),
                     machine, params(args), figures, notes, tables)  # fmt: skip


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument("--users", type=int, default=50_000, help="claimants at scale 1")
    cli.add_argument("--calls", type=int, default=1_000_000, help="calls of history at scale 1")
    cli.add_argument("--days", type=int, default=180, help="days the history spans")
    cli.add_argument("--scales", default="1,10", help="the scales, comma-separated")
    cli.add_argument("--repeats", type=int, default=3, help="timed runs of each")
    cli.add_argument("--sms-share", type=float, default=0.04, help="AI SMS conversations per call")
    cli.add_argument("--no-workflow", action="store_true", help="skip the run through Temporal")
    args = cli.parse_args()
    factors = [int(f) for f in args.scales.split(",") if f.strip()]
    scales: list[Scale] = []
    machine: dict[str, str] = {}
    async with dev_server() as server:
        for factor in factors:
            scale = Scale(factor, args.users * factor)
            say(f"scale {factor}: {scale.users:,} claimants, {args.calls * factor:,} calls")
            async with scratch_databases(f"lr{factor}") as dbs:
                machine = machine or await machine_info(dbs)
                now = await write_data(dbs, scale, args.calls * factor, args.days, args.sms_share)
                now += timedelta(minutes=1)
                await time_scale(dbs, scale, now, args.repeats)
                if not args.no_workflow:
                    await time_workflow(dbs, scale, now, server.address)
            scales.append(scale)
    finish(report(args, scales, machine), no_record=args.no_record)
    return 0


if __name__ == "__main__":
    run(main)
