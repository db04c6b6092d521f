"""Re-screening after a TPS/CTPS list changed: the claimants with a task (any status: a
withdrawn task may have been withdrawn because of the list) whose listed status changed get
a REFRESH through the outreach workflow's door, so their workflow reloads its facts and
screens the number again. The comparison is one set query in PostgreSQL
(`adapters.tps.changed_screenings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import task_store, tps
from adapters.replica_reader import ReplicaReader
from domain.phones import to_e164
from schemas.outreach import ChangeEvent, ChangeKind
from workflows.outreach_client import OutreachClient

RESCREEN_REASON = "tps list changed"
DELIVERIES_IN_FLIGHT = 20


@dataclass
class Rescreened:
    """One import's re-screening: the claimants with a task, those with a usable number,
    and the ones whose listed status changed (sent a refresh)."""

    version_id: int
    list_name: str
    with_task: int
    with_number: int
    now_listed: list[int] = field(default_factory=list)
    no_longer_listed: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # the workflow refused the refresh

    @property
    def changed(self) -> int:
        return len(self.now_listed) + len(self.no_longer_listed)


class RescreenUnfinished(Exception):
    """Temporal did not take every refresh: the import stays pending (`tps-rescreen`)."""


def rescreen_event(version_id: int, user_id: int, now: datetime) -> ChangeEvent:
    """The refresh a claimant gets when import `version_id` changed their screening; the id
    is the same on a retry, so a workflow applies it once."""
    return ChangeEvent(
        event_id=f"tps-{version_id}-{user_id}",
        kind=ChangeKind.REFRESH,
        user_id=user_id,
        occurred_at=now,
        reason=RESCREEN_REASON,
    )


async def rescreen_pending(
    dialler: AsyncEngine, replica: AsyncEngine, outreach: OutreachClient, now: datetime
) -> list[Rescreened]:
    """Re-screen every import not re-screened yet, oldest first, then drop the rows of
    retired versions nobody compares against any more. Raises RescreenUnfinished when
    Temporal is unavailable (what was sent is sent; the rest is sent next time)."""
    pending = await tps.pending_rescreens(dialler)
    if not pending:
        await tps.drop_retired_numbers(dialler, now)
        return []
    user_ids = await task_store.task_user_ids(dialler)
    phones = await ReplicaReader(replica).phone_numbers(user_ids)
    numbers: dict[int, int] = {}
    for user_id, phone in phones.items():
        digits = tps.e164_digits(to_e164(phone))
        if digits is not None:
            numbers[user_id] = digits
    done: list[Rescreened] = []
    for import_ in pending:
        changes = await tps.changed_screenings(dialler, numbers, import_)
        result = Rescreened(import_.version_id, import_.list_name, len(user_ids), len(numbers))
        for change in changes:
            (result.now_listed if change.listed else result.no_longer_listed).append(change.user_id)
        result.refused = await _deliver(outreach, import_.version_id, changes, now)
        await tps.mark_rescreened(dialler, import_.version_id, now)
        done.append(result)
    await tps.drop_retired_numbers(dialler, now)
    return done


async def _deliver(
    outreach: OutreachClient, version_id: int, changes: list[tps.ScreeningChange], now: datetime
) -> list[int]:
    events = [rescreen_event(version_id, change.user_id, now) for change in changes]
    told = await outreach.tell_many(events, start=True, in_flight=DELIVERIES_IN_FLIGHT)
    if told.unavailable is not None:
        raise RescreenUnfinished(told.unavailable)
    return sorted(told.refused)
