"""Temporal client construction from settings (local dev server, self-hosted or Cloud)."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import TypeAdapter
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.service import TLSConfig

from config.settings import Settings
from schemas.search_attributes import cli_flags

# One pydantic TypeAdapter per message type for the whole process. The SDK builds a payload
# converter for every workflow run, and the stock pydantic converter keeps its adapters per
# converter, so each claimant's run rebuilt them: ~25 ms of CPU per run, measured by
# bench/workflow_throughput.py. Adapters are immutable, so sharing them is safe.
_shared_type_adapters = functools.lru_cache(maxsize=1024)(TypeAdapter)


class _SharedAdaptersJSONConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__()
        self._type_adapter = _shared_type_adapters


class DiallerPayloadConverter(CompositePayloadConverter):
    """Temporal's default converters with JSON handled by pydantic, so dataclasses with
    dates, times and enums travel typed."""

    def __init__(self) -> None:
        json = _SharedAdaptersJSONConverter()
        super().__init__(
            *(
                json if isinstance(converter, JSONPlainPayloadConverter) else converter
                for converter in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=DiallerPayloadConverter)


def _tls(settings: Settings) -> bool | TLSConfig:
    if settings.temporal_tls_cert_path and settings.temporal_tls_key_path:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert_path.read_bytes(),
            client_private_key=settings.temporal_tls_key_path.read_bytes(),
        )
    # An API key (Temporal Cloud) always travels over TLS.
    return settings.temporal_tls or settings.temporal_api_key is not None


async def connect_temporal(settings: Settings, *, lazy: bool = False) -> Client:
    """Connect to Temporal. `lazy` defers the network connection to the first call, so a
    web process can start (and report Temporal as down in its health) while Temporal is away."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=_tls(settings),
        lazy=lazy,
        # dataclasses with dates, times and enums travel typed
        data_converter=DATA_CONVERTER,
        connect_timeout=timedelta(seconds=5),
        identity="rmc-dialler",
    )


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


# The history service keeps 512 workflows' mutable state per shard by default, and the dev
# server has one shard: with thousands of claimants every change loaded its workflow's
# state from SQLite again. 50,000 covers the local and benchmark sizes.
DEV_SERVER_CACHED_WORKFLOWS = 50_000


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags for the dialler: the SQLite file in WAL mode (2.5x
    faster than the plain file on these machines), the history cache above, and the
    outreach search attributes."""
    return [
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--dynamic-config-value",
        f"history.cacheMaxSize={DEV_SERVER_CACHED_WORKFLOWS}",
        *cli_flags(),
    ]
