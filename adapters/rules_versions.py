"""The saved versions of the rules file (`rules_versions`): the one module that reads and
writes the table (migration 0010).

A version's id is its number; the newest saved version is the one in force (with none saved,
the rules file in the repository is: "version 0"). Versions are never changed or deleted:
going back to an older one is saving its text again, so the history says who did it and why.

- `save_version`: appends a version in the caller's transaction, serialised with any other
  save by an advisory lock, and only if the newest version is still the one the editor
  started from (`base_version`): two supervisors editing at once cannot overwrite each other
  unseen.
- `newest_id`: the newest version's number, one index lookup (`RulesSource` asks it every few
  seconds in every process).
- `newest`, `version`, `history`: what the rules page shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.agent_store import display_name_of
from schemas import dialler_db as db

_R = db.rules_versions.c
SAVE_LOCK = 0x7D5_0010  # pg_advisory_xact_lock key: one save at a time
NOTE_MAX_CHARS = 300  # the column's length


def sha256_of(rules_text: str) -> str:
    return hashlib.sha256(rules_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VersionSummary:
    """A version without its text, as the history lists it."""

    id: int
    sha256: str
    saved_by: int | None
    saved_by_name: str | None  # None: saved from the command line, or the agent was deleted
    note: str
    created_at: datetime


@dataclass(frozen=True)
class RulesVersion(VersionSummary):
    text: str


class StaleBase(Exception):
    """Another version was saved since the editor's base version; nothing was written."""

    def __init__(self, base_version: int, newest: int) -> None:
        super().__init__(
            f"version {newest} was saved after version {base_version}, the one you edited"
        )
        self.base_version = base_version
        self.newest = newest


_SUMMARY = (
    _R.id,
    _R.sha256,
    _R.saved_by,
    display_name_of(_R.saved_by).label("saved_by_name"),
    _R.note,
    _R.created_at,
)


def _summary(row: Any) -> VersionSummary:
    return VersionSummary(
        id=int(row.id),
        sha256=str(row.sha256),
        saved_by=None if row.saved_by is None else int(row.saved_by),
        saved_by_name=row.saved_by_name,
        note=str(row.note),
        created_at=row.created_at,
    )


def _version(row: Any) -> RulesVersion:
    return RulesVersion(**vars(_summary(row)), text=str(row.text))


async def newest_id(conn: AsyncConnection) -> int | None:
    """The newest version's number; None when none was ever saved (the file is in force)."""
    found = await conn.scalar(select(func.max(_R.id)))
    return None if found is None else int(found)


async def version(conn: AsyncConnection, version_id: int) -> RulesVersion | None:
    row = (await conn.execute(select(*_SUMMARY, _R.text).where(_R.id == version_id))).first()
    return None if row is None else _version(row)


async def newest(conn: AsyncConnection) -> RulesVersion | None:
    row = (await conn.execute(select(*_SUMMARY, _R.text).order_by(_R.id.desc()).limit(1))).first()
    return None if row is None else _version(row)


async def history(conn: AsyncConnection, *, limit: int = 100) -> list[VersionSummary]:
    """The newest `limit` versions, newest first, without their text."""
    rows = await conn.execute(select(*_SUMMARY).order_by(_R.id.desc()).limit(limit))
    return [_summary(row) for row in rows]


async def save_version(
    conn: AsyncConnection,
    rules_text: str,
    *,
    saved_by: int | None,
    note: str,
    base_version: int | None,
) -> RulesVersion:
    """Append a version in the caller's transaction (the caller validated the text). With
    `base_version` (0: the file), raises `StaleBase` when another version is newest by now;
    None saves whatever is newest (the command line's explicit `rules-save`)."""
    if len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"a note is at most {NOTE_MAX_CHARS} characters")
    await conn.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": SAVE_LOCK})
    if base_version is not None:
        current = await newest_id(conn) or 0
        if current != base_version:
            raise StaleBase(base_version, current)
    version_id = await conn.scalar(
        insert(db.rules_versions)
        .values(text=rules_text, sha256=sha256_of(rules_text), saved_by=saved_by, note=note)
        .returning(_R.id)
    )
    saved = await version(conn, int(version_id or 0))
    assert saved is not None  # inserted in this transaction
    return saved


class StoredVersions:
    """What `adapters.rules_source.RulesSource` reads, one short connection per call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def newest_id(self) -> int | None:
        async with self._engine.connect() as conn:
            return await newest_id(conn)

    async def version(self, version_id: int) -> RulesVersion | None:
        async with self._engine.connect() as conn:
            return await version(conn, version_id)
