"""What the routing policy needs to know about the AI agents beyond the claimant: the AI agent
on duty, which channels it may use, and how many contacts it started in each queue in the last
hour. Read on the outreach worker for every assessment, so cached for a few seconds: the
hourly cap may run over by the contacts of those seconds, no more."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import agent_store, ai_conversations
from config.settings import Settings
from schemas.ai import AI_TASK_QUEUE, AiAvailability

CACHE_SECONDS = 5.0
NO_AI_AGENT = "no AI agent on duty (no model configured, or the AI worker is stopped)"


def ai_presence(settings: Settings) -> AiPresence | None:
    """The AI's presence as an outreach worker sees it. None where no model is configured:
    the AI worker cannot run without one, so every contact is a person's."""
    if not settings.ai_configured:
        return None
    return AiPresence(
        voice=settings.ai_voice_enabled and settings.twilio_enabled,
        sms=settings.ai_sms_enabled,
        task_queue=settings.ai_task_queue,
    )


class AiPresence:
    def __init__(
        self,
        *,
        voice: bool,
        sms: bool,
        task_queue: str = AI_TASK_QUEUE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._voice, self._sms, self._task_queue = voice, sms, task_queue
        self._cache_seconds, self._clock = cache_seconds, clock
        self._cached: tuple[float, AiAvailability] | None = None

    async def current(self, conn: AsyncConnection, now: datetime) -> AiAvailability:
        if self._cached is not None and self._clock() - self._cached[0] < self._cache_seconds:
            return self._cached[1]
        available = await self._read(conn, now)
        self._cached = (self._clock(), available)
        return available

    async def _read(self, conn: AsyncConnection, now: datetime) -> AiAvailability:
        if not (self._voice or self._sms):
            return AiAvailability(unavailable_reason="AI calls and texts are switched off")
        on_duty = await agent_store.ai_agents_on_duty(conn)
        if not on_duty:
            return AiAvailability(unavailable_reason=NO_AI_AGENT)
        return AiAvailability(
            agent_id=on_duty[0],
            voice_possible=self._voice,
            sms_possible=self._sms,
            started_last_hour=await ai_conversations.started_last_hour(conn, now),
            task_queue=self._task_queue,
        )
