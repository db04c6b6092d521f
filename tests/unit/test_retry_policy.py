"""The CDC retry policy (adapters.retry_policy, tenacity): what is retried, how long it waits,
what it logs, and that a stop ends the binlog reader's wait. The waits are recorded through
tenacity's `sleep` hook (`Retrying.copy(sleep=...)`), never measured."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from structlog.testing import capture_logs
from temporalio.service import RPCError, RPCStatusCode

from adapters.cdc_binlog import _reconnectable, _Stopped
from adapters.cdc_metrics import CdcMetrics
from adapters.retry_policy import (
    MAX_WAIT,
    is_database_error,
    retry_reason,
    retrying,
    retrying_until,
)
from schemas.cdc import Operation, RowChange
from schemas.outreach import ChangeEvent, ChangeKind
from workers.cdc import CdcConsumer, _Unit
from workflows.outreach_client import is_transient

CLAIMANT_DATA = "Jane Doe +447700900123"


class Flaky:
    """Fails with each of `errors` in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def _unavailable() -> RPCError:
    return RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


async def test_a_retryable_error_is_retried_with_growing_waits_until_it_succeeds() -> None:
    reasons: list[str] = []
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    policy = retrying(
        "replica lookup", retryable=is_database_error, first_wait=0.2, on_retry=reasons.append
    ).copy(sleep=record)
    operation = Flaky(*(OSError("connection reset") for _ in range(9)))

    async for attempt in policy:
        with attempt:
            result = await operation()

    assert result == "done"
    assert operation.calls == 10
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, MAX_WAIT, MAX_WAIT, MAX_WAIT]
    assert reasons == ["replica lookup: OSError: connection reset"] * 9


async def test_a_permanent_error_is_raised_at_once_without_a_wait() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    policy = retrying("signal", retryable=is_transient, first_wait=0.2).copy(sleep=record)
    rejected = RPCError("bad payload", RPCStatusCode.INVALID_ARGUMENT, b"")
    operation = Flaky(_unavailable(), rejected)

    with pytest.raises(RPCError) as raised:
        async for attempt in policy:
            with attempt:
                await operation()

    assert raised.value is rejected  # the error itself, not a tenacity RetryError
    assert operation.calls == 2
    assert waits == [0.2]  # the transient failure waited; the permanent one did not


async def test_a_retry_is_logged_without_the_statement_parameters() -> None:
    async def record(_seconds: float) -> None:
        return None

    failure = IntegrityError(
        "INSERT INTO cdc_dead_letters (raw_payload) VALUES (%s)", (CLAIMANT_DATA,), Exception("x")
    )
    policy = retrying("dead letter", retryable=is_database_error, first_wait=0.2).copy(sleep=record)
    operation = Flaky(failure)
    with capture_logs() as logs:
        async for attempt in policy:
            with attempt:
                await operation()

    assert CLAIMANT_DATA in str(failure)  # SQLAlchemy's own message carries the row
    [entry] = [e for e in logs if e["event"] == "retrying"]
    assert entry["reason"] == "dead letter: IntegrityError (Exception)"
    assert entry["attempt"] == 1 and entry["retry_in"] == 0.2
    assert CLAIMANT_DATA not in repr(logs)


def test_reasons_name_the_failure_and_drop_credentials() -> None:
    lost = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    assert retry_reason(lost) == "OperationalError (ConnectionRefusedError)"
    assert retry_reason(_unavailable()) == "RPCError UNAVAILABLE: connection refused"
    leaked = OSError("cannot reach mysql://cdc:hunter2@replica:3306/rmc")
    assert "hunter2" not in retry_reason(leaked)


def test_the_binlog_reader_stops_waiting_as_soon_as_the_source_closes() -> None:
    """The wait is on the stop event: closing during a wait (here: an hour's wait) ends it
    at once, and no further retry starts once the event is set."""
    stopping = threading.Event()
    calls = 0

    def read() -> None:
        nonlocal calls
        calls += 1
        if stopping.is_set():
            raise _Stopped()
        raise OSError("binlog connection lost")

    policy = retrying_until(
        stopping,
        "binlog reader",
        retryable=_reconnectable,
        first_wait=3600.0,
        on_retry=lambda _reason: stopping.set(),  # the source closes as the wait begins
    )
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            policy(read)
        except BaseException as error:
            outcome.append(error)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(timeout=60)  # a safety net only: an ignored stop would wait an hour

    assert not reader.is_alive()
    assert calls == 2
    assert [type(error) for error in outcome] == [_Stopped]


def test_a_failure_while_stopping_is_not_retried() -> None:
    stopping = threading.Event()
    stopping.set()
    waits: list[float] = []
    policy = retrying_until(
        stopping, "binlog reader", retryable=_reconnectable, first_wait=0.5
    ).copy(sleep=waits.append)
    with pytest.raises(OSError, match="lost"):
        policy(AlwaysFailing(OSError("lost")))
    assert waits == []


class AlwaysFailing:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(self) -> None:
        raise self.error


# --- the CDC consumer's signal delivery ---------------------------------------------------------


class _Store:
    def __init__(self) -> None:
        self.dead_letters: list[str] = []

    async def add_dead_letter(self, source: str, raw_payload: str, reason: str) -> int:
        self.dead_letters.append(reason)
        return len(self.dead_letters)


class _Source:
    name = "binlog"
    ordered_acks = True


def _consumer(deliver: Flaky, store: _Store) -> CdcConsumer:
    async def send(_event: ChangeEvent) -> None:
        await deliver()

    return CdcConsumer(
        _Source(),  # type: ignore[arg-type]
        deliver=send,
        store=store,  # type: ignore[arg-type]
        lookups=None,  # type: ignore[arg-type]
        metrics=CdcMetrics("binlog"),
        lanes=1,
    )


def _unit() -> tuple[ChangeEvent, _Unit]:
    now = datetime(2026, 1, 5, 10, tzinfo=UTC)
    event = ChangeEvent("e-1", ChangeKind.REFRESH, 7, now)
    change = RowChange("binlog", "users", Operation.UPDATE, {"id": 7}, {"id": 7}, now, "0-1-1#0")
    return event, _Unit(1, 7, now, change, None, [event])


async def test_the_consumer_waits_out_temporal_being_away_then_delivers() -> None:
    store = _Store()
    deliver = Flaky(_unavailable())
    consumer = _consumer(deliver, store)
    event, unit = _unit()

    assert await consumer._deliver_one(event, unit) == 1
    assert deliver.calls == 2
    assert store.dead_letters == []
    assert consumer.metrics.errors == 1


async def test_the_consumer_dead_letters_a_signal_temporal_refuses_without_retrying() -> None:
    store = _Store()
    deliver = Flaky(RPCError("bad payload", RPCStatusCode.INVALID_ARGUMENT, b""))
    consumer = _consumer(deliver, store)
    event, unit = _unit()

    assert await consumer._deliver_one(event, unit) == 0
    assert deliver.calls == 1
    assert [reason.split(":")[0] for reason in store.dead_letters] == ["not applied"]


async def test_the_consumer_logs_a_database_retry_without_the_claimants_data() -> None:
    store = _Store()
    consumer = _consumer(Flaky(), store)
    failure = IntegrityError(
        "INSERT INTO cdc_dead_letters (raw_payload) VALUES (%s)", (CLAIMANT_DATA,), Exception("x")
    )
    operation = Flaky(failure)

    with capture_logs() as logs:
        assert await consumer._retrying("dead letter", operation) == "done"

    assert operation.calls == 2
    assert consumer.metrics.errors == 1
    assert consumer.metrics.last_error == "dead letter: IntegrityError (Exception)"
    assert [e["event"] for e in logs] == ["retrying"]
    assert CLAIMANT_DATA not in repr(logs)
