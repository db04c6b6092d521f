"""Imported suppression lists: `dialler compliance suppress FILE` and `unsuppress`.

An import reads the file line by line (`domain.suppressions.parse_import`), adds a final
opt-out (reason `list`) for every number and address no imported suppression in force
already names (`adapters.suppressions.import_lines`, in batches, each its own transaction),
writes one audit row, and then tells the workflows of the claimants those numbers and
addresses belong to (replica look-ups) with a REFRESH: the rows are written, so the
workflow only has to reload its facts. A bad line is listed with its number and the rest
imports; a re-import adds nothing and tells the same workflows again (the event ids are the
same, so a workflow that heard it ignores the copy; one that missed it, because the first
run was cut short, hears it now).

A removal is a dated, audited row (`suppression_removals` and `audit_log`, one
transaction); the claimants it frees are sent a REFRESH by signal-with-start, so a workflow
that ended at DONE because of the suppression starts again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import suppressions
from adapters.audit_log import append_audit
from adapters.replica_reader import ReplicaReader
from domain.sms import number_spellings
from domain.suppressions import (
    IMPORTED,
    LINE_MAX_BYTES,
    ImportLine,
    RejectedLine,
    parse_import,
    removal_refusal,
)
from schemas.outreach import ChangeEvent, ChangeKind
from workflows.outreach_client import OutreachClient

log = get_logger(__name__)

BATCH_LINES = 1_000
TELL_CONCURRENCY = 20
ACTOR_TYPE = "operator"  # audit rows written by a person at the command line


def physical_lines(file: BinaryIO, limit: int = LINE_MAX_BYTES) -> Iterator[bytes]:
    """The file's lines as bytes, never holding more than `limit` + 1 bytes of one: an
    over-long line comes as its first `limit` + 1 bytes (and is refused by its length)."""
    while True:
        line = file.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # skip the rest of the over-long line
                rest = file.readline(limit + 1)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


@dataclass
class Telling:
    """How many claimants' workflows were told of a change, and how many could not be."""

    claimants: int = 0
    running: int = 0  # of those told, the ones with a run going (import) or started
    not_told: int = 0
    error: str | None = None


@dataclass
class ImportReport:
    lines: int = 0  # data lines with something on them
    added: int = 0  # suppressions added
    already: int = 0  # numbers and addresses an imported suppression already held
    rejected: list[RejectedLine] = field(default_factory=list)
    audit_id: int | None = None
    telling: Telling = field(default_factory=Telling)


@dataclass(frozen=True)
class RemovalReport:
    suppression_id: int
    removal_id: int
    audit_id: int
    telling: Telling


class RemovalRefused(Exception):
    """The removal cannot be recorded; nothing was written. The message says why."""


class SuppressionLists:
    def __init__(
        self, dialler: AsyncEngine, replica_db: AsyncEngine, outreach: OutreachClient
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica_db)
        self._outreach = outreach

    # --- import ----------------------------------------------------------------------------

    async def import_lines(
        self, lines: Iterable[bytes], *, source: str, by: str, now: datetime | None = None
    ) -> ImportReport:
        """Import a list (raw lines, header first). Raises `ImportHeaderError` (nothing
        imported) when the header cannot be read."""
        report = ImportReport()
        held: dict[int, tuple[str | None, str | None]] = {}  # suppression id -> subject
        batch: list[ImportLine] = []
        for parsed in parse_import(lines):
            report.lines += 1
            if isinstance(parsed, RejectedLine):
                report.rejected.append(parsed)
                continue
            batch.append(parsed)
            if len(batch) >= BATCH_LINES:
                await self._import_batch(batch, source, report, held)
                batch = []
        if batch:
            await self._import_batch(batch, source, report, held)
        async with self._dialler.begin() as conn:
            report.audit_id = await append_audit(
                conn,
                actor_type=ACTOR_TYPE,
                actor_id=by[:64],
                action="suppressions_imported",
                subject_type="suppression_list",
                subject_id=source[:64],
                detail={
                    "lines": report.lines,
                    "added": report.added,
                    "already_held": report.already,
                    "rejected_lines": [r.line for r in report.rejected][:1000],
                    "rejected": len(report.rejected),
                },
            )
        report.telling = await self._tell(held, now or datetime.now(UTC), start=False)
        log.info(
            "suppression list imported",
            lines=report.lines,
            added=report.added,
            already=report.already,
            rejected=len(report.rejected),
            claimants=report.telling.claimants,
            not_told=report.telling.not_told,
        )
        return report

    async def _import_batch(
        self,
        batch: list[ImportLine],
        source: str,
        report: ImportReport,
        held: dict[int, tuple[str | None, str | None]],
    ) -> None:
        async with self._dialler.begin() as conn:
            entries = await suppressions.import_lines(conn, batch, source)
        for entry in entries:
            if entry.added:
                report.added += 1
            else:
                report.already += 1
            held[entry.suppression_id] = (entry.number, entry.email)

    # --- removal ---------------------------------------------------------------------------

    async def remove(
        self,
        suppression_id: int,
        *,
        reason: str,
        by: str,
        effective_at: datetime | None = None,
        now: datetime | None = None,
    ) -> RemovalReport:
        """Record the dated, audited end of an imported suppression and tell the claimants'
        workflows. Raises `RemovalRefused` (nothing written)."""
        now = now or datetime.now(UTC)
        effective_at = effective_at or now
        async with self._dialler.begin() as conn:
            row = await suppressions.suppression(conn, suppression_id)
            why_not = removal_refusal(row, reason, by, effective_at, now)
            if why_not is not None:
                raise RemovalRefused(f"suppression {suppression_id}: {why_not}")
            assert row is not None
            removal_id = await suppressions.record_removal(
                conn, suppression_id, effective_at=effective_at, removed_by=by, reason=reason
            )
            audit_id = await append_audit(
                conn,
                actor_type=ACTOR_TYPE,
                actor_id=by[:64],
                action="suppression_removed",
                subject_type="suppression",
                subject_id=str(suppression_id),
                detail={
                    "removal_id": removal_id,
                    "effective_at": effective_at.isoformat(),
                    "reason": reason,
                    "names": "number" if row.phone_number else "email",
                },
            )
        telling = await self._tell(
            {suppression_id: (row.phone_number, row.email)}, now, start=True, removal=removal_id
        )
        log.info(
            "suppression removed",
            suppression_id=suppression_id,
            removal_id=removal_id,
            claimants=telling.claimants,
            not_told=telling.not_told,
        )
        return RemovalReport(suppression_id, removal_id, audit_id, telling)

    # --- telling the workflows -----------------------------------------------------------------

    async def claimants_of(
        self, held: dict[int, tuple[str | None, str | None]]
    ) -> dict[int, list[int]]:
        """user id -> the suppression ids naming their number or address (replica look-ups,
        batched)."""
        by_spelling: dict[str, list[int]] = {}
        by_email: dict[str, list[int]] = {}
        for suppression_id, (number, email) in held.items():
            for spelling in number_spellings(number):
                by_spelling.setdefault(spelling, []).append(suppression_id)
            if email is not None:
                by_email.setdefault(email, []).append(suppression_id)
        users: dict[int, list[int]] = {}
        if by_spelling:
            found = await self._replica.user_ids_by_number(sorted(by_spelling))
            for spelling, user_ids in found.items():
                for user_id in user_ids:
                    users.setdefault(user_id, []).extend(by_spelling.get(spelling, []))
        if by_email:
            found = await self._replica.user_ids_by_email(sorted(by_email))
            for email, user_ids in found.items():
                for user_id in user_ids:
                    users.setdefault(user_id, []).extend(by_email.get(email, []))
        return {user_id: sorted(set(ids)) for user_id, ids in users.items()}

    async def _tell(
        self,
        held: dict[int, tuple[str | None, str | None]],
        now: datetime,
        *,
        start: bool,
        removal: int | None = None,
    ) -> Telling:
        """A REFRESH to each claimant `held` names: to running workflows only after an
        import (a claimant with none has nothing queued, and their next run reads the
        suppression), by signal-with-start after a removal. Stops at the first sign that
        Temporal is away (every claimant left is counted as not told)."""
        users = await self.claimants_of(held)

        def event_for(user_id: int, suppression_ids: list[int]) -> ChangeEvent:
            event_id = (
                f"suppression-removal:{removal}"
                if removal is not None
                else f"suppression-import:{max(suppression_ids)}"
            )
            return ChangeEvent(event_id, ChangeKind.REFRESH, user_id, now, reason=IMPORTED)

        events = [event_for(u, ids) for u, ids in sorted(users.items())]
        told = await self._outreach.tell_many(events, start=start, in_flight=TELL_CONCURRENCY)
        refusals = [told.refused[user_id] for user_id in sorted(told.refused)]
        telling = Telling(
            claimants=len(users),
            running=len(told.reached),
            not_told=len(told.not_told) + len(told.refused),
            error=told.unavailable or (refusals[0] if refusals else None),
        )
        return telling
