"""Temporal client construction from settings (local dev server, self-hosted or Cloud)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from config.settings import Settings


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
        data_converter=pydantic_data_converter,
        connect_timeout=timedelta(seconds=5),
        identity="rmc-dialler",
    )
