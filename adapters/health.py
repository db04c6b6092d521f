"""Real dependency checks, shared by `/api/health`, `dialler dev` and `dialler health`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class DependencyStatus:
    name: str
    ok: bool
    latency_ms: float
    detail: str


async def _timed(name: str, probe: Callable[[], Awaitable[str]]) -> DependencyStatus:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), timeout=CHECK_TIMEOUT_SECONDS)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as error:  # any failure of the dependency is the answer, not a crash
        ok, detail = False, _one_line(error)
    elapsed = (time.perf_counter() - started) * 1000
    return DependencyStatus(name=name, ok=ok, latency_ms=round(elapsed, 1), detail=detail)


def _one_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else 'failed'}"[:300]


def check_sql(name: str, engine: AsyncEngine) -> Awaitable[DependencyStatus]:
    async def probe() -> str:
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version()"))).scalar_one()
        return str(version).split(" on ")[0][:80]

    return _timed(name, probe)


def check_redis(redis: Redis) -> Awaitable[DependencyStatus]:
    async def probe() -> str:
        await redis.ping()
        info = await redis.info("server")
        return f"redis {info.get('redis_version', '?')}"

    return _timed("redis", probe)


def check_temporal(client_factory: Callable[[], Awaitable[Client]]) -> Awaitable[DependencyStatus]:
    async def probe() -> str:
        client = await client_factory()
        serving = await client.service_client.check_health(timeout=timedelta(seconds=2))
        if not serving:
            raise RuntimeError("workflow service is not serving")
        return f"namespace {client.namespace}"

    return _timed("temporal", probe)


async def check_all(checks: list[Awaitable[DependencyStatus]]) -> list[DependencyStatus]:
    return list(await asyncio.gather(*checks))


# A worker long-polls its task queue again as soon as a poll returns (at the latest about a
# minute after it began), so one not seen for longer than this has stopped.
WORKER_POLLED_WITHIN = timedelta(seconds=90)


WORKFLOW_TASKS = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,)
# The AI worker is found by either kind of poll: it runs the AI contact's workflow and its
# activities (model calls, tools) on the same task queue.
ANY_TASKS = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)


def check_workers(
    client_factory: Callable[[], Awaitable[Client]],
    task_queue: str,
    name: str = "worker",
    kinds: tuple[TaskQueueType.ValueType, ...] = WORKFLOW_TASKS,
) -> Awaitable[DependencyStatus]:
    """Workers polling `task_queue` for the `kinds` of tasks (workflow tasks by default),
    as Temporal saw them last; each worker (by identity) is counted once."""

    async def probe() -> str:
        client = await client_factory()
        now = time.time()
        recent: set[str] = set()
        for kind in kinds:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=task_queue),
                    task_queue_type=kind,
                )
            )
            recent.update(
                poller.identity
                for poller in response.pollers
                if now - poller.last_access_time.ToSeconds() <= WORKER_POLLED_WITHIN.total_seconds()
            )
        if not recent:
            raise RuntimeError(f"no worker has polled task queue {task_queue!r} lately")
        return f"{len(recent)} polling {task_queue!r}"

    return _timed(name, probe)


# --- the AI agents (issue 13) ----------------------------------------------------------------

AI_NOT_CONFIGURED = "no model configured (OPENAI_MODEL): every contact goes to people"


@dataclass(frozen=True)
class AiStatus:
    """Whether the AI agents can work: a model is configured and a worker polls their task
    queue. Not configured is a valid set-up (people make every contact), stated, not failed."""

    configured: bool
    model: str | None
    worker: DependencyStatus | None  # None: not configured, so no worker is expected

    @property
    def working(self) -> bool:
        return self.worker is not None and self.worker.ok

    @property
    def detail(self) -> str:
        if self.worker is None:
            return AI_NOT_CONFIGURED
        if self.worker.ok:
            return f"model {self.model}; AI worker: {self.worker.detail}"
        return (
            f"model {self.model}, but no AI worker is running ({self.worker.detail}): "
            "AI contacts wait, then go to people"
        )


async def check_ai(
    client_factory: Callable[[], Awaitable[Client]], model: str, task_queue: str
) -> AiStatus:
    """The AI: not configured when `model` is empty (no Temporal call is made); else whether
    a worker polls `task_queue` (the AI worker, `dialler worker ai`)."""
    model = model.strip()
    if not model:
        return AiStatus(configured=False, model=None, worker=None)
    worker = await check_workers(client_factory, task_queue, "AI worker", ANY_TASKS)
    return AiStatus(configured=True, model=model, worker=worker)
