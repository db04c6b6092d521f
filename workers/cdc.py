"""The CDC worker: row changes of the main app become signals to the claimants' workflows.

    source (binlog thread | SQS long poll)
      └─ dispatcher: translate each row change (domain.change_events), resolve claim owners,
         split the events by claimant into N lanes (user_id mod N)
           └─ lane: signal-with-start each event in order, then drop the claimant's cached
              context; a lane works one claimant's events at a time, lanes run concurrently
      └─ tracker: an item (binlog transaction, SQS message) is committed (GTID persisted,
         message deleted) only once every event made from it was delivered; binlog items in
         source order, so the stored position never passes an undelivered event

Delivery is at least once; workflows ignore repeated event ids. Queues are bounded: a full
lane stops the dispatcher, which stops reading the source (the binlog thread waits, SQS is
not polled). Anything that cannot be parsed or applied is kept in `cdc_dead_letters` with
its raw payload and the reason, and the stream goes on. Failures that pass (Temporal,
PostgreSQL or the replica away) are retried with backoff (`adapters.retry_policy`, tenacity),
holding the stream where it is.
Metrics go to Redis once a second (`adapters.cdc_metrics`).

Conversions (issue 11): the dispatcher hands the conversions among an item's events
(`domain.attribution.conversions_in`: signatures added, requirements completed) to
`attribute` (`attribution_in_force`: the attribution window of the rules in force) in ONE
call per item that has any,
before the item's events go to the lanes, so the item is not committed until they are
kept. The dialler DB away is waited out like every other write here; anything else (a
statement the database refuses, a bug) makes a dead letter of the row changes concerned
and the events are delivered all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aioboto3
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio.client import Client

from adapters.cdc_binlog import BinlogConnection, BinlogSource, server_position
from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_metrics import CdcMetrics, publish
from adapters.cdc_source import ChangeSource, SourceItem
from adapters.cdc_sqs import SqsSource
from adapters.cdc_store import CdcStore
from adapters.context_cache import ContextCache
from adapters.conversions import attribute_batch
from adapters.databases import dialler_engine, replica_engine
from adapters.redis_client import connect_redis
from adapters.retry_policy import is_database_error, retrying
from adapters.rules_file import load_rules_file
from adapters.rules_source import RulesSource
from adapters.temporal import connect_temporal
from config.settings import CdcSource, Settings
from domain.attribution import Conversion, conversions_in
from domain.change_events import (
    ChangeError,
    Lookups,
    encode_row_change,
    learned,
    needs,
    translate,
)
from schemas.cdc import RowChange
from schemas.outreach import ChangeEvent
from workflows.outreach_client import OutreachClient, is_transient

log = get_logger(__name__)

T = TypeVar("T")

Deliver = Callable[[ChangeEvent], Awaitable[None]]
Attribute = Callable[[Sequence[Conversion]], Awaitable[int]]
MAX_ITEMS_IN_FLIGHT = 10_000
METRICS_EVERY = 1.0
DRAIN_SECONDS = 10.0


@dataclass
class _Entry:
    item: SourceItem
    pending: int = 0
    sealed: bool = False
    events: int = 0


def _passing(error: BaseException) -> bool:
    """A failure that passes (the dialler DB away, a dropped connection): wait it out. A
    statement the database refuses (bad data, a constraint) would fail every time."""
    if isinstance(error, OSError | OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class ItemTracker:
    """Items in flight and which may be committed. Ordered: an item is released only after
    every earlier one (a binlog position covers all before it); unordered: as it finishes.
    Released items go to `release`, in the order they may be committed."""

    def __init__(self, ordered: bool, release: Callable[[SourceItem, int], None]) -> None:
        self._ordered = ordered
        self._release = release
        self._entries: dict[int, _Entry] = {}
        self._order: deque[int] = deque()
        self._next = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def in_flight(self) -> int:
        return len(self._entries)

    def open(self, item: SourceItem) -> int:
        seq = self._next
        self._next += 1
        self._entries[seq] = _Entry(item)
        self._order.append(seq)
        if len(self._entries) >= MAX_ITEMS_IN_FLIGHT:
            self._room.clear()
        return seq

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def add(self, seq: int) -> None:
        self._entries[seq].pending += 1

    def seal(self, seq: int) -> None:
        self._entries[seq].sealed = True
        self._settle(seq)

    def done(self, seq: int, events: int) -> None:
        entry = self._entries[seq]
        entry.pending -= 1
        entry.events += events
        self._settle(seq)

    def _finished(self, seq: int) -> bool:
        entry = self._entries[seq]
        return entry.sealed and entry.pending == 0

    def _settle(self, seq: int) -> None:
        if self._ordered:
            while self._order and self._finished(self._order[0]):
                self._pop(self._order.popleft())
        elif self._finished(seq):
            self._order.remove(seq)
            self._pop(seq)
        if len(self._entries) < MAX_ITEMS_IN_FLIGHT:
            self._room.set()

    def _pop(self, seq: int) -> None:
        entry = self._entries.pop(seq)
        self._release(entry.item, entry.events)


@dataclass
class _Unit:
    """The events of one item for one claimant: delivered in order by the claimant's lane."""

    seq: int
    user_id: int
    committed_at: datetime
    change: RowChange
    message: str | None  # the source's raw message (SQS), if it has one
    events: list[ChangeEvent] = field(default_factory=list)

    def raw_payload(self) -> str:
        """What a dead letter keeps: the message as received, or the row change as JSON."""
        return self.message if self.message is not None else encode_row_change(self.change)


class CdcConsumer:
    def __init__(
        self,
        source: ChangeSource,
        *,
        deliver: Deliver,
        store: CdcStore,
        lookups: ReplicaLookups,
        metrics: CdcMetrics,
        cache: ContextCache | None = None,
        redis: Redis | None = None,
        lanes: int = 16,
        lane_depth: int = 100,
        drain_seconds: float = DRAIN_SECONDS,
        attribute: Attribute | None = None,
    ) -> None:
        self._source = source
        self._deliver = deliver
        self._attribute = attribute
        self._store = store
        self._lookups = lookups
        self.metrics = metrics
        self._cache = cache
        self._redis = redis
        self._lanes: list[asyncio.Queue[_Unit]] = [
            asyncio.Queue(maxsize=lane_depth) for _ in range(lanes)
        ]
        self._acks: asyncio.Queue[tuple[SourceItem, int]] = asyncio.Queue()
        self._tracker = ItemTracker(source.ordered_acks, self._release)
        self._drain_seconds = drain_seconds

    def _release(self, item: SourceItem, events: int) -> None:
        self._acks.put_nowait((item, events))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain what is in flight (for a short while) and
        commit what was delivered."""
        lanes = [
            asyncio.create_task(self._lane(q), name=f"cdc-lane-{n}")
            for n, q in enumerate(self._lanes)
        ]
        acker = asyncio.create_task(self._acker(), name="cdc-acker")
        reporter = asyncio.create_task(self._report(), name="cdc-metrics")
        dispatcher = asyncio.create_task(self._dispatch_all(), name="cdc-dispatcher")
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([dispatcher, stopper], return_when=asyncio.FIRST_COMPLETED)
            if dispatcher in done:
                dispatcher.result()  # the source failed: raise it
        finally:
            stopper.cancel()
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await dispatcher
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(q.join() for q in self._lanes)), self._drain_seconds
                )
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await self._drain_acks()
            acker.cancel()
            await asyncio.gather(acker, return_exceptions=True)
            await self._source.close()
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            await self._publish()

    # --- dispatching ---------------------------------------------------------------------------

    async def _dispatch_all(self) -> None:
        async for item in self._source.items():
            await self._tracker.wait_for_room()
            await self.dispatch(item)

    async def dispatch(self, item: SourceItem) -> None:
        seq = self._tracker.open(item)
        for rejected in item.rejected:
            await self._dead_letter(rejected.raw_payload, rejected.reason)
        units: dict[int, _Unit] = {}
        converting: list[tuple[ChangeEvent, RowChange]] = []
        for change in item.changes:
            self.metrics.changes_read += 1
            try:
                self._lookups.learn(learned(change))
                resolved = await self._resolve(change)
                translation = translate(change, resolved)
            except ChangeError as error:
                raw = item.raw_payload or encode_row_change(change)
                await self._dead_letter(raw, error.reason)
                continue
            for event in translation.events:
                self._unit(units, seq, event.user_id, change, item).events.append(event)
                if self._attribute is not None:
                    converting.append((event, change))
            for user_id in translation.touched_user_ids:
                self._unit(units, seq, user_id, change, item)
        if converting:
            await self._attribute_conversions(converting, item)
        for unit in units.values():
            self._tracker.add(seq)
            await self._lanes[unit.user_id % len(self._lanes)].put(unit)
        self._tracker.seal(seq)

    async def _attribute_conversions(
        self, events: list[tuple[ChangeEvent, RowChange]], item: SourceItem
    ) -> None:
        """Keep the item's conversions, attributed (one call). The database away is waited
        out; any other failure becomes a dead letter of the row changes concerned (the
        events are delivered all the same)."""
        assert self._attribute is not None
        attribute = self._attribute
        conversions = conversions_in(event for event, _ in events)
        if not conversions:
            return
        try:
            async for attempt in retrying(
                "attribution", retryable=_passing, first_wait=0.2, on_retry=self.metrics.error
            ):
                with attempt:
                    await attribute(conversions)
        except Exception as error:  # a failure the same batch would always meet
            reason = f"attribution failed: {type(error).__name__}: {error}"
            if item.raw_payload is not None:  # an SQS message: the message as received
                await self._dead_letter(item.raw_payload, reason)
                return
            converting = {c.event_id for c in conversions}
            changes = {id(c): c for e, c in events if e.event_id in converting}
            for change in changes.values():
                await self._dead_letter(encode_row_change(change), reason)

    async def _resolve(self, change: RowChange) -> Lookups:
        wanted = needs(change)
        resolved: Lookups = await self._retrying(
            "replica lookup", lambda: self._lookups.resolve(wanted)
        )
        return resolved

    @staticmethod
    def _unit(
        units: dict[int, _Unit], seq: int, user_id: int, change: RowChange, item: SourceItem
    ) -> _Unit:
        unit = units.get(user_id)
        if unit is None:
            unit = _Unit(seq, user_id, change.committed_at, change, item.raw_payload)
            units[user_id] = unit
        unit.committed_at = max(unit.committed_at, change.committed_at)
        return unit

    # --- lanes -------------------------------------------------------------------------------

    async def _lane(self, queue: asyncio.Queue[_Unit]) -> None:
        while True:
            unit = await queue.get()
            delivered = 0
            try:
                for event in unit.events:
                    delivered += await self._deliver_one(event, unit)
                if self._cache is not None:
                    await self._invalidate(unit.user_id)
                self.metrics.applied(delivered, unit.committed_at)
                self._tracker.done(unit.seq, delivered)
            finally:
                queue.task_done()

    async def _deliver_one(self, event: ChangeEvent, unit: _Unit) -> int:
        """Signal one event: Temporal away or overloaded is waited out; an error the same
        signal would always meet makes a dead letter (1 delivered, 0 not)."""
        what = f"signal {event.kind.value} to claimant {event.user_id}"
        try:
            async for attempt in retrying(
                what, retryable=is_transient, first_wait=0.2, on_retry=self.metrics.error
            ):
                with attempt:
                    await self._deliver(event)
        except Exception as error:  # not transient (cancellation is not an Exception)
            message = f"{what}: {type(error).__name__}: {error}"
            await self._dead_letter(unit.raw_payload(), f"not applied: {message}")
            return 0
        return 1

    async def _invalidate(self, user_id: int) -> None:
        assert self._cache is not None
        try:
            self.metrics.cache_invalidations += await self._cache.invalidate([user_id])
        except (RedisError, OSError) as error:  # the key expires by itself within its TTL
            self.metrics.error(f"cache invalidation: {type(error).__name__}: {error}")

    # --- dead letters, acks, metrics -------------------------------------------------------------

    async def _dead_letter(self, raw_payload: str, reason: str) -> None:
        await self._retrying(
            "dead letter",
            lambda: self._store.add_dead_letter(self._source.name, raw_payload, reason),
        )
        self.metrics.dead_letter()
        log.warning("dead letter", source=self._source.name, reason=reason)

    async def _retrying(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Retry an operation on the dialler DB or the replica until it succeeds."""
        async for attempt in retrying(
            what, retryable=is_database_error, first_wait=0.2, on_retry=self.metrics.error
        ):
            with attempt:
                result = await operation()
        return result

    async def _acker(self) -> None:
        while True:
            item, events = await self._acks.get()
            await self._ack(item, events)

    async def _drain_acks(self) -> None:
        while not self._acks.empty():
            item, events = self._acks.get_nowait()
            await self._ack(item, events)

    async def _ack(self, item: SourceItem, events: int) -> None:
        try:
            await item.ack(events)
        except Exception as error:  # not committed: the item comes again, its events are ignored
            self.metrics.error(f"commit: {type(error).__name__}: {error}")

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(METRICS_EVERY)
            await self._publish()

    async def _publish(self) -> None:
        self.metrics.in_flight = self._tracker.in_flight
        self.metrics.position = self._source.position()
        if self._redis is None:
            return
        try:
            await publish(self._redis, self.metrics)
        except (RedisError, OSError) as error:
            log.warning("metrics not published", error=f"{type(error).__name__}: {error}")


# --- the process ---------------------------------------------------------------------------------


def temporal_deliver(client: Client, task_queue: str) -> Deliver:
    return OutreachClient.over(client, task_queue).deliver


async def run_cdc_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`dialler sync start`: run the consumer with the configured source until SIGINT/SIGTERM
    (or `stop`)."""
    if settings.cdc_source is CdcSource.NONE:
        raise RuntimeError("CDC_SOURCE is none: there is no change stream to follow")
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if settings.cdc_source is CdcSource.BINLOG:  # a misconfigured server fails first, by name
        await server_position(BinlogConnection.from_url(settings.binlog_url))
    elif not settings.sqs_queue_url:
        raise RuntimeError("CDC_SOURCE is sqs but SQS_QUEUE_URL is empty")
    file_rules = load_rules_file(settings.rules_file)  # a bad file stops the worker first
    client = await connect_temporal(settings)
    dialler, replica = dialler_engine(settings, pool_size=4), replica_engine(settings, pool_size=4)
    rules = RulesSource(dialler, file_rules)
    redis = connect_redis(settings.redis_url)
    store = CdcStore(dialler)
    metrics = CdcMetrics(settings.cdc_source.value)
    cache = ContextCache(redis, replica, settings.context_cache_ttl_seconds)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(rules.listening(redis))
            source: ChangeSource
            if settings.cdc_source is CdcSource.BINLOG:
                binlog = BinlogSource(
                    BinlogConnection.from_url(settings.binlog_url),
                    store,
                    server_id=settings.cdc_server_id,
                    on_error=metrics.error,
                )
                await binlog.start()
                source = binlog
            else:
                sqs_client = await stack.enter_async_context(sqs_client_for(settings))
                sqs = SqsSource(
                    sqs_client,
                    settings.sqs_queue_url,
                    store,
                    wait_seconds=settings.sqs_wait_seconds,
                    visibility_timeout=settings.sqs_visibility_timeout,
                    on_error=metrics.error,
                )
                await sqs.start()
                source = sqs
            consumer = CdcConsumer(
                source,
                deliver=temporal_deliver(client, settings.temporal_task_queue),
                store=store,
                lookups=ReplicaLookups(replica),
                metrics=metrics,
                cache=cache,
                redis=redis,
                lanes=settings.cdc_lanes,
                lane_depth=settings.cdc_lane_depth,
                attribute=attribution_in_force(dialler, rules),
            )
            log.info("cdc worker started", source=source.name, lanes=settings.cdc_lanes)
            await consumer.run(stop)
            log.info("cdc worker stopped", events=metrics.events_applied)
    finally:
        await redis.aclose()
        await dialler.dispose()
        await replica.dispose()


def attribution_in_force(engine: AsyncEngine, rules: RulesSource) -> Attribute:
    """Attribute conversions with the attribution window of the rules in force when each
    batch arrives (a version saved on the rules page applies without a restart)."""

    async def attribute(conversions: Sequence[Conversion]) -> int:
        window = (await rules.current()).compliance.attribution_window
        return await attribute_batch(engine, conversions, window)

    return attribute


def sqs_client_for(settings: Settings) -> contextlib.AbstractAsyncContextManager[Any]:
    """An aioboto3 SQS client from settings (explicit keys, or the usual AWS chain)."""
    session = aioboto3.Session()
    secret = settings.aws_secret_access_key.get_secret_value()
    endpoint = str(settings.aws_endpoint_url).rstrip("/") if settings.aws_endpoint_url else None
    client: contextlib.AbstractAsyncContextManager[Any] = session.client(
        "sqs",
        region_name=settings.aws_region,
        endpoint_url=endpoint,
        aws_access_key_id=settings.aws_access_key_id or None,
        aws_secret_access_key=secret or None,
    )
    return client
