"""Bodies of the JSON API (documented in the OpenAPI spec by quart-schema)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DependencyCheck:
    ok: bool
    latency_ms: float
    detail: str


@dataclass
class HealthReport:
    status: str  # "ok" or "unavailable"
    checks: dict[str, DependencyCheck]
