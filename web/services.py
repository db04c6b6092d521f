"""The clients a web process uses, built once by `create_app` and reached through `services()`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from quart import current_app
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters.temporal import connect_temporal
from config.settings import Settings
from services.claims import ClaimService

EXTENSION_KEY = "dialler"


@dataclass
class TemporalConnection:
    """Connects on first use and keeps the client, so the app starts while Temporal is down
    and recovers by itself when it comes back."""

    settings: Settings
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def client(self) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await connect_temporal(self.settings)
        return self._client


@dataclass
class WebServices:
    settings: Settings
    dialler_db: AsyncEngine
    replica_db: AsyncEngine
    redis: Redis
    temporal: TemporalConnection

    async def claim_service(self) -> ClaimService:
        client = await self.temporal.client()
        return ClaimService(
            self.dialler_db, client, lease_seconds=self.settings.claim_lease_minutes * 60
        )

    async def close(self) -> None:
        await self.dialler_db.dispose()
        await self.replica_db.dispose()
        await self.redis.aclose()


def services() -> WebServices:
    value = current_app.extensions[EXTENSION_KEY]
    assert isinstance(value, WebServices)
    return value
