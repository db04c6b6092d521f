"""The binlog CDC source: MariaDB's row-based binlog, read with mysql-replication.

The reader is synchronous, so it runs in a thread and hands each transaction to asyncio
through a bounded queue: when the consumer falls behind, the queue fills and the thread
waits (backpressure). Every transaction becomes one `SourceItem`; its ack records the GTID
position after it, and a flusher persists the latest acked position in `cdc_offsets` a few
times a second. The consumer acks in source order and only after delivery, so the stored
position never passes an event that was not delivered; after a crash the few events after
it are delivered again and the workflows ignore them by event id.

MariaDB resumes by GTID (`auto_position`; a file/position start is ignored and the whole
binlog would replay). A first start with no stored position begins at the server's current
GTID position: history is the reconcile and catch-up schedules' job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomysql
import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent
from sqlalchemy.engine import make_url
from structlog import get_logger

from adapters.cdc_source import SourceItem
from adapters.cdc_store import CdcStore
from adapters.retry_policy import retrying_until
from domain.change_events import KNOWN_TABLES
from schemas.cdc import CdcSourceName, Operation, RowChange

log = get_logger(__name__)

GTID_STANDALONE = 0x01  # MariaDB GTID flag: a statement outside a transaction (DDL)
REQUIRED_SETTINGS = {
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}


class BinlogConfigError(RuntimeError):
    """The server cannot be read as a CDC source; the message names the setting to fix."""


class _Stopped(Exception):
    """The source is closing: the reader thread leaves."""


def _reconnectable(error: BaseException) -> bool:
    """Any failure of the connection or the stream: reconnect (with backoff) and resume
    from the last emitted transaction; but never when the source is closing."""
    return isinstance(error, Exception) and not isinstance(error, _Stopped)


@dataclass(frozen=True)
class BinlogConnection:
    host: str
    port: int
    user: str
    password: str
    schema: str

    @classmethod
    def from_url(cls, url: str) -> BinlogConnection:
        parsed = make_url(url)
        if not parsed.database:
            raise BinlogConfigError("the binlog URL must name the main app's database")
        return cls(
            host=parsed.host or "127.0.0.1",
            port=parsed.port or 3306,
            user=parsed.username or "root",
            password=parsed.password or "",
            schema=parsed.database,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "connect_timeout": 5,
            "read_timeout": 30,  # heartbeats arrive every few seconds; silence means trouble
        }

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.schema}"  # never the password


# --- GTID positions ------------------------------------------------------------------------------


@dataclass
class GtidPosition:
    """MariaDB's GTID position: the last GTID per replication domain ("0-1-42,1-2-7")."""

    last: dict[int, tuple[int, int]] = field(default_factory=dict)  # domain -> (server, seq)

    @classmethod
    def parse(cls, text: str | None) -> GtidPosition:
        position = cls()
        for part in (text or "").replace(" ", "").split(","):
            if not part:
                continue
            try:
                domain, server, seq = (int(x) for x in part.split("-"))
            except ValueError:
                raise BinlogConfigError(f"not a MariaDB GTID position: {text!r}") from None
            position.last[domain] = (server, seq)
        return position

    def is_new(self, domain: int, seq: int) -> bool:
        known = self.last.get(domain)
        return known is None or seq > known[1]

    def advance(self, domain: int, server: int, seq: int) -> None:
        if self.is_new(domain, seq):
            self.last[domain] = (server, seq)

    def render(self) -> str:
        return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(self.last.items()))


async def server_position(conn: BinlogConnection) -> tuple[str, bool]:
    """Check the server can be a CDC source and return (its GTID position, is MariaDB).
    Raises BinlogConfigError naming what to change."""
    try:
        db = await aiomysql.connect(
            host=conn.host,
            port=conn.port,
            user=conn.user,
            password=conn.password,
            connect_timeout=5,
        )
    except (OSError, aiomysql.Error) as error:
        raise BinlogConfigError(f"cannot connect to {conn.where()}: {error}") from None
    try:
        async with db.cursor() as cur:
            await cur.execute(
                "SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image, "
                "@@binlog_row_metadata, @@gtid_binlog_pos"
            )
            row = await cur.fetchone()
    except aiomysql.Error as error:
        message = f"{conn.where()}: cannot read the binlog settings: {error}"
        raise BinlogConfigError(message) from None
    finally:
        db.close()
    assert row is not None
    version, log_bin, *settings, gtid = row
    if "mariadb" not in str(version).lower():
        raise BinlogConfigError(
            f"{conn.where()} is MySQL {version}: the binlog source reads MariaDB (GTID); "
            "use CDC_SOURCE=sqs with AWS DMS for MySQL"
        )
    if not log_bin:
        raise BinlogConfigError(
            f"{conn.where()}: the binlog is off (log_bin=0); start MariaDB with --log-bin "
            "(see DESIGN.md section 3), or run `dialler dev`, which starts one with it on"
        )
    for (name, wanted), value in zip(REQUIRED_SETTINGS.items(), settings, strict=True):
        if str(value).upper() != wanted:
            message = f"{conn.where()}: {name} is {value}; the CDC reader needs {wanted}"
            raise BinlogConfigError(message)
    return str(gtid or ""), True


# --- rows ----------------------------------------------------------------------------------------


def rows_of(event: Any) -> list[tuple[Operation, dict[str, Any] | None, dict[str, Any] | None]]:
    """(operation, before, after) for each row of a rows event."""
    if isinstance(event, WriteRowsEvent):
        return [(Operation.INSERT, None, dict(r["values"])) for r in event.rows]
    if isinstance(event, UpdateRowsEvent):
        return [
            (Operation.UPDATE, dict(r["before_values"]), dict(r["after_values"]))
            for r in event.rows
        ]
    if isinstance(event, DeleteRowsEvent):
        return [(Operation.DELETE, dict(r["values"]), None) for r in event.rows]
    return []


@dataclass
class _Transaction:
    domain: int
    server: int
    seq: int
    standalone: bool
    changes: list[RowChange] = field(default_factory=list)

    @property
    def gtid(self) -> str:
        return f"{self.domain}-{self.server}-{self.seq}"


# --- the source ----------------------------------------------------------------------------------


class BinlogSource:
    name = CdcSourceName.BINLOG.value
    ordered_acks = True

    def __init__(
        self,
        conn: BinlogConnection,
        store: CdcStore,
        *,
        server_id: int,
        queue_depth: int = 256,
        flush_every: float = 0.2,
        heartbeat_seconds: float = 5.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._conn = conn
        self._store = store
        self._server_id = server_id
        self._queue: asyncio.Queue[SourceItem] = asyncio.Queue(maxsize=queue_depth)
        self._flush_every = flush_every
        self._heartbeat = heartbeat_seconds
        self._on_error = on_error
        self._stopping = threading.Event()
        self._connections: list[pymysql.connections.Connection] = []
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acked: str | None = None
        self._acked_events = 0
        self._saved: str | None = None
        self._flusher: asyncio.Task[None] | None = None

    def position(self) -> str | None:
        return self._acked

    async def start(self) -> str:
        """Check the server, find where to resume, start the reader thread. Returns the
        position it resumes from."""
        current, _ = await server_position(self._conn)
        stored = await self._store.load_position(self.name)
        start = str(stored["gtid"]) if stored and "gtid" in stored else current
        GtidPosition.parse(start)  # refuse a malformed stored position early
        self._acked = self._saved = start
        if not stored:
            await self._store.save_position(self.name, {"gtid": start})
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._read, args=(start,), name="cdc-binlog-reader", daemon=True
        )
        self._thread.start()
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("binlog source started", server=self._conn.where(), position=start or "start")
        return start

    async def items(self) -> AsyncIterator[SourceItem]:
        while True:
            yield await self._queue.get()

    async def _ack(self, position: str, events: int) -> None:
        self._acked = position
        self._acked_events += events

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush()
            except Exception as error:  # PostgreSQL away: keep the position, try again
                message = f"binlog position not saved: {type(error).__name__}: {error}"
                log.warning("binlog position not saved", error=message)
                if self._on_error is not None:
                    self._on_error(message)

    async def flush(self) -> None:
        position, events = self._acked, self._acked_events
        if position is None or (position == self._saved and events == 0):
            return
        await self._store.save_position(self.name, {"gtid": position}, applied=events)
        self._acked_events -= events
        self._saved = position

    async def close(self) -> None:
        self._stopping.set()
        # closing the socket makes the library log a reconnect attempt that will not happen
        logging.getLogger("pymysqlreplication").setLevel(logging.ERROR)
        with self._connections_lock:
            for connection in self._connections:
                sock = getattr(connection, "_sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

    # --- the reader thread ---------------------------------------------------------------------

    def _connect(self, **kwargs: Any) -> pymysql.connections.Connection:
        if self._stopping.is_set():
            raise _Stopped()
        connection = pymysql.connect(**kwargs)
        with self._connections_lock:
            self._connections = [c for c in self._connections if c.open] + [connection]
        return connection

    def _read(self, start: str) -> None:
        position = GtidPosition.parse(start)
        reconnecting = retrying_until(
            self._stopping,
            "binlog reader",
            retryable=_reconnectable,
            first_wait=0.5,
            on_retry=self._report_error,
        )
        try:
            reconnecting(self._stream_until_stopped, position)
        except Exception:  # _Stopped, or the last failure when the source stopped meanwhile
            if not self._stopping.is_set():
                raise

    def _report_error(self, message: str) -> None:
        """From the reader thread to the consumer's metrics, on the event loop's thread."""
        if self._on_error is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_error, message)

    def _stream_until_stopped(self, position: GtidPosition) -> None:
        """Follow the binlog from `position` (advanced as transactions are emitted, so a
        reconnect resumes after the last one) until the source stops."""
        while not self._stopping.is_set():
            stream = BinLogStreamReader(
                connection_settings=self._conn.settings(),
                server_id=self._server_id,
                is_mariadb=True,
                # An empty position (no GTID on the server yet when first started)
                # means the start of the binlog, so nothing written before this thread
                # connects is skipped; None would mean wherever the binlog ends then.
                auto_position=position.render(),
                blocking=True,
                resume_stream=True,
                only_events=[
                    MariadbGtidEvent,
                    XidEvent,
                    QueryEvent,
                    WriteRowsEvent,
                    UpdateRowsEvent,
                    DeleteRowsEvent,
                ],
                only_schemas=[self._conn.schema],
                only_tables=sorted(KNOWN_TABLES),
                slave_heartbeat=self._heartbeat,
                pymysql_wrapper=self._connect,
                enable_logging=False,
            )
            try:
                self._follow(stream, position)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()

    def _follow(self, stream: BinLogStreamReader, position: GtidPosition) -> None:
        current: _Transaction | None = None
        skipping = False
        for event in stream:
            if self._stopping.is_set():
                raise _Stopped()
            if isinstance(event, MariadbGtidEvent):
                # A transaction left open here was cut by a reconnect: the server resends it.
                skipping = not position.is_new(event.domain_id, event.gtid_seq_no)
                current = _Transaction(
                    event.domain_id,
                    event.server_id,
                    event.gtid_seq_no,
                    standalone=bool(event.flags & GTID_STANDALONE),
                )
            elif current is None or skipping:
                continue
            elif isinstance(event, XidEvent) or (
                isinstance(event, QueryEvent)
                and (current.standalone or event.query.strip().upper() == "COMMIT")
            ):
                position.advance(current.domain, current.server, current.seq)
                stream.auto_position = position.render()  # a reconnect resumes after it
                self._emit(current, position.render())
                current = None
            elif not isinstance(event, QueryEvent):
                committed = datetime.fromtimestamp(event.timestamp, UTC)
                for operation, before, after in rows_of(event):
                    current.changes.append(
                        RowChange(
                            source=self.name,
                            table=event.table,
                            operation=operation,
                            before=before,
                            after=after,
                            committed_at=committed,
                            position=f"{current.gtid}#{len(current.changes)}",
                            schema=event.schema,
                        )
                    )

    def _emit(self, transaction: _Transaction, position: str) -> None:
        """Hand the transaction to asyncio; waits while the queue is full."""
        assert self._loop is not None

        async def ack(events: int) -> None:
            await self._ack(position, events)

        item = SourceItem(changes=transaction.changes, ack=ack)
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=0.5)
                return
            except concurrent.futures.TimeoutError:
                if self._stopping.is_set():
                    future.cancel()
                    raise _Stopped() from None
