"""Load demo data: the claimants into the local replica (MariaDB/MySQL), their callbacks
into the dialler DB.

The replica rows go through `adapters.replica_reader.LocalReplicaWriter.bulk_load`, the one
writer of the replica tables (development and tests only: see its notes on speed). The
demo callbacks are marked (`DEMO_CALLBACK_MARKER` in their notes) so a reload removes only
rows this loader wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log
from adapters.replica_reader import LocalReplicaWriter, batches
from demo.data import DEMO_CALLBACK_MARKER, DemoData, Row


class ReplicaNotEmptyError(RuntimeError):
    """The replica already holds data and `replace` was not asked for."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    rows: dict[str, int]  # table name -> rows inserted
    seconds: float


async def replica_is_empty(replica: AsyncEngine) -> bool:
    """True when none of the replica tables has a row."""
    return await LocalReplicaWriter(replica).is_empty()


async def load_demo_data(
    replica: AsyncEngine, dialler: AsyncEngine, data: DemoData, *, replace: bool
) -> LoadReport:
    """Insert `data`; with `replace`, empty the replica and drop earlier demo callbacks first.

    Without `replace` a non-empty replica raises ReplicaNotEmptyError (ids would collide).
    """
    started = time.perf_counter()
    if not replace and not await replica_is_empty(replica):
        raise ReplicaNotEmptyError("the replica already holds data; load with replace=True")
    rows = await _load_replica(replica, data, replace=replace)
    rows["callbacks"] = await _load_callbacks(dialler, data.callbacks, replace=replace)
    return LoadReport(rows=rows, seconds=time.perf_counter() - started)


async def _load_replica(engine: AsyncEngine, data: DemoData, *, replace: bool) -> dict[str, int]:
    return await LocalReplicaWriter(engine).bulk_load(
        {
            "lenders": data.lenders,
            "users": data.users,
            "claims": data.claims,
            "claim_requirements": data.claim_requirements,
            "consents": data.consents,
        },
        replace=replace,
    )


async def _load_callbacks(engine: AsyncEngine, rows: list[Row], *, replace: bool) -> int:
    # Only rows this loader wrote are replaced: agents' real callbacks stay.
    await call_log.load_demo_callbacks(
        engine,
        batches(rows),
        replace_marked=DEMO_CALLBACK_MARKER if replace else None,
    )
    return len(rows)
