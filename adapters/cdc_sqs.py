"""The SQS CDC source: AWS DMS change records delivered to an SQS queue (production).

Each message holds one DMS record in its JSON format:

    {"data": {...the row...},
     "before-image": {...the row before an update...},   # only with BeforeImageSettings
     "metadata": {"operation": "insert|update|delete|load", "record-type": "data",
                  "table-name": "users", "schema-name": "rmc", "timestamp": "...",
                  "transaction-id": 1234, "transaction-record-id": 7}}

Messages are received with long polling in batches of up to 10. A message is deleted only
after the consumer delivered its events (or kept it as a dead letter); until then SQS
redelivers it after the visibility timeout, and the repeated events are ignored by id.
`parse_dms` is pure: a message it cannot read raises a `ChangeError` with the reason
(truncated JSON, a missing field, an unknown operation).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from structlog import get_logger

from adapters.cdc_source import Rejected, SourceItem
from adapters.cdc_store import CdcStore
from adapters.retry_policy import retrying
from domain.change_events import ChangeError
from schemas.cdc import CdcSourceName, Operation, RowChange

log = get_logger(__name__)

BATCH = 10  # SQS's most per receive and per delete batch
_TRUNCATION_HINTS = (
    "Unterminated string",
    "Expecting value",
    "Expecting ',' delimiter",
    "Expecting ':' delimiter",
    "Expecting property name",
)


def _is_sqs_error(error: BaseException) -> bool:
    return isinstance(error, BotoCoreError | ClientError | OSError)


class MalformedMessage(ChangeError):
    """The message is not a DMS record the dialler can read."""


def parse_dms(body: str, message_id: str = "") -> RowChange | None:
    """One DMS record as a RowChange; None for a control record (table DDL and the like)."""
    try:
        record = json.loads(body)
    except json.JSONDecodeError as error:
        # an unterminated string reports where it started; the others where the text ended
        ends_early = error.pos >= len(body.rstrip()) or error.msg.startswith("Unterminated")
        if ends_early and error.msg.startswith(_TRUNCATION_HINTS):
            raise MalformedMessage(
                f"truncated message: the JSON ends early at character {error.pos} ({error.msg})"
            ) from None
        raise MalformedMessage(
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(record, dict):
        raise MalformedMessage(
            f"malformed DMS record: a JSON {type(record).__name__}, not an object"
        )
    metadata = record.get("metadata")
    if not isinstance(metadata, dict):
        raise MalformedMessage("malformed DMS record: 'metadata' is missing or not an object")
    if metadata.get("record-type", "data") == "control":
        return None
    data = record.get("data")
    if not isinstance(data, dict):
        raise MalformedMessage("malformed DMS record: 'data' is missing or not an object")
    operation_name = metadata.get("operation")
    try:
        operation = Operation(str(operation_name).lower())
    except ValueError:
        raise MalformedMessage(
            f"malformed DMS record: unknown operation {operation_name!r}"
        ) from None
    table = metadata.get("table-name")
    if not isinstance(table, str) or not table:
        raise MalformedMessage("malformed DMS record: 'metadata.table-name' is missing")
    schema = metadata.get("schema-name")
    committed_at = _timestamp(metadata.get("timestamp"))
    before_image = record.get("before-image")
    if before_image is not None and not isinstance(before_image, dict):
        raise MalformedMessage("malformed DMS record: 'before-image' is not an object")
    before, after = _images(operation, data, before_image)
    return RowChange(
        source=CdcSourceName.SQS.value,
        table=table,
        operation=operation,
        before=before,
        after=after,
        committed_at=committed_at,
        position=_position(metadata, operation, table, data, before_image, message_id),
        schema=str(schema) if schema is not None else None,
    )


def _images(
    operation: Operation, data: dict[str, Any], before_image: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if operation is Operation.DELETE:
        return data, None  # DMS puts the deleted row in `data`
    if operation is Operation.UPDATE:
        return before_image, data
    return None, data


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise MalformedMessage("malformed DMS record: 'metadata.timestamp' is missing")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MalformedMessage(
            f"malformed DMS record: 'metadata.timestamp' is not a time: {value[:40]!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _position(
    metadata: dict[str, Any],
    operation: Operation,
    table: str,
    data: dict[str, Any],
    before_image: dict[str, Any] | None,
    message_id: str,
) -> str:
    """Stable across redeliveries: the DMS transaction and record when DMS gives them, else
    the transaction, commit time and a digest of the record's content."""
    transaction = metadata.get("transaction-id")
    record_id = metadata.get("transaction-record-id")
    if transaction is not None and record_id is not None:
        return f"{transaction}.{record_id}"
    content = json.dumps(
        [operation.value, table, data, before_image], sort_keys=True, default=str
    ).encode()
    digest = hashlib.sha256(content).hexdigest()[:16]
    prefix = f"{transaction}" if transaction is not None else f"load-{message_id[:36]}"
    return f"{prefix}.{metadata.get('timestamp')}.{digest}"


class SqsSource:
    name = CdcSourceName.SQS.value
    ordered_acks = False

    def __init__(
        self,
        client: Any,  # an aioboto3 SQS client, entered by the caller
        queue_url: str,
        store: CdcStore,
        *,
        wait_seconds: int = 20,
        visibility_timeout: int = 120,
        flush_every: float = 0.05,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._store = store
        self._wait = wait_seconds
        self._visibility = visibility_timeout
        self._flush_every = flush_every
        self._on_error = on_error
        self._to_delete: list[tuple[str, str]] = []  # (message id, receipt handle)
        self._deleted_events = 0
        self._last: dict[str, str] = {}
        self._saved: dict[str, str] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def position(self) -> str | None:
        return self._last.get("message_id")

    async def start(self) -> None:
        stored = await self._store.load_position(self.name)
        if stored:
            self._last = {str(k): str(v) for k, v in stored.items()}
            self._saved = dict(self._last)
        self._flusher = asyncio.create_task(self._flush_loop())
        log.info("sqs source started", queue=self._queue_url)

    async def items(self) -> AsyncIterator[SourceItem]:
        while True:
            for message in (await self._receive()).get("Messages", []):
                yield self._item(message)

    async def _receive(self) -> dict[str, Any]:
        """One long poll; SQS or the network failing is waited out (the backoff starts over
        with each poll)."""
        polls = retrying(
            "sqs receive", retryable=_is_sqs_error, first_wait=0.5, on_retry=self._on_error
        )
        async for attempt in polls:
            with attempt:
                response: dict[str, Any] = await self._client.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=BATCH,
                    WaitTimeSeconds=self._wait,
                    VisibilityTimeout=self._visibility,
                )
        return response

    def _item(self, message: dict[str, Any]) -> SourceItem:
        body = str(message.get("Body", ""))
        message_id = str(message.get("MessageId", ""))
        receipt = str(message["ReceiptHandle"])
        changes: list[RowChange] = []
        rejected: list[Rejected] = []
        try:
            change = parse_dms(body, message_id)
            if change is not None:
                changes.append(change)
        except ChangeError as error:
            rejected.append(Rejected(raw_payload=body, reason=error.reason))

        async def ack(events: int) -> None:
            await self._delete(message_id, receipt, events, changes)

        return SourceItem(changes=changes, ack=ack, rejected=rejected, raw_payload=body)

    async def _delete(
        self, message_id: str, receipt: str, events: int, changes: list[RowChange]
    ) -> None:
        self._to_delete.append((message_id, receipt))
        self._deleted_events += events
        if changes:
            self._last = {
                "message_id": message_id,
                "committed_at": changes[-1].committed_at.isoformat(),
            }
        if len(self._to_delete) >= BATCH:
            await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush()
            except Exception as error:  # PostgreSQL away: the deletes went; retry the position
                self._error(f"sqs position not saved: {type(error).__name__}: {error}")

    async def flush(self) -> None:
        async with self._lock:
            while self._to_delete:
                batch, self._to_delete = self._to_delete[:BATCH], self._to_delete[BATCH:]
                try:
                    response = await self._client.delete_message_batch(
                        QueueUrl=self._queue_url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": receipt}
                            for n, (_, receipt) in enumerate(batch)
                        ],
                    )
                except (BotoCoreError, ClientError, OSError) as error:
                    # not deleted: SQS redelivers them later and their events are ignored by id
                    self._error(f"sqs delete: {type(error).__name__}: {error}")
                    continue
                for failed in response.get("Failed", []):
                    self._error(f"sqs delete failed: {failed.get('Code')}: {failed.get('Message')}")
            events = self._deleted_events
            if events or self._last != self._saved:
                await self._store.save_position(self.name, dict(self._last), applied=events)
                self._deleted_events -= events
                self._saved = dict(self._last)

    def _error(self, message: str) -> None:
        log.warning("sqs source error", error=message)
        if self._on_error is not None:
            self._on_error(message)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
