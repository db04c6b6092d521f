"""Bodies of the JSON API (documented in the OpenAPI spec by quart-schema)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DependencyCheck:
    ok: bool
    latency_ms: float
    detail: str


@dataclass
class CdcHealth:
    """The change-data-capture worker, as it last reported itself (informational: it does
    not change the overall status, since the batch schedules heal what it misses)."""

    source: str
    running: bool
    lag_seconds: float | None
    events_per_second: float
    errors: int
    dead_letters_pending: int
    position: str | None
    detail: str = ""


@dataclass
class AiHealth:
    """The AI agents (informational, like the CDC worker: with no model, or no AI worker,
    people make every contact; an AI-routed task is offered to people once it waits)."""

    configured: bool  # a model is named (OPENAI_MODEL)
    model: str | None
    worker_polling: bool | None  # a worker polls the AI task queue (None: not configured)
    task_queue: str
    detail: str


@dataclass
class HealthReport:
    status: str  # "ok" or "unavailable"
    checks: dict[str, DependencyCheck]
    cdc: CdcHealth | None = None  # absent when CDC_SOURCE=none
    ai: AiHealth | None = None
