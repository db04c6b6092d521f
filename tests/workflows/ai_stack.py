"""A stack for the AI agent's workflow tests: the outreach worker with a model configured,
an AI worker on its own task queue with the real activities, the scripted fake model, and an
AI agent on duty."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import AnyHttpUrl
from sqlalchemy import insert, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from adapters import agent_store, ai_conversations
from adapters.ai_model import ChatModel, model_config
from adapters.rules_source import RulesSource
from config.settings import Settings
from domain.rules import DiallerRules
from schemas import dialler_db as db
from schemas.enums import AgentRole, AgentState
from tests.fake_openai import FakeModel
from tests.workflows.conftest import Harness, open_rules, running_harness
from tests.workflows.helpers import eventually
from workers.ai_agent import ai_activities, build_ai_worker
from workflows.ai_contact import AiContactWorkflow


@dataclass
class AiStack:
    h: Harness
    model: FakeModel
    settings: Settings
    ai_agent_id: int
    ai_task_queue: str

    async def conversation(self, user_id: int, channel: str = "sms", seconds: float = 20) -> Any:
        """The claimant's live AI conversation, once the AI has started it."""

        async def find() -> Any:
            async with self.h.dialler.connect() as conn:
                return await ai_conversations.active_conversation(conn, user_id, channel)

        return await eventually(find, lambda row: row is not None, seconds)

    def contact(self, workflow_id: str) -> WorkflowHandle[AiContactWorkflow, Any]:
        return self.h.client.get_workflow_handle_for(AiContactWorkflow.run, workflow_id)

    async def ended(self, user_id: int) -> Any:
        """The claimant's latest AI conversation once it has ended."""

        async def latest() -> Any:
            async with self.h.dialler.connect() as conn:
                rows = await ai_conversations.conversations_for_user(conn, user_id, limit=1)
            return rows[0] if rows else None

        return await eventually(latest, lambda row: row is not None and row.status != "active")


def ai_settings(settings: Settings, model: FakeModel, **values: Any) -> Settings:
    return settings.model_copy(
        update={
            "openai_model": "fake-model",
            "openai_base_url": AnyHttpUrl(model.base_url),
            "ai_task_queue": f"ai-test-{uuid.uuid4().hex[:8]}",
            "openai_timeout_seconds": 5.0,
            **values,
        }
    )


AI_AGENT_ID = 900  # clear of the people 1..40 that tests.workflows.helpers.ensure_agents adds


async def ai_agent_on_duty(dialler: Any, email: str) -> int:
    """The AI agent (kind AI), Ready, as the AI worker leaves it when it starts."""
    async with dialler.begin() as conn:
        found = await conn.scalar(select(db.agents.c.id).where(db.agents.c.email == email))
        if found is None:
            await conn.execute(
                insert(db.agents).values(
                    id=AI_AGENT_ID,
                    email=email,
                    display_name="AI agent",
                    role=AgentRole.AGENT.value,
                    queue="outstanding",
                    is_ai=True,
                )
            )
        await agent_store.record_state(conn, AI_AGENT_ID, AgentState.READY.value, "test")
    return AI_AGENT_ID


@asynccontextmanager
async def ai_stack(
    env: WorkflowEnvironment,
    settings: Settings,
    dialler: Any,
    replica: Any,
    model: FakeModel,
    rules: DiallerRules | None = None,
    *,
    ai_worker: bool = True,
    **values: Any,
) -> AsyncIterator[AiStack]:
    """`ai_worker` False: no AI worker in this process (a test runs `dialler worker ai`)."""
    configured = ai_settings(settings, model, **values)
    source = RulesSource(dialler, rules or open_rules())
    agent_id = await ai_agent_on_duty(dialler, configured.ai_agent_email)
    config = model_config(configured)
    assert config is not None
    chat = ChatModel(config)
    async with running_harness(env, configured, dialler, replica, source) as h:
        stack = AiStack(h, model, configured, agent_id, configured.ai_task_queue)
        if not ai_worker:
            yield stack
        else:
            activities = ai_activities(configured, h.client, dialler, replica, chat, source)
            async with build_ai_worker(h.client, configured.ai_task_queue, activities):
                yield stack
    await chat.close()
