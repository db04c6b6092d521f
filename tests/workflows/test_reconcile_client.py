"""The door to ReconcileWorkflow maps Temporal being away to `ReconcileUnavailable` (the CLI
prints it and exits 1) instead of a traceback. A run that finishes is covered end to end by
`dialler queue refresh` in test_cli.py."""

from __future__ import annotations

import pytest
from temporalio.client import Client

from adapters.temporal import connect_temporal
from config.settings import Settings
from tests.conftest import free_port
from workflows.reconcile_client import ReconcileClient, ReconcileUnavailable


async def test_no_temporal_at_all_is_unavailable(settings: Settings) -> None:
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})

    async def connect() -> Client:
        return await connect_temporal(down)

    with pytest.raises(ReconcileUnavailable):
        await ReconcileClient(connect, "any", timeout=10.0).run_now()
