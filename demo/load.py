"""Bulk-load demo data into the local replica (MariaDB/MySQL) and the dialler DB (callbacks).

Replica rows go in as multi-row INSERTs of `BATCH_ROWS` rows, in one transaction, with
foreign-key and unique checks off for the session: the generator's ids are consistent by
construction, so per-row checks would only slow seed scale down.

The VALUES lists are rendered here rather than by the driver: pymysql's per-value escaping
was about 70% of the load time (seed scale: ~19 s through SQLAlchemy `insert()`, ~8.5 s
this way). Only the types the generator produces are accepted, and strings are still
escaped by the driver connection, which knows the server's quoting mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from demo.data import DEMO_CALLBACK_MARKER, DemoData, Row
from schemas import dialler_db
from schemas import replica as replica_schema

BATCH_ROWS = 5_000

# Parents first for inserting; reversed for truncating.
_REPLICA_TABLES = (
    replica_schema.lenders,
    replica_schema.users,
    replica_schema.claims,
    replica_schema.claim_requirements,
)


class ReplicaNotEmptyError(RuntimeError):
    """The replica already holds data and `replace` was not asked for."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    rows: dict[str, int]  # table name -> rows inserted
    seconds: float


async def replica_is_empty(replica: AsyncEngine) -> bool:
    """True when none of the replica tables has a row."""
    async with replica.connect() as conn:
        for table in _REPLICA_TABLES:
            found = await conn.execute(select(literal(1)).select_from(table).limit(1))
            if found.first() is not None:
                return False
    return True


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


def _batches(rows: Sequence[Row]) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def _sql_literals(escape_str: Callable[[str], str]) -> dict[type, Callable[[Any], str]]:
    """MySQL literals for the value types of demo rows; any other type is a KeyError."""

    def temporal(value: date | clock_time) -> str:
        return f"'{value.isoformat()}'"

    def stamp(value: datetime) -> str:
        if value.tzinfo is not None:
            raise ValueError("replica DATETIME values must be naive UTC")
        return f"'{value.isoformat(' ')}'"

    return {
        type(None): lambda _: "NULL",
        bool: lambda value: "1" if value else "0",
        int: str,
        Decimal: str,
        str: escape_str,  # quotes and escapes
        date: temporal,
        clock_time: temporal,
        datetime: stamp,
    }


def _insert_sql(
    table: Table, rows: Sequence[Row], literals: dict[type, Callable[[Any], str]]
) -> str:
    columns = list(rows[0])
    unknown = set(columns) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    values = itemgetter(*columns)
    tuples = ("(" + ",".join([literals[type(v)](v) for v in values(row)]) + ")" for row in rows)
    names = ", ".join(f"`{name}`" for name in columns)
    # Identifiers come from the table definition (checked above), values from `literals`.
    return f"INSERT INTO `{table.name}` ({names}) VALUES " + ",".join(tuples)  # noqa: S608


async def _load_replica(engine: AsyncEngine, data: DemoData, *, replace: bool) -> dict[str, int]:
    by_table = {
        "lenders": data.lenders,
        "users": data.users,
        "claims": data.claims,
        "claim_requirements": data.claim_requirements,
    }
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        try:
            if replace:
                # TRUNCATE (not DELETE): instant, resets AUTO_INCREMENT; allowed on referenced
                # tables because foreign_key_checks is off for this session.
                for table in reversed(_REPLICA_TABLES):
                    await conn.exec_driver_sql(f"TRUNCATE TABLE `{table.name}`")
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:
                raise RuntimeError("the replica connection has no driver connection")
            literals = _sql_literals(driver.escape)
            async with driver.cursor() as cursor:
                for table in _REPLICA_TABLES:
                    rows = by_table[table.name]
                    for batch in _batches(rows):
                        # No parameters: the cursor sends the statement as it is.
                        await cursor.execute(_insert_sql(table, batch, literals))
                    counts[table.name] = len(rows)
            await conn.commit()
        except BaseException:
            # Never hand a session with the checks switched off back to the pool.
            await conn.invalidate()
            raise
        await conn.exec_driver_sql("SET SESSION foreign_key_checks = 1, unique_checks = 1")
    return counts


async def _load_callbacks(engine: AsyncEngine, rows: list[Row], *, replace: bool) -> int:
    callbacks = dialler_db.callbacks
    async with engine.begin() as conn:
        if replace:
            # Only rows this loader wrote: agents' real callbacks stay.
            marked = callbacks.c.notes.startswith(DEMO_CALLBACK_MARKER, autoescape=True)
            await conn.execute(delete(callbacks).where(marked))
        for batch in _batches(rows):
            await conn.execute(insert(callbacks), list(batch))
        return len(rows)
