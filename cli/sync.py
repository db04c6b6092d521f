"""`dialler sync`: the change-data-capture worker and its state.

dialler sync start                         run the CDC worker (CDC_SOURCE: binlog or sqs)
dialler sync status                        source, position, lag, events/s, dead letters
dialler sync dead-letters [--replay ID]... list dead letters, or replay some (or all)
dialler sync test                          toggle a demo claimant's signature in the local
                                           replica and time how long the queue takes
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import task_store
from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_metrics import read_status
from adapters.cdc_store import CdcStore
from adapters.context_cache import ContextCache
from adapters.databases import dialler_engine, replica_engine
from adapters.redis_client import connect_redis
from adapters.replica_reader import LocalReplicaWriter, ReplicaReader
from adapters.rules_file import rules_source
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import CdcSource, Environment, Settings
from schemas.cdc import CdcStatus, DeadLetter, ReplayOutcome
from schemas.enums import Queue
from services.dead_letters import replay
from workers.cdc import attribution_in_force, run_cdc_worker, temporal_deliver

MARKER_SIGNATURE_BASE = 900_000_000  # signature file ids no real signature has


@click.group()
def sync() -> None:
    """Change data capture: the main app's row changes into the claimants' workflows."""


@sync.command()
def start() -> None:
    """Run the CDC worker with the configured source until Ctrl-C."""
    settings = settings_or_exit()
    if settings.cdc_source is CdcSource.NONE:
        raise click.ClickException("CDC_SOURCE is none: set it to binlog or sqs")
    try:
        asyncio.run(run_cdc_worker(settings))
    except RuntimeError as error:  # a source that cannot be followed (BinlogConfigError, ...)
        click.echo(f"error: {error}", err=True)
        exit_after_temporal(1)
    exit_after_temporal()


# --- status ----------------------------------------------------------------------------------


async def _status(settings: Settings) -> CdcStatus:
    dialler = dialler_engine(settings, pool_size=1)
    redis = connect_redis(settings.redis_url)
    try:
        return await read_status(redis, CdcStore(dialler), settings.cdc_source.value)
    finally:
        await redis.aclose()
        await dialler.dispose()


@sync.command()
def status() -> None:
    """Source, position, lag, events per second, errors and pending dead letters."""
    settings = settings_or_exit()
    if settings.cdc_source is CdcSource.NONE:
        click.echo("source: none (CDC is off; the reconcile and catch-up schedules keep up)")
        return
    report = asyncio.run(_status(settings))
    lag = "unknown" if report.lag_seconds is None else f"{report.lag_seconds:.3f} s"
    heartbeat = (
        report.heartbeat_at.isoformat(timespec="seconds") if report.heartbeat_at else "never"
    )
    lines = [
        f"source:        {report.source}",
        f"worker:        {'running' if report.running else 'not running'} (heartbeat {heartbeat})",
        f"position:      {report.position or 'none yet'}",
        f"lag:           {lag}",
        f"events/s:      {report.events_per_second:.2f}",
        f"events total:  {report.events_applied_total:,}",
        f"errors:        {report.errors}",
        f"dead letters:  {report.dead_letters_pending} pending",
    ]
    if report.last_error:
        lines.append(f"last error:    {report.last_error}")
    click.echo("\n".join(lines))


# --- dead letters -----------------------------------------------------------------------------


async def _list(settings: Settings, include_replayed: bool) -> list[DeadLetter]:
    dialler = dialler_engine(settings, pool_size=1)
    try:
        return await CdcStore(dialler).dead_letters(pending_only=not include_replayed)
    finally:
        await dialler.dispose()


async def _replay(settings: Settings, ids: list[int] | None) -> list[ReplayOutcome]:
    client = await connect_temporal(settings)
    dialler, replica_db = (
        dialler_engine(settings, pool_size=2),
        replica_engine(settings, pool_size=2),
    )
    rules = rules_source(dialler, settings.rules_file)
    redis = connect_redis(settings.redis_url, decode_responses=False)
    try:
        store = CdcStore(dialler)
        letters = await store.dead_letters(pending_only=ids is None, ids=ids, limit=100_000)
        return await replay(
            letters,
            store=store,
            lookups=ReplicaLookups(replica_db),
            deliver=temporal_deliver(client, settings.temporal_task_queue),
            cache=ContextCache(redis, replica_db, settings.context_cache_ttl_seconds),
            attribute=attribution_in_force(dialler, rules),
        )
    finally:
        await redis.aclose()
        await dialler.dispose()
        await replica_db.dispose()


@sync.command("dead-letters")
@click.option("--replay", "replay_ids", type=int, multiple=True, help="Replay this dead letter.")
@click.option("--replay-all", is_flag=True, help="Replay every pending dead letter.")
@click.option("--all", "include_replayed", is_flag=True, help="List replayed ones too.")
def dead_letters(replay_ids: tuple[int, ...], replay_all: bool, include_replayed: bool) -> None:
    """List the row changes the CDC worker could not apply, or replay them: each is parsed
    again and its claimants are refreshed (needs a running outreach worker)."""
    settings = settings_or_exit()
    if replay_ids or replay_all:
        outcomes = asyncio.run(_replay(settings, list(replay_ids) if replay_ids else None))
        failed = 0
        for outcome in outcomes:
            if outcome.replayed:
                click.echo(
                    f"{outcome.dead_letter_id}: replayed, {outcome.signalled} claimant(s) refreshed"
                )
            else:
                failed += 1
                click.echo(f"{outcome.dead_letter_id}: still failing: {outcome.reason}")
        missing = set(replay_ids) - {o.dead_letter_id for o in outcomes}
        for letter_id in sorted(missing):
            failed += 1
            click.echo(f"{letter_id}: no such dead letter")
        click.echo(
            f"replayed {len(outcomes) - failed + len(missing)} of {len(outcomes) + len(missing)}"
        )
        exit_after_temporal(1 if failed else 0)
    letters = asyncio.run(_list(settings, include_replayed))
    if not letters:
        click.echo("no dead letters" if include_replayed else "no pending dead letters")
        return
    for letter in letters:
        state = f"replayed {letter.replayed_at:%Y-%m-%d %H:%M}" if letter.replayed_at else "pending"
        click.echo(
            f"{letter.id:>6}  {letter.received_at:%Y-%m-%d %H:%M:%S}  {letter.source:<6}  "
            f"{state}  tries {letter.replay_count}  {len(letter.raw_payload):,} bytes\n"
            f"        {letter.reason}"
        )


# --- test ------------------------------------------------------------------------------


@dataclass
class _Probe:
    user_id: int
    queue: str
    status: str
    signature: int | None  # current_signature_file_id as it was


async def _pick(dialler: AsyncEngine, replica_db: AsyncEngine) -> _Probe | None:
    """A claimant with a ready task in the unsigned or outstanding queue."""
    rows = await task_store.lowest_ready(dialler, [Queue.UNSIGNED, Queue.OUTSTANDING], limit=20)
    if not rows:
        return None
    signatures = await ReplicaReader(replica_db).signature_files([row.user_id for row in rows])
    for row in rows:
        if row.user_id in signatures:
            signature = signatures[row.user_id]
            return _Probe(row.user_id, row.queue, row.status, signature)
    return None


async def _task(dialler: AsyncEngine, user_id: int) -> tuple[str, str]:
    found = await task_store.queue_and_status(dialler, user_id)
    if found is None:
        raise click.ClickException(f"claimant {user_id} has no task any more")
    return found


async def _toggle_and_time(
    dialler: AsyncEngine,
    replica_db: AsyncEngine,
    user_id: int,
    signature: int | None,
    before: tuple[str, str],
    within: float,
) -> tuple[float | None, tuple[str, str]]:
    await LocalReplicaWriter(replica_db).set_signature_file(user_id, signature)
    written = time.perf_counter()
    deadline = written + within
    now_state = before
    while time.perf_counter() < deadline:
        now_state = await _task(dialler, user_id)
        if now_state != before:
            return time.perf_counter() - written, now_state
        await asyncio.sleep(0.02)
    return None, now_state


async def _sync_test(settings: Settings, within: float) -> int:
    dialler, replica_db = (
        dialler_engine(settings, pool_size=2),
        replica_engine(settings, pool_size=2),
    )
    try:
        probe = await _pick(dialler, replica_db)
        if probe is None:
            click.echo("no ready task in the unsigned or outstanding queue to probe with")
            return 1
        was = (probe.queue, probe.status)
        marker = None if probe.signature is not None else MARKER_SIGNATURE_BASE + probe.user_id
        restore = probe.signature
        what = "signature added" if marker is not None else "signature removed"
        click.echo(f"marker: claimant {probe.user_id} ({probe.queue}): {what} in the replica")
        took, state = await _toggle_and_time(
            dialler, replica_db, probe.user_id, marker, was, within
        )
        if took is None:
            click.echo(
                f"  the queue did not change within {within:g} s: is `dialler sync start` running?"
            )
            await _toggle_and_time(dialler, replica_db, probe.user_id, restore, was, 0)
            return 1
        click.echo(f"  queue reflected it in {took:.3f} s: {'/'.join(was)} -> {'/'.join(state)}")
        back, restored = await _toggle_and_time(
            dialler, replica_db, probe.user_id, restore, state, within
        )
        if back is None:
            click.echo(f"  restored in the replica; the queue did not follow within {within:g} s")
            return 1
        click.echo(f"  restored in {back:.3f} s: {'/'.join(state)} -> {'/'.join(restored)}")
        return 0
    finally:
        await dialler.dispose()
        await replica_db.dispose()


@sync.command("test")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the queue.")
def sync_test(timeout: float) -> None:
    """Write a marker change into the local replica (toggle a demo claimant's signature, then
    put it back) and report how long each took to reach the queue (`call_tasks`)."""
    settings = settings_or_exit()
    if settings.environment is Environment.PRODUCTION:
        raise click.ClickException("sync test writes to the replica: never in production")
    raise SystemExit(asyncio.run(_sync_test(settings, within=timeout)))
