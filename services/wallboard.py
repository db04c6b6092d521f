"""The supervisors' wallboard: the floor now (`wallboard`) and the systems behind it
(`system_health`), each one snapshot for `web/templates/supervisor/`.

`wallboard` reads six set-based statements on one connection, in one REPEATABLE READ
transaction so its figures agree with each other: the agents with their latest state, the
queues' tasks in groups, the claim each agent holds, the calls since the start of the UK
day (or the abandon rate's 24 hours, whichever is longer) per agent and outcome, the
pending callbacks due, and the day's AI conversations by channel with their hand-offs
(`adapters.ai_conversations`). The rules that turn them into figures are `domain.floor`'s.

`system_health` is apart because its checks wait on other services (up to
`adapters.health.CHECK_TIMEOUT_SECONDS` each): the floor's figures must not wait with them.
It reuses the health checks of `/api/health`, the CDC worker's status and the AI's (no
model configured, or a model and whether the AI worker polls its task queue).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, ai_conversations, call_log, task_store
from adapters.cdc_metrics import read_status
from adapters.cdc_store import CdcStore
from adapters.health import (
    CHECK_TIMEOUT_SECONDS,
    AiStatus,
    DependencyStatus,
    check_ai,
    check_all,
    check_redis,
    check_sql,
    check_temporal,
    check_workers,
)
from adapters.temporal import TemporalConnection
from domain.floor import (
    CALLBACK_LOOKAHEAD,
    UK,
    AgentOnFloor,
    AiContacts,
    AiFloor,
    CallsToday,
    QueueFloor,
    StateCount,
    agents_on_floor,
    ai_floor,
    calls_today,
    day_start,
    queue_floors,
    state_counts,
)
from schemas.cdc import CdcStatus
from schemas.enums import AgentRole, AgentState, Queue


@dataclass(frozen=True)
class Wallboard:
    at: datetime  # the time the figures are for
    queues: list[QueueFloor]  # in `Queue` order
    agents: list[AgentOnFloor]  # active agents (people and AI), busiest states first
    states: list[StateCount]
    calls: CallsToday
    ai_agents: int  # active AI agents
    ai: AiFloor

    def signed_in(self) -> list[AgentOnFloor]:
        """The agents the table lists: everyone not offline."""
        return [a for a in self.agents if a.state is not AgentState.OFFLINE]


@dataclass(frozen=True)
class AiSetup:
    """What the settings say of the AI: a model is configured (OPENAI_MODEL), and which
    channels it may use (AI_VOICE_ENABLED, AI_SMS_ENABLED)."""

    configured: bool = False
    voice_enabled: bool = True
    sms_enabled: bool = True


async def wallboard(
    dialler: AsyncEngine,
    *,
    now: datetime | None = None,
    zone: ZoneInfo = UK,
    ai: AiSetup | None = None,
) -> Wallboard:
    """The floor at `now` (default: the current time); the day starts at midnight in
    `zone` (the rules' calling-window zone, Europe/London)."""
    now = now or datetime.now(UTC)
    ai = ai or AiSetup()
    start = day_start(now, zone)
    async with dialler.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        staff = await agent_store.agents_in_states(conn)
        groups = await task_store.floor_task_groups(conn, now)
        claimants = await task_store.claimants_by_agent(conn)
        calls = await call_log.calls_by_agent_since(conn, day_start=start, now=now)
        callbacks = await call_log.callbacks_due(conn, now, CALLBACK_LOOKAHEAD)
        ai_today = await ai_conversations.contacts_since(conn, start)
    # The floor is whoever takes calls: active agents, people and AI (not supervisors).
    on_floor = [
        s.seen for s in staff if s.is_active and (s.role == AgentRole.AGENT or s.seen.is_ai)
    ]
    ai_ids = frozenset(s.seen.agent_id for s in staff if s.seen.is_ai)
    today = calls_today(calls, ai_ids)
    agents = agents_on_floor(on_floor, claimants, today.per_agent, now)
    floors = queue_floors(groups)
    callback = floors[Queue.CALLBACK.value]
    callback.callbacks_due_now = callbacks.due_now
    callback.callbacks_next_hour = callbacks.next_hour
    return Wallboard(
        at=now,
        queues=[floors[q.value] for q in Queue],
        agents=agents,
        states=state_counts(agents),
        calls=today,
        ai_agents=sum(1 for a in on_floor if a.is_ai),
        ai=ai_floor(
            configured=ai.configured,
            voice_enabled=ai.voice_enabled,
            sms_enabled=ai.sms_enabled,
            agents=agents,
            contacts=[AiContacts(c, n, h) for c, (n, h) in ai_today.items()],
        ),
    )


@dataclass(frozen=True)
class SystemHealth:
    checks: list[DependencyStatus]  # the databases, Redis, Temporal, the outreach worker
    cdc: CdcStatus | None  # None: no CDC source configured, or its status unreadable
    cdc_configured: bool
    cdc_error: str | None = None
    # the AI: not configured is a valid set-up (people make every contact); configured with
    # no AI worker polling is not
    ai: AiStatus = field(
        default_factory=lambda: AiStatus(configured=False, model=None, worker=None)
    )

    @property
    def healthy(self) -> bool:
        cdc_ok = not self.cdc_configured or (self.cdc is not None and self.cdc.running)
        ai_ok = not self.ai.configured or self.ai.working
        return cdc_ok and ai_ok and all(check.ok for check in self.checks)


async def system_health(
    *,
    dialler: AsyncEngine,
    replica: AsyncEngine,
    redis: Redis,
    temporal: TemporalConnection,
    task_queue: str,
    cdc_source: str | None,
    ai_model: str = "",
    ai_task_queue: str = "ai-agents",
) -> SystemHealth:
    """The checks of `/api/health` plus the outreach worker (polling `task_queue`), the
    CDC worker's status (lag, dead letters) unless `cdc_source` is None, and the AI (not
    configured when `ai_model` is empty, else whether a worker polls `ai_task_queue`)."""
    checks = check_all(
        [
            check_sql("postgres", dialler),
            check_sql("replica", replica),
            check_redis(redis),
            check_temporal(temporal.client),
            check_workers(temporal.client, task_queue, "outreach worker"),
        ]
    )
    ai = check_ai(temporal.client, ai_model, ai_task_queue)
    if cdc_source is None:
        results, ai_status = await asyncio.gather(checks, ai)
        return SystemHealth(results, None, cdc_configured=False, ai=ai_status)
    results, (status, error), ai_status = await asyncio.gather(
        checks, _cdc_status(redis, dialler, cdc_source), ai
    )
    return SystemHealth(results, status, cdc_configured=True, cdc_error=error, ai=ai_status)


async def _cdc_status(
    redis: Redis, dialler: AsyncEngine, source: str
) -> tuple[CdcStatus | None, str | None]:
    try:
        status = await asyncio.wait_for(
            read_status(redis, CdcStore(dialler), source), CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:  # a dependency down is named by its own check above
        return None, type(error).__name__
    return status, None
