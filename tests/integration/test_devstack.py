"""`dialler dev` end to end: the whole stack comes up on its own ports and databases, answers,
and stops cleanly on Ctrl-C; an unreachable service is named with how to start it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client

from adapters.local_mariadb import answers
from adapters.provisioning import drop_postgres_database
from config.settings import Settings
from tests.conftest import PG_HOST, free_port
from workers.devstack import PreflightError, prepare_data
from workers.schedules import RECONCILE_EVERY, RECONCILE_SCHEDULE_ID

DIALLER = str(Path(sys.executable).parent / "dialler")


@pytest.fixture
async def dev_env(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """`dialler dev` on its own ports and databases; its replica is the MariaDB with the
    binlog that `dialler dev` runs itself (LOCAL_REPLICA_PORT), with data under the
    temporary DEV_STATE_DIR."""
    suffix = f"dev_{os.getpid()}"
    replica_port = free_port()
    # No ENVIRONMENT: `dialler dev` is development by itself (anything else unsaid is production).
    env = {
        **{name: value for name, value in os.environ.items() if name != "ENVIRONMENT"},
        "DATABASE_URL": f"postgresql+asyncpg://postgres@{PG_HOST}/dialler_{suffix}",
        "REPLICA_DATABASE_URL": f"mysql+aiomysql://root@127.0.0.1:{replica_port}/rmc_{suffix}",
        "LOCAL_REPLICA_PORT": str(replica_port),
        "CDC_SOURCE": "binlog",
        "REDIS_URL": "redis://127.0.0.1:6379/14",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_UI_URL": f"http://127.0.0.1:{free_port()}",
        "WEB_PORT": str(free_port()),
        "DEV_STATE_DIR": str(tmp_path / "state"),
    }
    yield env
    await drop_postgres_database(env["DATABASE_URL"])
    # the MariaDB stopped with the stack; its data directory is large: remove it now
    await asyncio.to_thread(shutil.rmtree, tmp_path / "state" / "mariadb", True)


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while line := await stream.readline():
        seen.append(line.decode())
        if marker in seen[-1]:
            return
    raise AssertionError("dialler dev exited before it was ready:\n" + "".join(seen))


async def test_dev_brings_everything_up_and_stops_on_ctrl_c(dev_env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        DIALLER, "dev", "--seed-users", "300",
        env=dev_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []
    try:
        await asyncio.wait_for(
            _read_until(process.stdout, "Press Ctrl-C to stop everything.", output), 120
        )
        text = "".join(output)
        assert "Running in development mode" in text
        assert "Demo logins created" in text and "supervisor@demo.rmc" in text
        async with httpx.AsyncClient(timeout=10) as client:
            health = await client.get(f"http://127.0.0.1:{dev_env['WEB_PORT']}/api/health")
            ui = await client.get(dev_env["TEMPORAL_UI_URL"])
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        assert ui.status_code == 200
        assert await asyncio.to_thread(Path(dev_env["DEV_STATE_DIR"], "temporal.sqlite").exists)
        assert "outreach-worker is ready" in text
        temporal = await Client.connect(dev_env["TEMPORAL_ADDRESS"])
        schedule = await temporal.get_schedule_handle(RECONCILE_SCHEDULE_ID).describe()
        assert schedule.schedule.spec.intervals[0].every == RECONCILE_EVERY
        assert "reconcile triggered" in text
        assert "mariadb is ready" in text and "cdc-worker is ready" in text
        await _queues_filled(dev_env)
        # a change in the replica reaches the queue through the binlog and the CDC worker
        marker = await asyncio.create_subprocess_exec(
            DIALLER, "sync", "test", env=dev_env | {"ENVIRONMENT": "development"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        reported, _ = await asyncio.wait_for(marker.communicate(), 120)
        assert marker.returncode == 0, reported.decode()
        assert "queue reflected it in" in reported.decode()
        assert "restored in" in reported.decode()
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, "".join(output) + rest.decode()
    stopped = rest.decode()
    assert all(
        f"{name} stopped" in stopped
        for name in ("web", "cdc-worker", "outreach-worker", "temporal", "mariadb")
    )
    assert not await answers(int(dev_env["LOCAL_REPLICA_PORT"]))
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(f"http://127.0.0.1:{dev_env['WEB_PORT']}/api/health")


async def _queues_filled(env: dict[str, str]) -> None:
    """The first reconcile brings the demo claimants under workflows: tasks appear."""
    engine = create_async_engine(env["DATABASE_URL"])
    try:
        for _ in range(600):
            async with engine.connect() as conn:
                if await conn.scalar(text("SELECT count(*) FROM call_tasks")):
                    return
            await asyncio.sleep(0.5)
        raise AssertionError("no call task appeared after the first reconcile")
    finally:
        await engine.dispose()


async def test_unreachable_database_is_named_with_how_to_start_it(settings: Settings) -> None:
    port = free_port()
    broken = settings.model_copy(
        update={"database_url": f"postgresql+asyncpg://postgres:pw@127.0.0.1:{port}/dialler"}
    )
    with pytest.raises(PreflightError) as raised:
        await prepare_data(broken, seed_users=10)
    message = str(raised.value)
    assert (
        f"cannot reach PostgreSQL at postgresql+asyncpg://postgres:***@127.0.0.1:{port}" in message
    )
    assert "pg_ctlcluster" in message
    assert "pw@" not in message
