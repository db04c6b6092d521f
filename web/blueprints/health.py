"""`/api/health`: real checks of every dependency; 503 when any is down."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import validate_response

from adapters.health import check_all, check_redis, check_sql, check_temporal
from schemas.api import DependencyCheck, HealthReport
from web.auth.access import public
from web.services import services

blueprint = Blueprint("health", __name__)


@blueprint.get("/api/health")
@public("load balancers and monitoring probe it")
@validate_response(HealthReport, 200)
@validate_response(HealthReport, 503)
async def health() -> tuple[HealthReport, int]:
    """Report PostgreSQL, the claims replica, Redis and Temporal, each with its latency."""
    deps = services()
    results = await check_all(
        [
            check_sql("postgres", deps.dialler_db),
            check_sql("replica", deps.replica_db),
            check_redis(deps.redis),
            check_temporal(deps.temporal.client),
        ]
    )
    healthy = all(result.ok for result in results)
    report = HealthReport(
        status="ok" if healthy else "unavailable",
        checks={
            r.name: DependencyCheck(ok=r.ok, latency_ms=r.latency_ms, detail=r.detail)
            for r in results
        },
    )
    return report, 200 if healthy else 503
