"""The claimant context cache is dropped by the changes that touch it; the CDC worker's
metrics reach `/api/health` and `dialler sync status`."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from temporalio.testing import WorkflowEnvironment

from adapters.cdc_metrics import CdcMetrics, metrics_key, publish
from adapters.cdc_store import CdcStore
from adapters.context_cache import STATS_KEY, context_key
from adapters.local_mariadb import RunningMariaDB
from config.settings import CdcSource, Settings
from tests.cdc.conftest import cdc_harness, dialler_cli, running_consumer
from tests.factories import add_claimant, set_user
from tests.workflows.helpers import eventually, task_in
from web import create_app
from workers.cdc import METRICS_EVERY


async def test_changes_drop_the_cached_context_of_the_claimants_they_touch(
    temporal_env: WorkflowEnvironment,
    settings: Settings,
    redis: Redis,
    binlog_server: RunningMariaDB,
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cdc_cache", binlog_server) as ch:
        h = ch.h
        cache = ch.cache()
        source = ch.binlog()
        await source.start()
        async with running_consumer(ch, source, cache=cache) as consumer:
            user_id = await add_claimant(h.replica, signed=False)
            bystander = await add_claimant(h.replica, signed=False)
            await task_in(h, user_id, "unsigned")
            await task_in(h, bystander, "unsigned")

            async def cached() -> bool:
                return await cache.cached(user_id)

            misses = int(await redis.hget(STATS_KEY, "misses") or 0)
            first = await cache.get(user_id)
            assert first is not None and first.email == f"t{user_id}@example.com"
            assert await cache.get(bystander) is not None
            assert await cached()
            hits = int(await redis.hget(STATS_KEY, "hits") or 0)
            again = await cache.get(user_id)
            assert again == first  # served from Redis
            assert int(await redis.hget(STATS_KEY, "hits") or 0) == hits + 1
            assert int(await redis.hget(STATS_KEY, "misses") or 0) == misses + 2
            ttl = await redis.ttl(context_key(user_id))
            assert 0 < ttl <= 900

            # an email change gives the workflow nothing to do, but the cached context is stale
            await set_user(h.replica, user_id, email="moved@example.com")
            await eventually(cached, lambda present: not present)
            assert await cache.cached(bystander)
            refreshed = await cache.get(user_id)
            assert refreshed is not None and refreshed.email == "moved@example.com"

            await set_user(h.replica, user_id, current_signature_file_id=12)
            await eventually(cached, lambda present: not present)
            reloaded = await cache.get(user_id)
            assert reloaded is not None and reloaded.signed
            assert consumer.metrics.cache_invalidations >= 2


async def test_health_reports_the_cdc_worker_and_sync_status_prints_it(
    temporal_env: WorkflowEnvironment, settings: Settings, redis: Redis
) -> None:
    async with cdc_harness(temporal_env, settings, redis, "cdc_status") as ch:
        address = temporal_env.client.service_client.config.target_host
        healthy = settings.model_copy(
            update={
                "temporal_address": address,
                "database_url": ch.h.dialler.url.render_as_string(hide_password=False),
                "replica_database_url": ch.h.replica.url.render_as_string(hide_password=False),
            }
        )
        await redis.delete(metrics_key("binlog"))
        store = CdcStore(ch.h.dialler)
        await store.save_position("binlog", {"gtid": "0-1-77"}, applied=120)
        await store.add_dead_letter("binlog", "{}", "unknown table rmc.sessions")
        metrics = CdcMetrics("binlog")
        metrics.position = "0-1-77"
        metrics.errors = 3
        await publish(redis, metrics)

        app = create_app(healthy)
        async with app.test_app() as test_app:
            response = await test_app.test_client().get("/api/health")
            body = await response.get_json()
        assert response.status_code == 200, body
        assert set(body["checks"]) == {"postgres", "replica", "redis", "temporal"}
        cdc = body["cdc"]
        assert cdc["source"] == "binlog" and cdc["running"] is True
        assert (cdc["errors"], cdc["dead_letters_pending"], cdc["position"]) == (3, 1, "0-1-77")
        assert "events_per_second" in cdc and "lag_seconds" in cdc

        # A running worker publishes every second; so does this stand-in while the CLI
        # starts, which on a loaded machine can take longer than the running window.
        beating = asyncio.create_task(_heartbeat(redis, metrics))
        try:
            rc, out = await dialler_cli(ch, temporal_env, "sync", "status")
        finally:
            beating.cancel()
        assert rc == 0, out
        assert "source:        binlog" in out and "worker:        running" in out
        assert "position:      0-1-77" in out and "events total:  120" in out
        assert "errors:        3" in out and "dead letters:  1 pending" in out

        off = healthy.model_copy(update={"cdc_source": CdcSource.NONE})
        async with create_app(off).test_app() as test_app:
            body = await (await test_app.test_client().get("/api/health")).get_json()
        assert body.get("cdc") is None


async def _heartbeat(redis: Redis, metrics: CdcMetrics) -> None:
    while True:
        await publish(redis, metrics)
        await asyncio.sleep(METRICS_EVERY)
