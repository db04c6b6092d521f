"""`dialler queue`: look at and refresh the call queues."""

from __future__ import annotations

import asyncio
import functools

import click

from adapters.call_log import daily_abandon_rate
from adapters.databases import dialler_engine
from adapters.task_store import QueueCounts, queue_counts
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from domain.abandoned_calls import AbandonRate
from domain.queue_view import waiting_by_reason
from schemas.reconcile import ReconcileResult
from workflows.reconcile_client import ReconcileClient, ReconcileFailed, ReconcileUnavailable


async def _report(settings: Settings) -> tuple[dict[str, QueueCounts], AbandonRate]:
    engine = dialler_engine(settings, pool_size=1)
    try:
        return await queue_counts(engine), await daily_abandon_rate(engine)
    finally:
        await engine.dispose()


async def _refresh(settings: Settings) -> ReconcileResult:
    connect = functools.partial(connect_temporal, settings)
    return await ReconcileClient(connect, settings.temporal_task_queue).run_now()


@click.group()
def queue() -> None:
    """The call queues (unsigned, outstanding, callback)."""


@queue.command()
def refresh() -> None:
    """Run the reconcile workflow now (needs a running outreach worker) and print the
    claimants per queue according to the seed's queue queries."""
    settings = settings_or_exit()
    try:
        result = asyncio.run(_refresh(settings))
    except (ReconcileFailed, ReconcileUnavailable) as error:
        click.echo(f"Error: {error}", err=True)
        exit_after_temporal(1)
    click.echo("claimants per queue (seed queries):")
    for name, count in result.counts.items():
        click.echo(f"  {name:<12} {count:>8,}")
    click.echo(f"workflows refreshed: {result.refreshed:,}; tasks withdrawn: {result.withdrawn:,}")
    exit_after_temporal()


@queue.command()
def depth() -> None:
    """Tasks in each queue right now: callable now, waiting (and why), claimed; and the
    abandoned-call rate over the last 24 hours (Ofcom: at most 3 %)."""
    counts, rate = asyncio.run(_report(settings_or_exit()))
    for name in ("callback", "unsigned", "outstanding"):
        found = counts.get(name, QueueCounts())
        waiting = sum(n for _, n in found.waiting)
        click.echo(
            f"  {name:<12} callable now {found.callable_now:>8,}   waiting {waiting:>8,}"
            f"   claimed {found.claimed:>6,}"
        )
        for reason, n in waiting_by_reason(found.waiting):
            click.echo(f"      waiting: {reason:<48} {n:>8,}")
    click.echo(rate.describe())
