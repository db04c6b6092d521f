"""The owners' row records carry exactly their table's columns: a column added by a
migration and forgotten in the record would fail every read of the table at run time
(`Record(**row._mapping)`), so it fails here first."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Table

from adapters.call_log import Call
from adapters.task_store import CallTask
from schemas import dialler_db as db


@pytest.mark.parametrize(("record", "table"), [(CallTask, db.call_tasks), (Call, db.calls)])
def test_a_record_has_its_tables_columns(record: type, table: Table) -> None:
    fields = [f.name for f in dataclasses.fields(record)]
    assert fields == [column.name for column in table.c]
