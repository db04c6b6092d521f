"""The AI worker killed mid-conversation and started again (issue 13's "done when"): the
conversation neither repeats a tool call (no second magic link, no second text) nor loses
its outcome. The worker is the real `dialler worker ai` process, killed with SIGKILL while a
model call is in flight; the new process replays the conversation from the Temporal history
and retries the interrupted model call once its heartbeat is missed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import dialler_db as db
from schemas.ai import ClaimantTurn
from tests.conftest import REDIS_URL
from tests.factories import add_claimant
from tests.fake_openai import FakeModel
from tests.workflows.ai_stack import AiStack, ai_stack
from tests.workflows.conftest import scratch_databases
from tests.workflows.helpers import eventually, start
from workflows.ai_contact import AiContactWorkflow

DIALLER = str(Path(sys.executable).parent / "dialler")


@pytest.fixture(scope="module")
async def stack(
    temporal_env: WorkflowEnvironment, settings: Settings, model: FakeModel
) -> AsyncIterator[AiStack]:
    async with (
        scratch_databases("airestart") as (dialler, replica),
        ai_stack(temporal_env, settings, dialler, replica, model, ai_worker=False) as s,
    ):
        yield s


def _worker_env(stack: AiStack, env: WorkflowEnvironment) -> dict[str, str]:
    settings = stack.settings
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": stack.h.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": stack.h.replica.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": env.client.namespace,
        "OPENAI_MODEL": settings.openai_model,
        "OPENAI_BASE_URL": str(settings.openai_base_url),
        "OPENAI_TIMEOUT_SECONDS": "30",
        "AI_TASK_QUEUE": settings.ai_task_queue,
        "AI_AGENT_EMAIL": settings.ai_agent_email,
        "TWILIO_ACCOUNT_SID": "",
    }


async def _ai_worker(stack: AiStack, env: WorkflowEnvironment) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        DIALLER,
        "worker",
        "ai",
        env=_worker_env(stack, env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _count(stack: AiStack, table: Any, user_id: int, **where: Any) -> int:
    async with stack.h.dialler.connect() as conn:
        statement = select(func.count()).select_from(table).where(table.c.user_id == user_id)
        for column, value in where.items():
            statement = statement.where(table.c[column] == value)
        return int(await conn.scalar(statement) or 0)


async def _ai_texts(stack: AiStack, user_id: int) -> list[str]:
    async with stack.h.dialler.connect() as conn:
        rows = await conn.execute(
            select(db.sms_messages.c.body)
            .where(
                db.sms_messages.c.user_id == user_id,
                db.sms_messages.c.agent_id == stack.ai_agent_id,
            )
            .order_by(db.sms_messages.c.id)
        )
        return [r.body for r in rows]


async def test_a_killed_worker_neither_repeats_a_tool_call_nor_loses_the_outcome(
    stack: AiStack, temporal_env: WorkflowEnvironment
) -> None:
    first = await _ai_worker(stack, temporal_env)
    second: asyncio.subprocess.Process | None = None
    try:
        user_id = await add_claimant(
            stack.h.replica, signed=True, pending=1, consents=("live_call", "sms")
        )
        await start(stack.h, user_id)
        # a worker process starting on a busy machine takes a while (imports, connections)
        conversation = await stack.conversation(user_id, seconds=120)
        await eventually(lambda: _ai_texts(stack, user_id), lambda texts: len(texts) == 1)

        stack.model.reply_tool("send_magic_link", {"purpose": "documents", "channel": "sms"})
        stack.model.reply_text("this reply never arrives", delay_seconds=15)  # killed meanwhile
        stack.model.reply_text("I've sent you a link to upload them.")
        contact = stack.contact(conversation.workflow_id)
        await contact.signal(
            AiContactWorkflow.claimant_texted, ClaimantTurn("Can you send me the link?", "SMk1")
        )
        # the link has gone and the next model call is in flight: kill the worker
        await eventually(lambda: _requests(stack.model), lambda n: n == 2, seconds=60)
        assert await _count(stack, db.magic_links, user_id) == 1
        first.send_signal(signal.SIGKILL)
        await first.wait()

        second = await _ai_worker(stack, temporal_env)
        # opening, the link (sent as the AI agent), then the retried turn's reply
        texts = await eventually(
            lambda: _ai_texts(stack, user_id), lambda found: len(found) == 3, seconds=120
        )
        assert "/m/" in texts[1] and texts[2] == "I've sent you a link to upload them."

        stack.model.reply_tool(
            "record_outcome",
            {"outcome": "promised_documents", "note": "uploading today with the link"},
            say="Thank you!",
        )
        await contact.signal(
            AiContactWorkflow.claimant_texted, ClaimantTurn("Thanks, I'll upload today", "SMk2")
        )
        ended = await stack.ended(user_id)
        assert (ended.status, ended.disposition) == ("finished", "promised_documents")
        calls = await eventually(
            lambda: _count(stack, db.calls, user_id, disposition="promised_documents"),
            lambda n: n == 1,
        )
        assert calls == 1
        assert await _count(stack, db.magic_links, user_id) == 1  # not sent again
        assert await _ai_texts(stack, user_id) == [*texts, "Thank you!"]  # none twice
        assert stack.model.remaining == 0
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()


async def _requests(model: FakeModel) -> int:
    return len(model.requests)
