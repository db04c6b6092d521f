"""AI conversations for the supervisor's views in tests, written through their owner
(`adapters.ai_conversations`) as the AI worker's activities write them: opened once per
workflow, a call attached, steps in order (what the claimant said, each model call with its
latency and tokens, each tool call with its arguments, result and refusal, what the AI
said), then closed with its outcome or hand-off."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import ai_conversations as store
from schemas import dialler_db as db


async def ai_agent(dialler: AsyncEngine, name: str = "Robo Reminder") -> int:
    """An AI agent's row (kind AI, no password), as `dialler agents add --ai` makes it."""
    async with dialler.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=f"ai-{uuid.uuid4().hex[:10]}@ai.test.rmc",
                display_name=name,
                role="agent",
                queue="unsigned",
                password_hash=None,
                is_ai=True,
            )
            .returning(db.agents.c.id)
        )
    assert agent_id is not None
    return int(agent_id)


async def ai_call(dialler: AsyncEngine, user_id: int, agent_id: int, **values: Any) -> int:
    """The `calls` row of an AI agent's automated call."""
    async with dialler.begin() as conn:
        call_id = await conn.scalar(
            insert(db.calls)
            .values(
                user_id=user_id,
                agent_id=agent_id,
                queue=values.pop("queue", "unsigned"),
                provider="simulated",
                to_number="+447700900123",
                status="completed",
                duration_seconds=75,
                **values,
            )
            .returning(db.calls.c.id)
        )
    assert call_id is not None
    return int(call_id)


@dataclass
class Step:
    kind: str  # claimant, assistant, tool, model
    text: str | None = None
    tool_name: str | None = None
    detail: dict[str, Any] | None = None
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def said(text: str) -> Step:
    return Step("claimant", text)


def replied(text: str) -> Step:
    return Step("assistant", text)


def model(latency_ms: int, prompt: int, completion: int) -> Step:
    return Step("model", None, latency_ms=latency_ms, prompt_tokens=prompt,
                completion_tokens=completion)  # fmt: skip


def tool(name: str, arguments: dict[str, str], result: str, *, refused: bool = False) -> Step:
    return Step("tool", result, tool_name=name,
                detail={"arguments": arguments, "result": result, "refused": refused})  # fmt: skip


@dataclass
class Seeded:
    id: int
    workflow_id: str
    step_ids: list[int] = field(default_factory=list)


async def conversation(
    dialler: AsyncEngine,
    *,
    user_id: int,
    agent_id: int | None,
    channel: str,
    queue: str | None = "unsigned",
    steps: list[Step],
    status: str | None = "finished",
    disposition: str | None = None,
    handoff_reason: str | None = None,
    summary: str = "",
    call_id: int | None = None,
    started_at: datetime | None = None,
) -> Seeded:
    """One conversation through the owner's functions; `status` None leaves it active.
    `started_at` moves its start (the owner stamps the database's now)."""
    workflow_id = f"ai-contact-test-{uuid.uuid4().hex}"
    async with dialler.begin() as conn:
        conversation_id = await store.open_conversation(
            conn,
            user_id=user_id,
            agent_id=agent_id,
            channel=channel,
            queue=queue,
            workflow_id=workflow_id,
        )
        if call_id is not None:
            await store.attach_call(conn, conversation_id, call_id)
        seeded = Seeded(conversation_id, workflow_id)
        for step in steps:
            seeded.step_ids.append(
                await store.add_step(
                    conn,
                    conversation_id,
                    step.kind,
                    step.text,
                    tool_name=step.tool_name,
                    detail=step.detail,
                    latency_ms=step.latency_ms,
                    prompt_tokens=step.prompt_tokens,
                    completion_tokens=step.completion_tokens,
                )
            )
        if status is not None:
            await store.close_conversation(
                conn,
                conversation_id,
                status=status,
                disposition=disposition,
                handoff_reason=handoff_reason,
                summary=summary,
                turns=sum(1 for step in steps if step.kind == "claimant"),
            )
        if started_at is not None:
            # (a test's own back-dating: the product never moves a start)
            await conn.execute(
                update(db.ai_conversations)
                .where(db.ai_conversations.c.id == conversation_id)
                .values(started_at=started_at)
            )
    return seeded
