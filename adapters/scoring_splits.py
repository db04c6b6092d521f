"""Live splits of the score (`scoring_splits`, migration 0014): the one module that reads and
writes the table.

A split scores a share of claimants (`domain.scoring_split.arm_of`) with a candidate rules
version instead of the rules in force. At most one runs (`ended_at` NULL; a partial unique
index makes a second start fail even when two supervisors start at once). Splits are never
deleted: the funnel compares the arms of any split, running or ended.

- `start`, `end`: in the caller's transaction (with their audit entries).
- `running`, `split`, `history`: what the rules page, the funnel and the CLI show.
- `SplitSource`: the running split and its parsed rules as a worker's assessments need them,
  read at most every `check_every` seconds (like `adapters.rules_source` for the rules in
  force): one index lookup per worker every few seconds, nothing per claimant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import rules_versions
from adapters.agent_store import display_name_of
from domain.rules import DiallerRules, RulesError, parse_rules
from domain.scoring_split import SPLIT_CHECK_SECONDS, check_share
from schemas import dialler_db as db

log = get_logger(__name__)

_S = db.scoring_splits.c
NOTE_MAX_CHARS = 300  # the column's length
CHECK_EVERY_SECONDS = SPLIT_CHECK_SECONDS
CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Split:
    id: int
    rules_version_id: int  # the candidate rules
    share: float  # of claimants in the candidate arm
    note: str
    started_at: datetime
    started_by: int | None
    started_by_name: str | None  # None: from the command line, or the agent was deleted
    ended_at: datetime | None
    ended_by: int | None
    ended_by_name: str | None

    @property
    def running(self) -> bool:
        return self.ended_at is None


class SplitRunning(Exception):
    """A split is running already: end it before starting another."""

    def __init__(self, running: Split) -> None:
        super().__init__(f"split {running.id} is running: end it before starting another")
        self.running = running


_COLUMNS = (
    _S.id,
    _S.rules_version_id,
    _S.share,
    _S.note,
    _S.started_at,
    _S.started_by,
    display_name_of(_S.started_by).label("started_by_name"),
    _S.ended_at,
    _S.ended_by,
    display_name_of(_S.ended_by).label("ended_by_name"),
)


def _split(row: Any) -> Split:
    return Split(
        id=int(row.id),
        rules_version_id=int(row.rules_version_id),
        share=float(row.share),
        note=str(row.note),
        started_at=row.started_at,
        started_by=row.started_by,
        started_by_name=row.started_by_name,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        ended_by_name=row.ended_by_name,
    )


async def running(conn: AsyncConnection) -> Split | None:
    row = (await conn.execute(select(*_COLUMNS).where(_S.ended_at.is_(None)))).first()
    return None if row is None else _split(row)


async def split(conn: AsyncConnection, split_id: int) -> Split | None:
    row = (await conn.execute(select(*_COLUMNS).where(_S.id == split_id))).first()
    return None if row is None else _split(row)


async def history(conn: AsyncConnection, *, limit: int = 50) -> list[Split]:
    """The newest `limit` splits, newest first (the running one, if any, among them)."""
    rows = await conn.execute(select(*_COLUMNS).order_by(_S.id.desc()).limit(limit))
    return [_split(row) for row in rows]


async def start(
    conn: AsyncConnection,
    *,
    rules_version_id: int,
    share: float,
    note: str,
    started_by: int | None,
) -> Split:
    """Start a split in the caller's transaction; `SplitRunning` when one runs (the caller's
    transaction is then unusable if the insert itself collided: roll it back)."""
    check_share(share)
    if len(note) > NOTE_MAX_CHARS:
        raise ValueError(f"a note is at most {NOTE_MAX_CHARS} characters")
    already = await running(conn)
    if already is not None:
        raise SplitRunning(already)
    try:
        async with conn.begin_nested():
            split_id = await conn.scalar(
                insert(db.scoring_splits)
                .values(
                    rules_version_id=rules_version_id,
                    share=share,
                    note=note,
                    started_by=started_by,
                )
                .returning(_S.id)
            )
    except IntegrityError:
        # another start won the race between the check and the insert (the unique index)
        winner = await running(conn)
        if winner is None:
            raise
        raise SplitRunning(winner) from None
    started = await split(conn, int(split_id or 0))
    assert started is not None  # inserted in this transaction
    return started


async def end(conn: AsyncConnection, split_id: int, *, ended_by: int | None) -> Split | None:
    """End the split if it is running, in the caller's transaction; the ended split, or None
    when it is not running (ended already, or no such split)."""
    ended = await conn.scalar(
        update(db.scoring_splits)
        .where(_S.id == split_id, _S.ended_at.is_(None))
        .values(ended_at=func.now(), ended_by=ended_by)
        .returning(_S.id)
    )
    return None if ended is None else await split(conn, int(ended))


# --- the running split, as the outreach worker reads it -------------------------------------------


@dataclass(frozen=True)
class RunningSplit:
    id: int
    share: float
    rules_version_id: int
    rules: DiallerRules  # the candidate rules, parsed


class SplitSource:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._check_every = check_every
        self._clock = clock
        self._checked_at: float | None = None
        self._running: RunningSplit | None = None
        self._parsed: dict[int, DiallerRules | None] = {}  # version -> rules (None: invalid)
        self._lock = asyncio.Lock()

    async def current(self) -> RunningSplit | None:
        """The running split with its candidate rules, as checked at most `check_every`
        seconds ago. A candidate version that does not parse (only a hand-edited row can
        fail: starting a split parses it) is logged and no split is applied; an unreachable
        database keeps what was last seen."""
        if not self._due():
            return self._running
        # Callers arriving while a check runs wait for it (the check's start is recorded only
        # once it is done): none of them may assess with what was seen before it.
        async with self._lock:
            if self._due():  # not checked by whoever held the lock before
                started = self._clock()
                await self._check()
                self._checked_at = started
        return self._running

    def _due(self) -> bool:
        checked = self._checked_at
        return checked is None or self._clock() - checked >= self._check_every

    async def _check(self) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), self._engine.connect() as conn:
                found = await running(conn)
                if found is None:
                    self._running = None
                    return
                if found.rules_version_id not in self._parsed:
                    stored = await rules_versions.version(conn, found.rules_version_id)
                    self._parsed[found.rules_version_id] = _parsed(stored)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("scoring split check failed; the split as last seen stays",
                        error=type(error).__name__)  # fmt: skip
            return
        rules = self._parsed[found.rules_version_id]
        if rules is None:
            self._running = None
            return
        self._running = RunningSplit(found.id, found.share, found.rules_version_id, rules)


def _parsed(stored: rules_versions.RulesVersion | None) -> DiallerRules | None:
    if stored is None:
        return None
    problems: list[str]
    if rules_versions.sha256_of(stored.text) != stored.sha256:
        problems = ["the text does not match its sha256"]
    else:
        try:
            return parse_rules(stored.text)
        except RulesError as error:
            problems = error.problems
    log.error("scoring split's candidate rules are invalid; no split is applied",
              version=stored.id, problems=problems)  # fmt: skip
    return None
