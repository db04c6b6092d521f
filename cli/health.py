"""`dialler health`: check every dependency from the command line."""

from __future__ import annotations

import asyncio

import click

from adapters.databases import dialler_engine, replica_engine
from adapters.health import DependencyStatus, check_all, check_redis, check_sql, check_temporal
from adapters.redis_client import connect_redis
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings


async def probe_all(settings: Settings) -> list[DependencyStatus]:
    dialler, replica = dialler_engine(settings, pool_size=1), replica_engine(settings, pool_size=1)
    redis = connect_redis(settings.redis_url, decode_responses=False)
    try:
        return await check_all(
            [
                check_sql("postgres", dialler),
                check_sql("replica", replica),
                check_redis(redis),
                check_temporal(lambda: connect_temporal(settings)),
            ]
        )
    finally:
        await dialler.dispose()
        await replica.dispose()
        await redis.aclose()


@click.command()
def health() -> None:
    """Check PostgreSQL, the replica, Redis and Temporal; exit 1 if any is down."""
    results = asyncio.run(probe_all(settings_or_exit()))
    for result in results:
        mark = "ok  " if result.ok else "DOWN"
        click.echo(f"{mark} {result.name:<9} {result.latency_ms:>7.1f} ms  {result.detail}")
    exit_after_temporal(0 if all(result.ok for result in results) else 1)
