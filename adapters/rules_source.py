"""The rules in force, for processes that run for days: the newest saved version
(`adapters.rules_versions`), else the rules file in the repository ("version 0").

Every process holds one `RulesSource` instead of a fixed `DiallerRules`: the outreach worker
(its activities), the CDC worker (the attribution window) and each web process. Saving a
version (`services.rules_editing`) is then picked up without a restart:

- `current()` returns the rules in force. It asks the database for the newest version number
  (one index lookup) at most every `check_every` seconds, and at once after a notification.
- `newest()` asks now, whatever the time since the last check: a claimant's reload (the
  RULES_CHANGED event a save sends every claimant) must assess with the version just saved.
- `cached()` returns the rules last seen without any I/O, for code that cannot await (the web
  views read it; a hook before each request keeps it current).
- Notifications travel on Redis pub/sub: `announce_saved` publishes, `listen` (a background
  task) marks the source stale on each message. A lost message only delays the pick-up to the
  next periodic check; Redis away never stops a process.

A stored version that does not parse (the save path validates, so only a hand-edited row can)
or whose text does not match its checksum is logged and skipped: the previous rules stay in
force and the worker keeps running. An unreachable database keeps them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters.live import LiveBus, LiveEvent
from adapters.rules_versions import RulesVersion, StoredVersions, sha256_of
from domain.rules import DiallerRules, RulesError, parse_rules

log = get_logger(__name__)

CHECK_EVERY_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 5.0
# A quiet subscription wakes this often to see whether it should stop: redis-py can swallow a
# cancellation that lands while it reads, so stopping is a flag, and the cancel a courtesy.
LISTEN_WAIT_SECONDS = 1.0
STOP_WAIT_SECONDS = 3.0
RECONNECT_SECONDS = 5.0
# Redis pub/sub, namespaced per Redis database like the live events (adapters/live.py).
RULES_CHANNEL = "rules:saved"
RULES_SAVED = "rules-saved"
FILE_VERSION = 0


class VersionStore(Protocol):
    """The saved versions as the source reads them (`adapters.rules_versions.StoredVersions`)."""

    async def newest_id(self) -> int | None: ...

    async def version(self, version_id: int) -> RulesVersion | None: ...


@dataclass(frozen=True)
class RulesInForce:
    version: int  # FILE_VERSION: the rules file, no version saved
    rules: DiallerRules


@dataclass(frozen=True)
class RejectedVersion:
    """The newest saved version, when it cannot be put in force (say, a check added to
    `parse_rules` since it was saved): supervisors are shown why."""

    version: int
    problems: list[str]


async def announce_saved(redis: Redis, version: int) -> int:
    """Tell every process that version `version` was saved; how many listeners heard it (0
    with Redis away: they pick it up at their next periodic check)."""
    return await LiveBus(redis).publish(RULES_CHANNEL, LiveEvent(RULES_SAVED, {"version": version}))


def as_source(rules: RulesSource | DiallerRules) -> RulesSource:
    """A fixed source for fixed rules (benchmarks, tests, a one-off command)."""
    return rules if isinstance(rules, RulesSource) else RulesSource.fixed(rules)


class RulesSource:
    def __init__(
        self,
        versions: AsyncEngine | VersionStore | None,
        file_rules: DiallerRules,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`file_rules` are in force while no version is saved. Without `versions` (the
        dialler DB's engine, or a store standing in for it) the source is fixed:
        `file_rules` always (benchmarks, tests)."""
        self._versions = StoredVersions(versions) if isinstance(versions, AsyncEngine) else versions
        self._file = RulesInForce(FILE_VERSION, file_rules)
        self._in_force = self._file
        self._check_every = check_every
        self._clock = clock
        self._checked_at: float | None = None  # when the last check started
        self._stale = False  # a notification arrived since
        self._rejected: RejectedVersion | None = None
        self._lock = asyncio.Lock()
        self._checks_started = 0
        self._checks_done = 0
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    def fixed(cls, rules: DiallerRules) -> RulesSource:
        return cls(None, rules)

    # --- reading ---------------------------------------------------------------------------

    def cached(self) -> DiallerRules:
        return self._in_force.rules

    def cached_in_force(self) -> RulesInForce:
        return self._in_force

    @property
    def rejected(self) -> RejectedVersion | None:
        return self._rejected

    @property
    def file_rules(self) -> DiallerRules:
        """What is in force while no version is saved."""
        return self._file.rules

    async def current(self) -> DiallerRules:
        return (await self.in_force()).rules

    async def in_force(self) -> RulesInForce:
        """The rules in force, checking the newest version if the last check is older than
        `check_every` seconds or a notification arrived since."""
        if self._versions is not None and self._due():
            await self._refresh(wait_for_a_new_check=False)
        return self._in_force

    async def newest(self) -> RulesInForce:
        """The rules in force, by a check that starts after this call (callers arriving
        together share one)."""
        if self._versions is not None:
            await self._refresh(wait_for_a_new_check=True)
        return self._in_force

    def mark_stale(self) -> None:
        """The next `current()` checks the database (a notification arrived)."""
        self._stale = True

    def _due(self) -> bool:
        checked = self._checked_at
        return self._stale or checked is None or self._clock() - checked >= self._check_every

    async def _refresh(self, *, wait_for_a_new_check: bool) -> None:
        """One check at a time. A caller that only needs a recent answer shares the check in
        flight; one that needs a check started after it asked waits for the next one."""
        in_flight = self._checks_started > self._checks_done
        wanted = self._checks_started + (1 if wait_for_a_new_check or not in_flight else 0)
        async with self._lock:
            if self._checks_done >= wanted:
                return
            self._checks_started += 1
            number = self._checks_started
            self._stale = False
            self._checked_at = self._clock()
            try:
                await self._check()
            finally:
                self._checks_done = number

    async def _check(self) -> None:
        assert self._versions is not None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                newest = await self._versions.newest_id()
                if newest is None:
                    self._put_in_force(self._file)
                    return
                rejected = self._rejected.version if self._rejected else None
                if newest in (self._in_force.version, rejected):
                    return
                stored = await self._versions.version(newest)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning(
                "rules version check failed; the rules in force stay",
                version=self._in_force.version,
                error=type(error).__name__,
            )
            return
        if stored is None:
            return
        if sha256_of(stored.text) != stored.sha256:
            self._reject(newest, ["the text does not match its sha256"])
            return
        try:
            rules = parse_rules(stored.text)
        except RulesError as error:
            self._reject(newest, error.problems)
            return
        self._put_in_force(RulesInForce(newest, rules))

    def _put_in_force(self, in_force: RulesInForce) -> None:
        # A change is news; what the first check finds is the process's starting point.
        if in_force.version != self._in_force.version and self._checks_done > 0:
            log.info("rules in force", version=in_force.version, was=self._in_force.version)
        self._in_force = in_force
        self._rejected = None

    def _reject(self, version: int, problems: list[str]) -> None:
        self._rejected = RejectedVersion(version, problems)
        log.error(
            "stored rules version is invalid; the rules in force stay",
            rejected=version,
            version=self._in_force.version,
            problems=problems,
        )

    # --- notifications -------------------------------------------------------------------

    def listen_in_background(self, redis: Redis) -> None:
        """Start listening for saved versions (once; `close` stops it)."""
        if self._versions is not None and self._listener is None:
            self._stopping = False
            self._listener = asyncio.create_task(self._listen(redis), name="rules-listener")

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping = True
        listener.cancel()
        done, _ = await asyncio.wait([listener], timeout=STOP_WAIT_SECONDS)
        for task in done:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()

    @contextlib.asynccontextmanager
    async def listening(self, redis: Redis) -> AsyncIterator[RulesSource]:
        self.listen_in_background(redis)
        try:
            yield self
        finally:
            await self.close()

    async def _listen(self, redis: Redis) -> None:
        bus = LiveBus(redis)
        while not self._stopping:
            try:
                async with bus.subscribe([RULES_CHANNEL]) as subscription:
                    self.mark_stale()  # a save announced while not subscribed was missed
                    while not self._stopping:
                        event = await subscription.next(LISTEN_WAIT_SECONDS)
                        if event is not None and event.name == RULES_SAVED:
                            self.mark_stale()
            except (RedisError, OSError) as error:
                log.warning(
                    "rules notifications interrupted; periodic checks go on",
                    error=type(error).__name__,
                )
                await asyncio.sleep(RECONNECT_SECONDS)
