"""The supervisors' calls list and audit viewer at a million calls: each page's service time.

    .venv/bin/python -m bench.review_pages [--calls 1000000] [--entries 2000000]
                                           [--without-0011] [--keep]

On a scratch PostgreSQL database migrated to head: `--calls` synthetic calls (50 agents, 10
of them AI, one call every 8 seconds back from now, five outcomes and none) and `--entries`
audit entries (five actions, one every 4 seconds). Then the median of 5 of each page
(`services.call_review`, `services.audit_review`), the list of actions, and the CSV export
of one actor and of the whole log (rows/s and the process's peak RSS). `--without-0011`
drops migration 0011's indexes first, for the figures before it. The database is dropped
at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.audit_log import AuditSearch
from adapters.provisioning import drop_postgres_database, ensure_postgres_database, migrate
from domain.attribution import UK
from domain.review_filters import parse_audit_filters, parse_call_filters
from services.audit_review import AuditReview
from services.call_review import CallReview

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1:5432")
URL = f"postgresql+asyncpg://postgres@{PG_HOST}/bench_review_pages"
INDEXES_0011 = ("ix_calls_started_at_id", "ix_audit_log_at_id", "ix_audit_log_action_at")

FILL = (
    """INSERT INTO agents (email, display_name, role, queue, is_ai)
       SELECT 'bench' || g || '@bench.test', 'Agent ' || g, 'agent', 'unsigned', g > 40
       FROM generate_series(1, 50) g""",
    """INSERT INTO calls (user_id, agent_id, queue, provider, to_number, status, started_at,
                          duration_seconds, disposition, abandoned)
       SELECT (random() * 200000)::bigint + 1, 1 + g % 50,
              (ARRAY['unsigned', 'outstanding', 'callback'])[1 + g % 3], 'simulated',
              '+447700900123', 'completed', now() - g * interval '8 seconds', 60,
              (ARRAY['no_answer', 'busy', 'voicemail_left', 'promised_to_sign', NULL])[1 + g % 5],
              g % 97 = 0
       FROM generate_series(1, :calls) g""",
    """INSERT INTO audit_log (at, actor_type, actor_id, action, subject_type, subject_id,
                              detail, ip_address)
       SELECT now() - g * interval '4 seconds', 'agent', (1 + g % 50)::text,
              (ARRAY['viewed_personal_data', 'played_recording', 'outcome_recorded',
                     'magic_link_sent', 'consent_confirmed'])[1 + g % 5],
              CASE WHEN g % 5 = 1 THEN 'call' ELSE 'user' END,
              CASE WHEN g % 5 = 1 THEN (g % :calls + 1)::text
                   ELSE ((random() * 200000)::bigint + 1)::text END,
              jsonb_build_object('route', 'console.panel'), '10.0.0.1'
       FROM generate_series(1, :entries) g""",
)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def fill(engine: AsyncEngine, calls: int, entries: int, without_0011: bool) -> None:
    async with engine.begin() as conn:
        for statement in FILL:
            await conn.execute(text(statement), {"calls": calls, "entries": entries})
        if without_0011:
            for name in INDEXES_0011:
                await conn.execute(text(f"DROP INDEX {name}"))
    autocommit = await (await engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        await autocommit.execute(text("VACUUM ANALYZE calls"))
        await autocommit.execute(text("VACUUM ANALYZE audit_log"))
    finally:
        await autocommit.close()


async def timed(label: str, run: Callable[[], Awaitable[Any]], times: int = 5) -> Any:
    took, result = [], None
    for _ in range(times):
        start = time.perf_counter()
        result = await run()
        took.append((time.perf_counter() - start) * 1000)
    print(f"{label:55s} median {statistics.median(took):8.1f} ms   max {max(took):8.1f} ms")
    return result


async def measure(engine: AsyncEngine) -> None:
    calls, audit = CallReview(engine, engine, UK), AuditReview(engine, UK)
    agents = await calls.agents()

    async def call_page(query: dict[str, str]) -> Any:
        filters, page = parse_call_filters(query)
        return await calls.page(filters, page, agents)

    first = await timed("calls: no filter, newest page", lambda: call_page({}))
    older = {"before": first.older.token()}
    await timed("calls: no filter, the next page", lambda: call_page(older))
    await timed("calls: one agent", lambda: call_page({"agent": str(agents[6].id)}))
    await timed("calls: AI agents only", lambda: call_page({"ai": "1"}))
    await timed("calls: one outcome", lambda: call_page({"outcome": "promised_to_sign"}))
    await timed("calls: an outcome never recorded", lambda: call_page({"outcome": "deceased"}))
    actions = await timed("audit: the list of actions", audit.actions)

    async def audit_page(query: dict[str, str]) -> Any:
        filters, page = parse_audit_filters(query)
        return await audit.page(await audit.search(filters, agents, actions), page, agents)

    await timed("audit: no filter, newest page", lambda: audit_page({}))
    await timed("audit: one actor", lambda: audit_page({"actor": str(agents[6].id)}))
    await timed("audit: one claimant", lambda: audit_page({"claimant": "1234"}))
    await timed("audit: one action", lambda: audit_page({"action": "played_recording"}))
    for label, search in (
        ("one actor", AuditSearch(actor=("agent", str(agents[6].id)))),
        ("the whole log", AuditSearch()),
    ):
        before, start, lines = peak_rss_mib(), time.perf_counter(), 0
        async for chunk in audit.csv_chunks(search, agents):
            lines += chunk.count("\n")
        took = time.perf_counter() - start
        print(f"csv, {label}: {lines - 1} rows in {took:.1f} s ({(lines - 1) / took:,.0f}/s); "
              f"peak RSS {before:.0f} -> {peak_rss_mib():.0f} MiB")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--without-0011", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    await drop_postgres_database(URL)
    await ensure_postgres_database(URL)
    await migrate(URL)
    engine = create_async_engine(URL)
    try:
        await fill(engine, args.calls, args.entries, args.without_0011)
        await measure(engine)
    finally:
        await engine.dispose()
        if not args.keep:
            await drop_postgres_database(URL)


if __name__ == "__main__":
    asyncio.run(main())
