"""Everything a supervisor sees about one claimant on `/supervisor/claimants/<id>`, assembled
in one place, and the lookup that finds the claimant by id, phone or email.

The page is the console's view of the claimant (`services.claimant_context`: who, why this
call, calls with their outcomes and notes, the SMS thread, the callback, notes; that view is
audited as `viewed_claimant` with purpose "supervisor") completed with what a supervisor
also needs:

- consent per channel with every grant and withdrawal (`services.consents`), the
  suppressions naming the claimant, their number or address, and the reasons in force
  (`adapters.suppressions`);
- the AI calls' transcripts (`adapters.call_log`), magic links with what became of them
  (`adapters.magic_links`) and conversions (`adapters.conversions`);
- the AI conversations (calls, SMS, inbound-text triage) with their outcomes, hand-offs,
  token counts and transcripts with every tool call (`services.ai_review`); showing their
  transcripts is audited as `viewed_ai_transcripts`;
- the workflow's own state, asked through the one door: a pause, the claim it holds, the
  pending callback and its owner (what the supervisor actions act on).

Each part comes from its table's owner. Every lookup writes one audit row
(`claimant_lookup`): the kind of lookup and the ids found, never the number or address typed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import call_log, conversions, magic_links, suppressions, task_store
from adapters.agent_store import display_name_of, staff_page
from adapters.audit_log import append_audit
from adapters.replica_reader import ReplicaReader
from domain.phones import to_e164
from domain.sms import number_spellings
from domain.suppressions import email_key
from schemas.context import ClaimantContext
from schemas.enums import AgentRole, Queue, TaskStatus
from schemas.outreach import Claim, OutreachPause
from services.ai_review import AiConversation, audit_transcripts_viewed, conversations_of
from services.claimant_access import MAX_ID
from services.claimant_context import ClaimantContextService, ConsoleContext, Viewer
from services.consents import ConsentService, ConsentStanding
from workflows.outreach_client import OutreachClient, OutreachRefused, OutreachUnavailable

log = get_logger(__name__)

LINKS_SHOWN = 20
CONVERSIONS_SHOWN = 20
AGENTS_LISTED = 1000  # the staff a callback can be given to: a few hundred at most
STATE_TIMEOUT = timedelta(seconds=2)  # the page is shown without the workflow's state
LOOKUP = "claimant_lookup"
MATCHES_SHOWN = 20
MAX_LOOKUP_LENGTH = 254  # the longest email address; nothing longer names a claimant


class LookupKind(StrEnum):
    ID = "id"
    PHONE = "phone"
    EMAIL = "email"


@dataclass(frozen=True)
class LookupResult:
    kind: LookupKind
    user_ids: list[int]  # the claimants found, by id (at most MATCHES_SHOWN)
    problem: str | None = None  # the query could not name a claimant: why


@dataclass(frozen=True)
class Suppression:
    id: int
    reason: str
    source: str | None
    names: str  # what it names: "claimant", "number" or "email"
    created_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True)
class WorkflowStanding:
    """What the claimant's workflow holds, as its `state` query answers."""

    reachable: bool  # False: Temporal did not answer (the rest is unknown)
    running: bool
    pause: OutreachPause | None = None
    claim: Claim | None = None
    callback_at: datetime | None = None
    callback_owner_agent_id: int | None = None


@dataclass(frozen=True)
class Assignee:
    """A person a callback can be given to."""

    id: int
    name: str
    queue: str | None


@dataclass(frozen=True)
class ActionsPanel:
    """What the supervisor actions act on, with no personal data: the workflow's state, the
    task row, and the people a callback can be given to."""

    user_id: int
    workflow: WorkflowStanding
    task: task_store.CallTask | None
    assignees: list[Assignee] = field(default_factory=list)
    agent_names: dict[int, str] = field(default_factory=dict)  # every agent id -> name

    def agent_name(self, agent_id: int | None) -> str:
        if agent_id is None:
            return "—"
        return self.agent_names.get(agent_id, f"agent {agent_id}")

    @property
    def holder_id(self) -> int | None:
        """Who holds the claimant: the workflow's claim, else the task row's (a row left
        claimed with no claim behind it is what a supervisor release repairs)."""
        if self.workflow.claim is not None:
            return self.workflow.claim.agent_id
        if self.task is not None and self.task.status == TaskStatus.CLAIMED.value:
            return self.task.claimed_by
        return None


@dataclass(frozen=True)
class ClaimantRecord:
    context: ConsoleContext
    consent: ConsentStanding
    suppressed_for: frozenset[str]  # reasons in force
    suppressions: list[Suppression]
    transcripts: dict[int, str]  # call id -> transcript, for the calls shown
    links: list[magic_links.ClaimantLink]
    conversions: list[conversions.ConversionRow]
    panel: ActionsPanel
    ai_conversations: list[AiConversation] = field(default_factory=list)

    @property
    def user_id(self) -> int:
        return self.context.user_id

    @property
    def claimant(self) -> ClaimantContext:
        return self.context.claimant


class ClaimantRecords:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica_db: AsyncEngine,
        context: ClaimantContextService,
        consents: ConsentService,
        outreach: OutreachClient,
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica_db)
        self._context = context
        self._consents = consents
        self._outreach = outreach

    # --- the lookup ----------------------------------------------------------------------------

    async def lookup(
        self, kind: LookupKind, query: str, *, supervisor_id: int, ip_address: str | None
    ) -> LookupResult:
        """The claimants `query` names (by id, phone in any UK spelling, or email), audited
        once whatever the result."""
        result = await self._find(kind, query.strip())
        async with self._dialler.begin() as conn:
            await append_audit(
                conn,
                actor_type="agent",
                actor_id=str(supervisor_id),
                action=LOOKUP,
                subject_type="user",
                subject_id=str(result.user_ids[0]) if len(result.user_ids) == 1 else None,
                detail={
                    "by": kind.value,
                    "matches": len(result.user_ids),
                    "user_ids": result.user_ids,
                    "refused": result.problem is not None,
                },
                ip_address=ip_address,
            )
        return result

    async def _find(self, kind: LookupKind, query: str) -> LookupResult:
        if not query:
            return LookupResult(kind, [], "Type what to look up.")
        if len(query) > MAX_LOOKUP_LENGTH:
            return LookupResult(kind, [], "That is too long to be an id, a number or an email.")
        match kind:
            case LookupKind.ID:
                if not (query.isascii() and query.isdigit()) or not 0 < int(query) <= MAX_ID:
                    return LookupResult(kind, [], "A claimant id is a whole number from 1.")
                user_id = int(query)
                found = await self._replica.claimant_names([user_id])
                return LookupResult(kind, [user_id] if user_id in found else [])
            case LookupKind.PHONE:
                number = to_e164(query)
                if number is None:
                    return LookupResult(kind, [], "That is not a phone number.")
                user_ids = await self._replica.user_ids_with_number(
                    sorted(number_spellings(number))
                )
                return LookupResult(kind, user_ids[:MATCHES_SHOWN])
            case LookupKind.EMAIL:
                address = email_key(query)
                if address is None or "@" not in address:
                    return LookupResult(kind, [], "That is not an email address.")
                found_by = await self._replica.user_ids_by_email([address])
                return LookupResult(kind, sorted(found_by.get(address, []))[:MATCHES_SHOWN])

    # --- the page ------------------------------------------------------------------------------

    async def record(self, user_id: int, viewer: Viewer) -> ClaimantRecord | None:
        """The claimant's record (None: not in the replica). The context's view is audited
        by the context service."""
        context = await self._context.view(user_id, viewer)
        if context is None:
            return None
        claimant = context.claimant
        consent, panel = await asyncio.gather(self._consents.standing(user_id), self.panel(user_id))
        call_ids = [call.id for call in context.calls]
        async with self._dialler.connect() as conn:
            status = await suppressions.suppression_status(
                conn, user_id, claimant.phone_number, claimant.email
            )
            held = await suppressions.about_claimant(
                conn, user_id, claimant.phone_number, claimant.email
            )
            transcripts = await call_log.transcripts_of(conn, user_id, call_ids)
            links = await magic_links.links_of(conn, user_id, LINKS_SHOWN, display_name_of)
            converted = await conversions.conversions_of(conn, user_id, CONVERSIONS_SHOWN)
            ai = await conversations_of(conn, user_id)
        async with self._dialler.begin() as conn:
            # before the page is served: a transcript shown unrecorded is not shown at all
            await audit_transcripts_viewed(
                conn,
                ai,
                user_id=user_id,
                agent_id=viewer.agent_id,
                purpose=viewer.purpose,
                ip_address=viewer.ip_address,
            )
        return ClaimantRecord(
            context=context,
            consent=consent,
            suppressed_for=status.reasons,
            suppressions=[_suppression(row, user_id) for row in held],
            transcripts=transcripts,
            links=links,
            conversions=converted,
            panel=panel,
            ai_conversations=ai,
        )

    async def panel(self, user_id: int) -> ActionsPanel:
        """The supervisor actions' panel (shown again after each action)."""
        workflow = await self._workflow(user_id)
        async with self._dialler.connect() as conn:
            task = await task_store.task_of(conn, user_id)
            staff = await staff_page(conn, limit=AGENTS_LISTED, offset=0)
        assignees = sorted(
            (
                Assignee(s.id, s.display_name, s.queue)
                for s in staff
                if s.is_active and not s.is_ai and s.role == AgentRole.AGENT.value
            ),
            key=lambda a: (a.queue != Queue.CALLBACK.value, a.name, a.id),
        )
        names = {s.id: s.display_name for s in staff}
        return ActionsPanel(user_id, workflow, task, assignees, names)

    async def _workflow(self, user_id: int) -> WorkflowStanding:
        try:
            async with asyncio.timeout(STATE_TIMEOUT.total_seconds()):
                state = await self._outreach.state(user_id)
        except (OutreachRefused, OutreachUnavailable, TimeoutError) as error:
            log.info("workflow state query failed", user_id=user_id, error=type(error).__name__)
            return WorkflowStanding(reachable=False, running=False)
        if state is None:
            return WorkflowStanding(reachable=True, running=False)
        return WorkflowStanding(
            reachable=True,
            running=True,
            pause=state.facts.paused,
            claim=state.claim,
            callback_at=state.facts.callback_at,
            callback_owner_agent_id=state.facts.callback_owner_agent_id,
        )


def _suppression(row: dict[str, Any], user_id: int) -> Suppression:
    """One `adapters.suppressions.about_claimant` row, saying what it names."""
    if row.get("user_id") == user_id:
        names = "claimant"
    elif row.get("phone_number") is not None:
        names = "number"
    else:
        names = "email"
    return Suppression(
        id=int(row["id"]),
        reason=str(row["reason"]),
        source=row.get("source"),
        names=names,
        created_at=row["created_at"],
        removed_at=row.get("removed_effective_at"),
    )
