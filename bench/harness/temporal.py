"""Evidence from the Temporal side: workflow histories, activity counts by type (names taken
as the worker reports them, never imported from the product), Temporal core's metrics, and
the pydantic TypeAdapters the data converter builds."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import httpx
from pydantic import TypeAdapter
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput
from temporalio.worker import Interceptor as WorkerInterceptor

from bench.harness.stack import free_port


class ActivityTap(ClientInterceptor, WorkerInterceptor):
    """Counts activity executions by type. Given to the client, so workers built from it by
    `workers.outreach.build_worker` pick it up unchanged."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TapInbound(next, self)


class _TapInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, tap: ActivityTap) -> None:
        super().__init__(next)
        self._tap = tap

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        self._tap.counts[activity.info().activity_type] += 1
        return result


class CoreMetrics:
    """Temporal core's own metrics (sticky cache, workflow task outcomes), scraped from a
    Prometheus endpoint on a free port of a runtime made for the benchmark's client."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=self.address))
        )

    async def scrape(self) -> dict[str, float]:
        return await scrape_metrics(self.address)


async def scrape_metrics(address: str) -> dict[str, float]:
    """A Prometheus endpoint's metrics, each value summed over its label sets (histograms:
    `_count` and `_sum`; buckets left out)."""
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(f"http://{address}/metrics")).text
    totals: dict[str, float] = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name.endswith("_bucket"):
            continue
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def metric_mean(before: dict[str, float], after: dict[str, float], histogram: str) -> str:
    """A histogram's mean between two scrapes: '12.3 ms (mean of 456)'."""
    count = after.get(f"{histogram}_count", 0.0) - before.get(f"{histogram}_count", 0.0)
    total = after.get(f"{histogram}_sum", 0.0) - before.get(f"{histogram}_sum", 0.0)
    if count <= 0:
        return "n/a"
    return f"{total / count:.1f} ms (mean of {count:,.0f})"


def metric_delta(before: dict[str, float], after: dict[str, float], name: str) -> str:
    return f"{after.get(name, 0.0) - before.get(name, 0.0):,.0f}"


# --- histories ---------------------------------------------------------------------------------


@dataclass
class HistoryProfile:
    events: int
    workflow_tasks: int
    activities: Counter[str]
    task_timeouts: int = 0  # workflow tasks the server timed out (the worker was too slow)
    task_failures: int = 0


async def history_profile(client: Client, workflow_id: str) -> HistoryProfile:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    activities: Counter[str] = Counter()
    kinds = Counter(event.event_type for event in history.events)
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        elif local := _local_activity(event):
            activities[f"{local}(local)"] += 1
    return HistoryProfile(
        len(history.events),
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED],
        activities,
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT],
        kinds[EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED],
    )


def _local_activity(event: HistoryEvent) -> str | None:
    """The activity type of a local-activity marker, else None."""
    if not event.HasField("marker_recorded_event_attributes"):
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != "core_local_activity" or "data" not in marker.details:
        return None
    with contextlib.suppress(ValueError, IndexError, KeyError):
        return str(json.loads(marker.details["data"].payloads[0].data)["activity_type"])
    return "?"


async def history_timeline(client: Client, workflow_id: str) -> list[str]:
    """The history as lines 'mm:ss.mmm event detail': activities and updates named."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled: dict[int, str] = {}
    lines: list[str] = []
    for event in history.events:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        detail = ""
        if event.HasField("activity_task_scheduled_event_attributes"):
            detail = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = detail
        elif local := _local_activity(event):
            detail = f"local activity {local}"
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            detail = scheduled.get(attrs.scheduled_event_id, "")
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            accepted = event.workflow_execution_update_accepted_event_attributes
            detail = accepted.accepted_request.input.name
        elif kind.startswith("WORKFLOW_TASK") or kind == "WORKFLOW_EXECUTION_STARTED":
            continue
        at = event.event_time.ToDatetime(tzinfo=UTC)
        lines.append(f"{at:%M:%S.%f}"[:-3] + f" {kind.lower()} {detail}".rstrip())
    return lines


def describe_profiles(profiles: Sequence[HistoryProfile]) -> str:
    """'23 events, 5 workflow tasks, activities: load_facts(local) x2 ...' (averages)."""
    if not profiles:
        return "no histories sampled"
    n = len(profiles)
    total: Counter[str] = Counter()
    for p in profiles:
        total.update(p.activities)
    acts = " ".join(f"{name} x{count / n:g}" for name, count in sorted(total.items()))
    events = sum(p.events for p in profiles) / n
    tasks = sum(p.workflow_tasks for p in profiles) / n
    text = f"{events:g} events, {tasks:g} workflow tasks, activities: {acts or 'none'}"
    timeouts = sum(p.task_timeouts for p in profiles) / n
    failures = sum(p.task_failures for p in profiles) / n
    if timeouts or failures:
        text += f"; workflow tasks timed out {timeouts:g}, failed {failures:g}"
    return text + (f" (mean of {n})" if n > 1 else "")


async def timeline_block(client: Client, workflow_id: str, heading: str) -> list[str]:
    """A heading and the workflow's history in a code block, for a record's details."""
    return [heading, "", "```", *await history_timeline(client, workflow_id), "```", ""]


# --- pydantic TypeAdapters --------------------------------------------------------------------


@dataclass
class TypeAdapterCount:
    built: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # thread CPU time spent building them

    def total(self) -> tuple[int, float]:
        return sum(self.built.values()), self.cpu_seconds


def count_type_adapters() -> TypeAdapterCount:
    """Count every `pydantic.TypeAdapter` built in this process from now on, with the CPU
    time it took. The pydantic data converter caches adapters per converter instance, and
    the worker makes a payload converter per workflow run."""
    stats = TypeAdapterCount()
    original = TypeAdapter.__init__

    def counted(self: TypeAdapter[Any], type: Any, *args: Any, **kwargs: Any) -> None:
        began = time.thread_time()
        original(self, type, *args, **kwargs)
        stats.cpu_seconds += time.thread_time() - began
        stats.built[getattr(type, "__name__", str(type))] += 1

    TypeAdapter.__init__ = counted  # type: ignore[method-assign]
    return stats
