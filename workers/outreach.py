"""The outreach worker: runs OutreachWorkflow, ReconcileWorkflow and the batch workflows
behind CDC (catch-up, cache warming, integrity check, clean-up) with their activities."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import py_compile
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.learning import LearningActivities
from activities.maintenance import MaintenanceActivities
from activities.messaging import MessagingActivities
from activities.outreach import OutreachActivities
from activities.reconcile import ReconcileActivities
from activities.rules_rollout import RulesRolloutActivities
from adapters.ai_presence import ai_presence
from adapters.databases import dialler_engine, replica_engine
from adapters.gc_stats import GcStats
from adapters.live import LiveBus
from adapters.messaging import email_sender, sms_sender
from adapters.redis_client import connect_redis
from adapters.rules_file import rules_source
from adapters.rules_source import RulesSource
from adapters.scoring_splits import SplitSource
from adapters.temporal import connect_temporal
from config.settings import Settings
from domain.rules import DiallerRules
from services.live_updates import FloorPublisher
from workers.floor_events import FloorChanges
from workers.schedules import ensure_schedules
from workflows.learning import LearnRatesWorkflow
from workflows.maintenance import (
    CacheWarmWorkflow,
    CatchUpWorkflow,
    CleanupWorkflow,
    IntegrityCheckWorkflow,
)
from workflows.outreach import OutreachWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.rules_rollout import RulesRolloutWorkflow

log = get_logger(__name__)
WORKFLOWS = [
    OutreachWorkflow,
    ReconcileWorkflow,
    CatchUpWorkflow,
    CacheWarmWorkflow,
    IntegrityCheckWorkflow,
    CleanupWorkflow,
    RulesRolloutWorkflow,
    LearnRatesWorkflow,
]


def outreach_activities(
    settings: Settings,
    client: Client,
    dialler: AsyncEngine,
    replica: AsyncEngine,
    rules: RulesSource | DiallerRules,
    redis: Redis | None = None,
) -> list[Callable[..., Any]]:
    """Every activity the outreach task queue runs, reading the rules in force from `rules`
    (fixed rules stay as given). Without `redis` the cache-warming activity opens a Redis
    client per run."""
    # the live split (issue 14): a share of claimants scored by a candidate rules version
    splits = SplitSource(dialler)
    outreach = OutreachActivities(dialler, replica, rules, ai_presence(settings), splits)
    reconcile = ReconcileActivities(dialler, replica, client, settings.temporal_task_queue, rules)
    maintenance = MaintenanceActivities(
        settings, dialler, replica, client, settings.temporal_task_queue, rules, redis
    )
    rollout = RulesRolloutActivities(dialler, client, settings.temporal_task_queue)
    learning = LearningActivities(dialler, replica)
    messaging = MessagingActivities(
        dialler, sms_sender(settings), email_sender(settings), settings, replica
    )
    return [
        outreach.load_facts,
        outreach.refresh_task,
        outreach.record_outcome,
        outreach.save_callback,
        outreach.complete_callbacks,
        outreach.save_note,
        outreach.suppress,
        outreach.audit,
        reconcile.plan,
        reconcile.refresh,
        reconcile.withdraw,
        messaging.send_sms,
        messaging.create_magic_link,
        maintenance.catch_up_scan,
        maintenance.save_watermark,
        maintenance.warm_cache,
        maintenance.integrity_plan,
        maintenance.cleanup,
        maintenance.expire_recordings,
        rollout.tell_claimants,
        learning.gather,
        learning.learn,
        learning.save,
    ]


DEFAULT_MAX_CACHED_WORKFLOWS = 50_000


def cache_workflow_bytecode() -> list[str]:
    """Writes the bytecode of each workflow's module where it is missing or stale; returns
    the modules written.

    The sandbox imports a workflow's module afresh for every workflow instance it creates.
    Without a bytecode cache (PYTHONDONTWRITEBYTECODE, set on these machines and in many
    container images) that means compiling the source each time: measured at 13 % of the
    worker's CPU while bringing claimants under workflows."""
    written = []
    for workflow_class in WORKFLOWS:
        source = Path(inspect.getfile(workflow_class))
        cached = Path(importlib.util.cache_from_source(str(source)))
        if cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime:
            continue
        try:
            py_compile.compile(str(source), cfile=str(cached), doraise=True)
        except (OSError, py_compile.PyCompileError) as error:  # a read-only install
            log.warning("workflow bytecode not cached", module=str(source), error=str(error))
            continue
        written.append(workflow_class.__module__)
    return written


def build_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    *,
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    cache_workflow_bytecode()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        interceptors=interceptors,
        # Every claimant in a queue has a running workflow. A claim or a change to one that
        # has fallen out of the sticky cache replays its whole history first (tens of ms of
        # CPU), so the cache should hold all of them.
        max_cached_workflows=max_cached_workflows,
        # Bounded by the database pools (20+20 dialler, 10+10 replica connections): more
        # concurrent activities would only queue for a connection and risk their timeouts.
        max_concurrent_activities=40,
        max_concurrent_local_activities=40,
    )


async def _report_gc(stats: GcStats, every: float = 60.0) -> None:
    while True:
        await asyncio.sleep(every)
        log.info("garbage collection", **stats.summary())


async def run_outreach_worker(settings: Settings) -> None:
    client = await connect_temporal(settings)
    dialler, replica = (
        dialler_engine(settings, pool_size=20, pre_ping=False),  # activities retry
        replica_engine(settings, pool_size=10, pre_ping=False),
    )
    rules = rules_source(dialler, settings.rules_file)  # a bad file stops the worker here
    redis = connect_redis(settings.redis_url, decode_responses=False)
    created = await ensure_schedules(
        client, settings.temporal_task_queue, cache_warm_per_queue=settings.cache_warm_per_queue
    )
    if created:
        log.info("schedules created", schedules=created)
    activities = outreach_activities(settings, client, dialler, replica, rules, redis)
    bus = LiveBus(redis)
    floor = FloorPublisher(bus)  # the wallboards hear of tasks written here
    worker = build_worker(
        client,
        settings.temporal_task_queue,
        activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
        interceptors=[FloorChanges(floor, bus)],  # and long-polling agents of ready tasks
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("outreach worker started", task_queue=settings.temporal_task_queue)
    gc_stats = GcStats().install()
    reporter = asyncio.create_task(_report_gc(gc_stats))
    async with rules.listening(redis), worker:
        log.info("rules in force", version=(await rules.in_force()).version)
        await stop.wait()
    reporter.cancel()
    await floor.close()
    log.info("garbage collection", **gc_stats.summary())
    await dialler.dispose()
    await replica.dispose()
    await redis.aclose()
