"""Temporal Schedules of the dialler, provisioned idempotently at worker start.

- `reconcile-queues`, every 5 minutes: the seed's queue queries against the projection;
- `cdc-catch-up`, every 15 minutes: claimants whose replica rows changed since the watermark;
- `cache-warm`, hourly: the contexts of the claimants at the top of each queue;
- `integrity-check`, every 6 hours: replica vs workflows vs projection, drift repaired;
- `daily-cleanup`, 03:30 UK time: retention of links, sessions and dead letters;
- `learn-rates`, 02:30 UK time: the learned rates of the last 180 days (issue 14).

A slow run is never doubled up: the next one waits for its slot (overlap SKIP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from schemas.cdc import CacheWarmInput, CatchUpInput, CleanupInput, IntegrityInput
from schemas.learned_rates import LearnRatesInput
from schemas.reconcile import ReconcileInput
from workflows.learning import LEARN_RATES_ID, LearnRatesWorkflow
from workflows.maintenance import (
    CacheWarmWorkflow,
    CatchUpWorkflow,
    CleanupWorkflow,
    IntegrityCheckWorkflow,
)
from workflows.reconcile import ReconcileWorkflow

RECONCILE_SCHEDULE_ID = "reconcile-queues"
RECONCILE_EVERY = timedelta(minutes=5)
CATCH_UP_SCHEDULE_ID = "cdc-catch-up"
CATCH_UP_EVERY = timedelta(minutes=15)
CACHE_WARM_SCHEDULE_ID = "cache-warm"
CACHE_WARM_EVERY = timedelta(hours=1)
INTEGRITY_SCHEDULE_ID = "integrity-check"
INTEGRITY_EVERY = timedelta(hours=6)
CLEANUP_SCHEDULE_ID = "daily-cleanup"
CLEANUP_AT = (3, 30)  # hour, minute, Europe/London: the quietest time of the day
CLEANUP_ZONE = "Europe/London"
LEARN_RATES_SCHEDULE_ID = LEARN_RATES_ID
# before the clean-up, when the day's calls are over; the scorer reads the new version from then
LEARN_RATES_AT = (2, 30)  # hour, minute, Europe/London


@dataclass(frozen=True)
class _Planned:
    schedule_id: str
    workflow: Callable[..., Any]
    argument: object
    spec: ScheduleSpec


def _every(interval: timedelta) -> ScheduleSpec:
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)])


def _daily(at: tuple[int, int]) -> ScheduleSpec:
    hour, minute = at
    return ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])
        ],
        time_zone_name=CLEANUP_ZONE,
    )


def planned_schedules(cache_warm_per_queue: int = 200) -> list[_Planned]:
    return [
        _Planned(
            RECONCILE_SCHEDULE_ID, ReconcileWorkflow.run, ReconcileInput(), _every(RECONCILE_EVERY)
        ),
        _Planned(CATCH_UP_SCHEDULE_ID, CatchUpWorkflow.run, CatchUpInput(), _every(CATCH_UP_EVERY)),
        _Planned(
            CACHE_WARM_SCHEDULE_ID,
            CacheWarmWorkflow.run,
            CacheWarmInput(per_queue=cache_warm_per_queue),
            _every(CACHE_WARM_EVERY),
        ),
        _Planned(
            INTEGRITY_SCHEDULE_ID,
            IntegrityCheckWorkflow.run,
            IntegrityInput(),
            _every(INTEGRITY_EVERY),
        ),
        _Planned(
            CLEANUP_SCHEDULE_ID,
            CleanupWorkflow.run,
            CleanupInput(),
            _daily(CLEANUP_AT),
        ),
        _Planned(
            LEARN_RATES_SCHEDULE_ID,
            LearnRatesWorkflow.run,
            LearnRatesInput(),
            _daily(LEARN_RATES_AT),
        ),
    ]


async def ensure_schedules(
    client: Client, task_queue: str, *, cache_warm_per_queue: int = 200
) -> list[str]:
    """Create the schedules that do not exist yet; return the ids created."""
    created = []
    for planned in planned_schedules(cache_warm_per_queue):
        try:
            await client.create_schedule(
                planned.schedule_id,
                Schedule(
                    action=ScheduleActionStartWorkflow(
                        planned.workflow,
                        planned.argument,
                        id=planned.schedule_id,
                        task_queue=task_queue,
                    ),
                    spec=planned.spec,
                    # a slow run is never doubled up: the next one waits for its slot
                    policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
                ),
            )
            created.append(planned.schedule_id)
        except ScheduleAlreadyRunningError:
            pass
    return created
