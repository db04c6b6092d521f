"""What a CDC source hands the consumer (`workers.cdc`): items in source order, each with its
row changes and a callback that commits it (binlog: the GTID is persisted; SQS: the message
is deleted) once everything in it has been delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from schemas.cdc import RowChange


@dataclass
class Rejected:
    """Something the source received but could not parse (a truncated or malformed message)."""

    raw_payload: str
    reason: str


@dataclass
class SourceItem:
    """One unit of the source: a binlog transaction, or one SQS message."""

    changes: list[RowChange]
    ack: Callable[[int], Awaitable[None]]  # called with the events delivered for this item
    rejected: list[Rejected] = field(default_factory=list)
    raw_payload: str | None = None  # the message as received (SQS); None: encode the change


class ChangeSource(Protocol):
    name: str
    # True: acks must come in source order (a position covers everything before it);
    # False: each item is committed on its own (SQS messages are deleted one by one).
    ordered_acks: bool

    def items(self) -> AsyncIterator[SourceItem]: ...

    def position(self) -> str | None:
        """The last committed position, for metrics and `dialler sync status`."""
        ...

    async def close(self) -> None: ...
