"""The supervisors' audit viewer (issue 12): the append-only audit log filtered by actor (an
agent, by id or email), claimant, action and UK days, newest first, a page at a time by
keyset (time, then id); and the same filtered log as CSV, streamed from a server-side
cursor so that an export of millions of entries never sits in memory.

A claimant's entries are those about them (subject `user`) and about their calls (subject
`call`: a recording played, deleted at the end of retention, a call abandoned), found by
the log's subject index. Exporting is itself audited (`exported_audit_log`, with the
filters), before the first row is sent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, audit_log, call_log
from adapters.agent_store import AgentListing
from adapters.audit_log import AuditRecord, AuditSearch
from domain.review_filters import AuditFilters, InvalidFilters, Keyset, PageRequest, csv_cell

PAGE_SIZE = 50
EXPORTED = "exported_audit_log"
CSV_BATCH = 1_000  # rows read from the cursor and written out at a time
CSV_HEADER = (
    "id",
    "at",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "subject_type",
    "subject_id",
    "detail",
    "ip_address",
)
NO_SUCH_AGENT = "No agent has that id or email address."
UNKNOWN_ACTION = "No entry has that action; choose one from the list."


@dataclass(frozen=True)
class AuditRow:
    entry: AuditRecord
    actor_name: str  # the agent's name, or what kind of actor it was ("system: retention")
    detail: list[tuple[str, str]]  # the detail's fields, each value as readable text


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    older: Keyset | None  # where the next, older page starts (None: this is the last)
    newer: Keyset | None  # where the previous, newer page ends (None: this is the newest)


def detail_items(detail: Mapping[str, object]) -> list[tuple[str, str]]:
    """The detail's fields in order, each value as text: strings as they are, anything else
    (numbers, lists, objects) as compact JSON."""
    return [
        (str(key), value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in detail.items()
    ]


def actor_name(entry: AuditRecord, agents: Mapping[str, AgentListing]) -> str:
    """An agent's display name, or the kind of actor and its id ("system: retention")."""
    agent = agents.get(entry.actor_id) if entry.actor_type == "agent" and entry.actor_id else None
    if agent is not None:
        return agent.display_name
    if entry.actor_id:
        return f"{entry.actor_type}: {entry.actor_id}"
    return entry.actor_type


def _key(entry: AuditRecord) -> Keyset:
    return Keyset(entry.at, entry.id)


def _pair(key: Keyset | None) -> tuple[datetime, int] | None:
    return None if key is None else (key.at, key.id)


class AuditReview:
    def __init__(self, dialler: AsyncEngine, zone: ZoneInfo) -> None:
        self._dialler = dialler
        self._zone = zone

    async def agents(self) -> list[AgentListing]:
        async with self._dialler.connect() as conn:
            return await agent_store.agent_directory(conn)

    async def actions(self) -> list[str]:
        """Every action the log holds (the action filter's choices)."""
        async with self._dialler.connect() as conn:
            return await audit_log.distinct_actions(conn)

    async def search(
        self, filters: AuditFilters, agents: list[AgentListing], actions: list[str]
    ) -> AuditSearch:
        """The adapter's search for `filters`; `InvalidFilters` naming an actor who is no
        agent and an action the log does not hold."""
        errors: dict[str, str] = {}
        actor: tuple[str, str] | None = None
        if filters.actor_id is not None or filters.actor_email is not None:
            agent = next(
                (
                    a
                    for a in agents
                    if a.id == filters.actor_id or a.email.lower() == filters.actor_email
                ),
                None,
            )
            if agent is None:
                errors["actor"] = NO_SUCH_AGENT
            else:
                actor = ("agent", str(agent.id))
        if filters.action is not None and filters.action not in actions:
            errors["action"] = UNKNOWN_ACTION
        if errors:
            raise InvalidFilters(errors)
        subjects: list[tuple[str, str]] | None = None
        if filters.claimant_id is not None:
            async with self._dialler.connect() as conn:
                calls = await call_log.call_ids_of_claimant(conn, filters.claimant_id)
            subjects = [("user", str(filters.claimant_id))]
            subjects += [("call", str(call_id)) for call_id in calls]
        since, until = filters.days.instants(self._zone)
        return AuditSearch(actor, subjects, filters.action, since, until)

    async def page(
        self, search: AuditSearch, page: PageRequest, agents: list[AgentListing]
    ) -> AuditPage:
        """One page of `PAGE_SIZE` entries, newest first."""
        async with self._dialler.connect() as conn:
            found = await audit_log.search_audit(
                conn,
                search,
                limit=PAGE_SIZE + 1,
                older_than=_pair(page.before),
                newer_than=_pair(page.after),
            )
        if page.after is not None:
            # read upwards from `after`: one row past the page means newer pages remain
            more_newer = len(found) > PAGE_SIZE
            entries = found[1:] if more_newer else found
            older = _key(entries[-1]) if entries else None
            newer = _key(entries[0]) if entries and more_newer else None
        else:
            entries = found[:PAGE_SIZE]
            older = _key(entries[-1]) if len(found) > PAGE_SIZE else None
            newer = _key(entries[0]) if entries and page.before is not None else None
        by_id = {str(agent.id): agent for agent in agents}
        rows = [AuditRow(e, actor_name(e, by_id), detail_items(e.detail)) for e in entries]
        return AuditPage(rows, older, newer)

    async def record_export(
        self, agent_id: int, filters: AuditFilters, ip_address: str | None
    ) -> None:
        """Who exported which part of the log: written before the export starts."""
        async with self._dialler.begin() as conn:
            await audit_log.append_audit(
                conn,
                actor_type="agent",
                actor_id=str(agent_id),
                action=EXPORTED,
                subject_type="audit_log",
                subject_id=None,
                detail={"filters": filters.query()},
                ip_address=ip_address,
            )

    async def csv_chunks(
        self, search: AuditSearch, agents: list[AgentListing]
    ) -> AsyncIterator[str]:
        """The entries matching `search` as CSV text, newest first, a batch of rows per
        chunk. Every cell is written so that no spreadsheet runs it as a formula."""
        by_id = {str(agent.id): agent for agent in agents}
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        async with self._dialler.connect() as conn:
            async for entries in audit_log.stream_audit(conn, search, batch=CSV_BATCH):
                writer.writerows(self._csv_row(entry, by_id) for entry in entries)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.getvalue():
            yield buffer.getvalue()  # the header alone, when nothing matched

    def _csv_row(self, entry: AuditRecord, agents: Mapping[str, AgentListing]) -> list[str]:
        return [
            csv_cell(value)
            for value in (
                entry.id,
                entry.at.astimezone(self._zone).isoformat(),
                entry.actor_type,
                entry.actor_id,
                actor_name(entry, agents),
                entry.action,
                entry.subject_type,
                entry.subject_id,
                json.dumps(entry.detail, ensure_ascii=False, sort_keys=True),
                entry.ip_address,
            )
        ]
