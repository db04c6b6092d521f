"""The outreach worker a benchmark runs as its own process (`python -m bench.harness.worker`),
configured through the environment like `dialler worker outreach` (see `stack.stack_env`).

It is the product's worker (`build_worker`, `outreach_activities`, the same pool sizes and
Redis) with two differences a benchmark needs: calling windows open all day (so every
published task is claimable now) and no schedules (a reconcile would bring every seeded
claimant under a workflow mid-run). Temporal core's metrics are served on $BENCH_WORKER_METRICS
for the benchmark to scrape.
"""

from __future__ import annotations

import asyncio
import os
import signal

from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from adapters.databases import dialler_engine, replica_engine
from adapters.temporal import DATA_CONVERTER
from bench.harness.cli import run
from bench.harness.seed import open_rules
from config.logging import configure_logging
from config.settings import load_settings
from workers.outreach import build_worker, outreach_activities

METRICS_ENV = "BENCH_WORKER_METRICS"


async def main() -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    metrics = PrometheusConfig(bind_address=os.environ[METRICS_ENV])
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        runtime=Runtime(telemetry=TelemetryConfig(metrics=metrics)),
        identity=f"bench-worker-{os.getpid()}",
    )
    dialler_db = dialler_engine(settings, pool_size=20)
    replica = replica_engine(settings, pool_size=10)
    redis = Redis.from_url(settings.redis_url)
    activities = outreach_activities(settings, client, dialler_db, replica, open_rules(), redis)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with build_worker(client, settings.temporal_task_queue, activities):
        print("bench worker polling", settings.temporal_task_queue, flush=True)
        await stop.wait()
    await dialler_db.dispose()
    await replica.dispose()
    await redis.aclose()
    return 0


if __name__ == "__main__":
    run(main)
