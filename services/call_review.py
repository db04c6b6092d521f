"""The supervisors' calls list (issue 12): calls filtered by agent (people and AI), outcome,
queue and UK days, newest first, a page at a time by keyset (start time, then id), so that
a page of a million-row table costs one index range and stays put while calls are added;
and one call in full (its transcript and notes: personal data, so its route is claimant-
scoped and audited by `web.auth.claimants`).

AI agents (issue 13): an AI call's row carries its AI conversation (outcome, hand-off), and
"AI SMS conversations" lists the AI's text conversations and inbound-text triage instead of
calls (`adapters.ai_conversations`), with the same filters and paging; each links to the
conversation's transcript on the claimant page.

Filters are read by `domain.review_filters`; what needs the database is checked here: an
agent id that names no agent is a field error, not an empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import agent_store, ai_conversations, call_log
from adapters.agent_store import AgentListing
from adapters.ai_conversations import ConversationRow, ConversationSearch
from adapters.call_log import Call, CallSearch, ListedCall
from adapters.replica_reader import ClaimantName, ReplicaReader
from domain.review_filters import NO_OUTCOME, CallFilters, InvalidFilters, Keyset, PageRequest

log = get_logger(__name__)

PAGE_SIZE = 50
UNKNOWN_AGENT = "No such agent; choose one from the list."
AI_TEXT_CHANNELS = ("sms", "triage")

Row = TypeVar("Row")


@dataclass(frozen=True)
class CallRow:
    call: ListedCall
    agent: AgentListing | None  # None: placed by no agent (or one since deleted)
    ai: ConversationRow | None = None  # an AI call's conversation


@dataclass(frozen=True)
class TextRow:
    """One of the AI's SMS conversations, or the triage of an inbound text."""

    conversation: ConversationRow
    agent: AgentListing | None


@dataclass(frozen=True)
class CallsPage:
    rows: list[CallRow]
    older: Keyset | None  # where the next, older page starts (None: this is the last)
    newer: Keyset | None  # where the previous, newer page ends (None: this is the newest)
    texts: list[TextRow] = field(default_factory=list)  # the AI's SMS conversations
    of_texts: bool = False  # the page lists `texts`, not calls


@dataclass(frozen=True)
class CallDetail:
    call: Call
    agent: AgentListing | None
    claimant: ClaimantName | None  # None: not (or no longer) in the replica, or it is away
    replica_away: bool = False  # the name could not be read: the page is shown without it
    ai: ConversationRow | None = None  # an AI call's conversation


def _key(call: ListedCall | ConversationRow) -> Keyset:
    return Keyset(call.started_at, call.id)


def _pair(key: Keyset | None) -> tuple[datetime, int] | None:
    return None if key is None else (key.at, key.id)


def _paged(
    found: Sequence[Row], page: PageRequest, key: Callable[[Row], Keyset]
) -> tuple[list[Row], Keyset | None, Keyset | None]:
    """A page out of up to PAGE_SIZE + 1 rows read newest first (or upwards from `after`),
    with where the older and newer pages start."""
    if page.after is not None:
        # read upwards from `after`: one row past the page means newer pages remain
        more_newer = len(found) > PAGE_SIZE
        rows = list(found[1:] if more_newer else found)
        older = key(rows[-1]) if rows else None
        newer = key(rows[0]) if rows and more_newer else None
    else:
        rows = list(found[:PAGE_SIZE])
        older = key(rows[-1]) if len(found) > PAGE_SIZE else None
        newer = key(rows[0]) if rows and page.before is not None else None
    return rows, older, newer


class CallReview:
    def __init__(self, dialler: AsyncEngine, replica: AsyncEngine, zone: ZoneInfo) -> None:
        self._dialler = dialler
        self._replica = replica
        self._zone = zone

    async def agents(self) -> list[AgentListing]:
        """Every agent, people first (the filter's choices and the rows' names)."""
        async with self._dialler.connect() as conn:
            return await agent_store.agent_directory(conn)

    def search(self, filters: CallFilters, agents: list[AgentListing]) -> CallSearch:
        """The adapter's search for `filters`; `InvalidFilters` for an unknown agent."""
        known = {agent.id: agent for agent in agents}
        agent_ids: list[int] | None = None
        if filters.agent_id is not None:
            if filters.agent_id not in known:
                raise InvalidFilters({"agent": UNKNOWN_AGENT})
            agent_ids = [filters.agent_id]
        if filters.ai_only or filters.ai_texts:
            agent_ids = [
                a.id for a in agents if a.is_ai and (agent_ids is None or a.id in agent_ids)
            ]
        since, until = filters.days.instants(self._zone)
        without_outcome = filters.outcome == NO_OUTCOME
        return CallSearch(
            agent_ids=agent_ids,
            disposition=None if without_outcome else filters.outcome,
            without_outcome=without_outcome,
            queue=filters.queue,
            since=since,
            until=until,
        )

    async def page(
        self, filters: CallFilters, page: PageRequest, agents: list[AgentListing]
    ) -> CallsPage:
        """One page of `PAGE_SIZE` calls, newest first; `InvalidFilters` for an unknown
        agent."""
        search = self.search(filters, agents)
        if search.agent_ids == []:
            # AI only, and the agent is a person
            return CallsPage([], None, None, of_texts=filters.ai_texts)
        if filters.ai_texts:
            return await self._texts(search, page, agents)
        known = {agent.id: agent for agent in agents}
        async with self._dialler.connect() as conn:
            found = await call_log.search_calls(
                conn,
                search,
                limit=PAGE_SIZE + 1,
                older_than=_pair(page.before),
                newer_than=_pair(page.after),
            )
            calls, older, newer = _paged(found, page, _key)
            ai_calls = [c.id for c in calls if c.agent_id in known and known[c.agent_id].is_ai]
            conversations = (
                await ai_conversations.conversations_of_calls(conn, ai_calls) if ai_calls else {}
            )
        rows = [
            CallRow(c, known.get(c.agent_id) if c.agent_id else None, conversations.get(c.id))
            for c in calls
        ]
        return CallsPage(rows, older, newer)

    async def _texts(
        self, search: CallSearch, page: PageRequest, agents: list[AgentListing]
    ) -> CallsPage:
        """A page of the AI's SMS conversations and triage, by the calls' filters."""
        wanted = ConversationSearch(
            channels=AI_TEXT_CHANNELS,
            agent_ids=None if search.agent_ids is None else list(search.agent_ids),
            disposition=search.disposition,
            without_outcome=search.without_outcome,
            queue=search.queue,
            since=search.since,
            until=search.until,
        )
        async with self._dialler.connect() as conn:
            found = await ai_conversations.search_conversations(
                conn,
                wanted,
                limit=PAGE_SIZE + 1,
                older_than=_pair(page.before),
                newer_than=_pair(page.after),
            )
        texts, older, newer = _paged(found, page, _key)
        known = {agent.id: agent for agent in agents}
        rows = [TextRow(t, known.get(t.agent_id) if t.agent_id else None) for t in texts]
        return CallsPage([], older, newer, texts=rows, of_texts=True)

    async def detail(self, call_id: int) -> CallDetail | None:
        """The call in full, with who made it and who was called (None: no such call)."""
        found = await call_log.call(self._dialler, call_id)
        if found is None:
            return None
        agent = None
        if found.agent_id is not None:
            agent = next((a for a in await self.agents() if a.id == found.agent_id), None)
        conversation = None
        if agent is not None and agent.is_ai:
            async with self._dialler.connect() as conn:
                by_call = await ai_conversations.conversations_of_calls(conn, [call_id])
            conversation = by_call.get(call_id)
        try:
            names = await ReplicaReader(self._replica).claimant_names([found.user_id])
        except (SQLAlchemyError, OSError) as error:
            # the call itself is the dialler's: show it, without the name
            log.warning("replica unavailable for a call's claimant", call_id=call_id,
                        error=type(error).__name__)  # fmt: skip
            return CallDetail(found, agent, None, replica_away=True, ai=conversation)
        return CallDetail(found, agent, names.get(found.user_id), ai=conversation)
