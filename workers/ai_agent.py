"""The AI worker (`dialler worker ai`): a Temporal worker on the AI task queue that carries
out the automated contacts the outreach workflows schedule (AiContactWorkflow) and triages
inbound texts (SmsTriageWorkflow), working as one agent identity: a row in `agents` of kind
AI, Ready on the floor while it runs and Offline when it stops.

With no model configured it does not start: it says so, and the routing policy sends every
contact to people (the outreach worker routes to the AI only where a model is configured and
an AI agent is on duty).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio.client import Client
from temporalio.worker import Worker

from activities.ai_agent import AiAgentActivities
from activities.ai_tools import AiToolActivities
from activities.ai_triage import triage_activities
from adapters import agent_store
from adapters.ai_model import ChatModel, model_config
from adapters.databases import dialler_engine, replica_engine
from adapters.live import LiveBus
from adapters.redis_client import connect_redis
from adapters.rules_file import rules_source
from adapters.rules_source import RulesSource
from adapters.temporal import connect_temporal
from config.settings import Settings
from domain.rules import DiallerRules
from schemas.enums import AgentState
from services.live_updates import FloorPublisher
from workflows.ai_contact import AiContactWorkflow
from workflows.sms_triage import SmsTriageWorkflow

log = get_logger(__name__)
AI_WORKFLOWS = [AiContactWorkflow, SmsTriageWorkflow]
NOT_CONFIGURED = (
    "no AI model configured (OPENAI_MODEL is empty): the AI worker does not start and "
    "every contact goes to people"
)


class AiAgentMissing(Exception):
    """The AI worker's agent identity is not an active AI agent; the message says how to
    create it."""


@dataclass(frozen=True)
class AiIdentity:
    agent_id: int
    email: str


async def ai_identity(dialler: AsyncEngine, email: str) -> AiIdentity:
    async with dialler.connect() as conn:
        record = await agent_store.staff_by_email(conn, email)
    if record is None or not record.is_ai or not record.is_active:
        raise AiAgentMissing(
            f"AI_AGENT_EMAIL={email} is not an active AI agent: create it with "
            f"`dialler agents add {email} --name 'AI agent' --queue outstanding --ai`"
        )
    return AiIdentity(record.id, email)


def ai_activities(
    settings: Settings,
    client: Client,
    dialler: AsyncEngine,
    replica: AsyncEngine,
    model: ChatModel,
    rules: RulesSource | DiallerRules,
) -> list[Callable[..., Any]]:
    """Every activity the AI task queue runs."""
    agent = AiAgentActivities.from_settings(settings, dialler, replica, model, rules)
    tools = AiToolActivities(dialler, replica, rules)
    return [
        agent.open_conversation,
        agent.place_call,
        agent.send_sms,
        agent.model_turn,
        agent.claim_context,
        agent.record_tool_step,
        agent.end_call,
        agent.close_conversation,
        tools.limits,
        tools.check_tool,
        *triage_activities(settings, dialler, replica, model, client, rules),
    ]


def build_ai_worker(
    client: Client, task_queue: str, activities: Sequence[Callable[..., Any]]
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=AI_WORKFLOWS,
        activities=activities,
        # model calls wait on the network, not the CPU; the databases bound the rest
        max_concurrent_activities=50,
    )


async def set_on_duty(dialler: AsyncEngine, agent_id: int, state: AgentState, why: str) -> None:
    async with dialler.begin() as conn:
        await agent_store.record_state(conn, agent_id, state.value, why)


async def run_ai_worker(settings: Settings) -> None:
    config = model_config(settings)
    if config is None:
        log.warning(NOT_CONFIGURED)
        return
    dialler, replica = (
        dialler_engine(settings, pool_size=10, pre_ping=False),
        replica_engine(settings, pool_size=5, pre_ping=False),
    )
    identity = await ai_identity(dialler, settings.ai_agent_email)  # stops here if missing
    client = await connect_temporal(settings)
    rules = rules_source(dialler, settings.rules_file)
    redis = connect_redis(settings.redis_url, decode_responses=False)
    floor = FloorPublisher(LiveBus(redis))
    model = ChatModel(config)
    worker = build_ai_worker(
        client,
        settings.ai_task_queue,
        ai_activities(settings, client, dialler, replica, model, rules),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with rules.listening(redis), worker:
        await set_on_duty(dialler, identity.agent_id, AgentState.READY, "AI worker started")
        await floor.publish()
        log.info(
            "AI worker started",
            task_queue=settings.ai_task_queue,
            agent_id=identity.agent_id,
            model=config.model,
        )
        await stop.wait()
        await set_on_duty(dialler, identity.agent_id, AgentState.OFFLINE, "AI worker stopped")
        await floor.publish()
    await floor.close()
    await model.close()
    await dialler.dispose()
    await replica.dispose()
    await redis.aclose()
