"""`/api/health`: real checks of every dependency; 503 when any is down."""

from __future__ import annotations

import asyncio

from quart import Blueprint
from quart_schema import validate_response

from adapters.cdc_metrics import read_status
from adapters.cdc_store import CdcStore
from adapters.health import (
    CHECK_TIMEOUT_SECONDS,
    AiStatus,
    check_ai,
    check_all,
    check_redis,
    check_sql,
    check_temporal,
)
from config.settings import CdcSource
from schemas.api import AiHealth, CdcHealth, DependencyCheck, HealthReport
from web.auth.access import public
from web.services import WebServices, services

blueprint = Blueprint("health", __name__)


@blueprint.get("/api/health")
@public("load balancers and monitoring probe it")
@validate_response(HealthReport, 200)
@validate_response(HealthReport, 503)
async def health() -> tuple[HealthReport, int]:
    """Report PostgreSQL, the claims replica, Redis and Temporal, each with its latency;
    (unless CDC_SOURCE=none) the CDC worker's lag, throughput and errors; and the AI agents:
    "not configured" (no OPENAI_MODEL: people make every contact), or the model and whether
    a worker polls the AI task queue. The CDC and AI parts do not change the status."""
    deps = services()
    settings = deps.settings
    results, ai = await asyncio.gather(
        check_all(
            [
                check_sql("postgres", deps.dialler_db),
                check_sql("replica", deps.replica_db),
                check_redis(deps.redis),
                check_temporal(deps.temporal.client),
            ]
        ),
        check_ai(deps.temporal.client, settings.openai_model, settings.ai_task_queue),
    )
    healthy = all(result.ok for result in results)
    report = HealthReport(
        status="ok" if healthy else "unavailable",
        checks={
            r.name: DependencyCheck(ok=r.ok, latency_ms=r.latency_ms, detail=r.detail)
            for r in results
        },
        cdc=await _cdc(deps) if settings.cdc_source is not CdcSource.NONE else None,
        ai=ai_health(ai, settings.ai_task_queue),
    )
    return report, 200 if healthy else 503


def ai_health(status: AiStatus, task_queue: str) -> AiHealth:
    return AiHealth(
        configured=status.configured,
        model=status.model,
        worker_polling=None if status.worker is None else status.worker.ok,
        task_queue=task_queue,
        detail=status.detail,
    )


async def _cdc(deps: WebServices) -> CdcHealth:
    """Lag, throughput and errors of the CDC worker (from Redis and PostgreSQL)."""
    source = deps.settings.cdc_source.value
    try:
        status = await asyncio.wait_for(
            read_status(deps.redis, CdcStore(deps.dialler_db), source), CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:  # a dependency down is reported by its own check above
        return CdcHealth(source, False, None, 0.0, 0, 0, None, f"unknown: {type(error).__name__}")
    return CdcHealth(
        source=source,
        running=status.running,
        lag_seconds=status.lag_seconds,
        events_per_second=status.events_per_second,
        errors=status.errors,
        dead_letters_pending=status.dead_letters_pending,
        position=status.position,
        detail="" if status.running else "no heartbeat from the CDC worker",
    )
