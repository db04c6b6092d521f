"""`make dev` (workers/devstack.py) starts the AI worker only when a model is configured;
otherwise it says, in one line, that it is not started and why. With a model but no AI agent
for the worker to work as, the stack runs without it and says how to create the agent."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from schemas import dialler_db as db
from workers.devstack import AI_NOT_STARTED, DevStack, product_processes


def test_no_model_no_ai_worker_and_one_line_saying_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    processes = product_processes(settings.model_copy(update={"openai_model": " "}))
    assert "ai-worker" not in [p.name for p in processes]
    lines = [line for line in capsys.readouterr().out.splitlines() if "AI worker" in line]
    assert lines == [f"[dev] {AI_NOT_STARTED}"]
    assert "no model is configured (OPENAI_MODEL)" in AI_NOT_STARTED


def test_a_configured_model_starts_dialler_worker_ai(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    processes = product_processes(settings.model_copy(update={"openai_model": "gpt-4o-mini"}))
    names = [p.name for p in processes]
    assert "ai-worker" in names and names[-1] == "web"  # the web app still starts last
    [ai] = [p for p in processes if p.name == "ai-worker"]
    assert ai.argv[-2:] == ["worker", "ai"] and ai.argv[0].endswith("/dialler")
    assert "AI worker" not in capsys.readouterr().out


async def test_the_ai_worker_waits_for_an_active_ai_agent(
    settings: Settings, dialler_db: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"ai-{uuid.uuid4().hex[:8]}@dev.test"
    stack = DevStack(settings.model_copy(update={"openai_model": "m", "ai_agent_email": email}), 0)
    assert await stack._ai_agent_exists() is False
    said = capsys.readouterr().out
    assert f"AI_AGENT_EMAIL={email} is not an active AI agent" in said
    assert f"dialler agents add {email} --name 'AI agent' --queue outstanding --ai" in said

    async with dialler_db.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=email, display_name="AI agent", role="agent", queue="outstanding",
                    is_ai=True)
            .returning(db.agents.c.id)
        )  # fmt: skip
    assert await stack._ai_agent_exists() is True

    async with dialler_db.begin() as conn:  # disabled, or a person: not the AI's identity
        await conn.execute(
            update(db.agents).where(db.agents.c.id == agent_id).values(is_active=False)
        )
    assert await stack._ai_agent_exists() is False
    async with dialler_db.begin() as conn:
        await conn.execute(
            update(db.agents).where(db.agents.c.id == agent_id).values(is_active=True, is_ai=False)
        )
    assert await stack._ai_agent_exists() is False
