"""`dialler seed`: fill the local claims replica with realistic UK demo data.

Local development only: there is no main app to own the replica, so this command creates
its database and schema, loads claimants, claims and requirements, adds a few pending
callbacks to the dialler DB, and prints the sizes of the seed's three queues.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import queue_queries
from adapters.databases import dialler_engine, redacted, replica_engine
from adapters.provisioning import (
    create_replica_schema,
    ensure_mysql_database,
    ensure_postgres_database,
    migrate,
)
from cli.common import settings_or_exit
from config.settings import Environment, Settings
from demo.data import generate
from demo.load import LoadReport, load_demo_data, replica_is_empty

# Small enough to load in a few seconds on a laptop; the seed's scale is --users 50000.
DEFAULT_USERS = 5_000


@click.command("seed")
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=DEFAULT_USERS,
    show_default=True,
    help="Claimants to generate (about 3 claims and 4 requirements each). Seed scale is 50000.",
)
@click.option(
    "--seed",
    "seed_value",
    type=int,
    default=2026,
    show_default=True,
    help="Random seed: the same --users and --seed give the same claimants.",
)
@click.option(
    "--replace/--no-replace",
    default=False,
    show_default=True,
    help="Empty the replica (and delete earlier demo callbacks) first. "
    "Without it, a replica that already holds data is left untouched.",
)
def seed(users: int, seed_value: int, replace: bool) -> None:
    """Load demo claimants into the local replica and print the queue sizes."""
    settings = settings_or_exit()
    if settings.environment is Environment.PRODUCTION:
        # In production the replica belongs to the main app: never write to it.
        raise click.ClickException("refusing to load demo data with ENVIRONMENT=production")
    asyncio.run(_seed(settings, users=users, seed_value=seed_value, replace=replace))


async def _seed(settings: Settings, *, users: int, seed_value: int, replace: bool) -> None:
    if await ensure_mysql_database(settings.async_replica_url):
        click.echo(f"created database {redacted(settings.async_replica_url)}")
    # Demo callbacks go to the dialler DB, so it must exist and be migrated too.
    await ensure_postgres_database(settings.async_database_url)
    await migrate(settings.async_database_url)
    replica, dialler = replica_engine(settings, pool_size=2), dialler_engine(settings, pool_size=2)
    try:
        await create_replica_schema(replica)
        if not replace and not await replica_is_empty(replica):
            raise click.ClickException(
                f"the replica {redacted(settings.async_replica_url)} already holds data; "
                "run `dialler seed --replace` to empty it and load demo data"
            )
        now = datetime.now(UTC)
        started = time.perf_counter()
        data = generate(users, seed_value, now=now)
        generated = time.perf_counter() - started
        report = await load_demo_data(replica, dialler, data, replace=replace)
        _print_report(report, generated)
        await _print_queues(replica, dialler, now)
    finally:
        await replica.dispose()
        await dialler.dispose()


def _print_report(report: LoadReport, generated_seconds: float) -> None:
    for table, count in report.rows.items():
        click.echo(f"  {table:<20} {count:>9,}")
    click.echo(f"generated in {generated_seconds:.1f}s, loaded in {report.seconds:.1f}s")


async def _print_queues(replica: AsyncEngine, dialler: AsyncEngine, now: datetime) -> None:
    active = await queue_queries.active_claimant_ids(replica)
    queues = {
        "unsigned": await queue_queries.unsigned_user_ids(replica),
        "outstanding": await queue_queries.outstanding_user_ids(replica),
        "callbacks due": await queue_queries.due_callback_user_ids(dialler, replica, now),
    }
    click.echo(f"active claimants: {len(active):,} (the seed's queue queries:)")
    for name, ids in queues.items():
        share = f" ({len(ids) / len(active):.1%} of active)" if active else ""
        click.echo(f"  {name:<20} {len(ids):>9,}{share}")
