"""The conversion funnel (issue 11): `dialler report funnel` and the supervisor analytics
(`services.analytics`) read it from here. The CLI only formats `FunnelReport`.

The facts of a period are read once (`gather`: the calls counted by the database, not one
row per call) and grouped any number of ways (`report`); `funnel` does both for one grouping.

Over a period [start, end), each stage counts:

- called: calls started in the period (every `calls` row: dialled or recorded by hand, by a
  person or an AI agent, answered or not);
- reached: those calls that reached the claimant: answered by a person (Twilio's AnsweredBy
  empty or `human`, not a machine) with the agent's leg bridged to them (agent_seconds > 0);
  a call recorded by hand, when its outcome says someone spoke (`SPOKE_DISPOSITIONS`);
- link sent: magic links handed to the SMS or email provider in the period (their `sent`
  event);
- link opened: those links whose landing page was shown at least once, at any time up to
  now, or that were used (an `opened` or `used` event);
- link used: those links the claimant confirmed (a `used` event), at any time up to now;
- signed: conversions of kind `signed` (signature added, seen by CDC) that occurred in the
  period, once per claimant;
- documents received: conversions of kind `documents` (a requirement RECEIVED or APPROVED)
  that occurred in the period, once per requirement.

Groups (`FunnelGrouping`):

- total: one row, `all`;
- agent: calls by the agent who placed them, links by the agent who sent them, conversions
  by the agent of the contact they are credited to; `(no agent)` otherwise. Labels are
  "<display name> (#<id>)";
- queue: calls by their queue, links by the queue of the call they were sent from,
  conversions by the queue of the call they are credited to; `(none)` otherwise;
- channel: calls `call` (a person) or `ai` (an AI agent); links by the contact they were
  sent from (`call`, `ai`, `sms`), else by how they were delivered (`sms`, `email`);
  conversions by the contact they are credited to (`call`, `ai`, `sms`), `(none)` when
  none was in the attribution window;
- lender: by the lenders of the claimant's claims on the replica (a claimant with claims
  against two lenders counts under both, so the groups can add up to more than the total);
  a completed requirement by its own claim's lender; `(unknown)` when the replica has none.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, call_log, conversions, magic_links
from adapters.agent_store import AgentLabel
from adapters.call_log import CallBreakdown
from adapters.conversions import ConversionRow
from adapters.magic_links import SentLink
from adapters.replica_reader import ReplicaReader
from domain.attribution import UK
from schemas.attribution import (
    ContactKind,
    ConversionKind,
    FunnelGrouping,
    FunnelReport,
    FunnelRow,
)

ALL = "all"
NO_AGENT = "(no agent)"
NO_QUEUE = "(none)"
NO_CHANNEL = "(none)"
UNKNOWN_LENDER = "(unknown)"
STAGES = tuple(f.name for f in fields(FunnelRow) if f.name != "group")


@dataclass(frozen=True)
class FunnelFacts:
    """What the funnel of a period is counted from, read once and grouped any number of
    ways by `report`: the calls already counted by the database (per agent, queue, hour and,
    for the lender grouping, claimant), the links sent and the conversions (far fewer than
    calls: one row each), and the names the groups are labelled with."""

    start: datetime
    end: datetime
    calls: CallBreakdown
    links: list[SentLink]
    conversions: list[ConversionRow]
    agents: Mapping[int, AgentLabel]
    link_call_queues: Mapping[int, str | None]
    lenders: Mapping[int, Mapping[int, str]] | None  # user id -> claim id -> lender


def agent_group(agents: Mapping[int, AgentLabel], agent_id: int | None) -> str:
    """The agent grouping's label for an agent: "<display name> (#<id>)"."""
    if agent_id is None:
        return NO_AGENT
    label = agents.get(agent_id)
    return f"{label.display_name} (#{agent_id})" if label else f"agent #{agent_id}"


def _is_ai(facts: FunnelFacts, agent_id: int | None) -> bool:
    label = facts.agents.get(agent_id) if agent_id is not None else None
    return label is not None and label.is_ai


def _lenders(facts: FunnelFacts, user_id: int, claim_id: int | None = None) -> list[str]:
    assert facts.lenders is not None
    claims = facts.lenders.get(user_id, {})
    if claim_id is not None and claim_id in claims:
        return [claims[claim_id]]
    return sorted(set(claims.values())) or [UNKNOWN_LENDER]


def _call_ref(ref: str) -> int | None:
    return int(ref) if ref.isdigit() else None


async def gather(
    dialler: AsyncEngine,
    replica: AsyncEngine | None,
    start: datetime,
    end: datetime,
    *,
    lenders: bool = False,
    per_claimant: bool = False,
) -> FunnelFacts:
    """The facts of [start, end). `lenders` also reads the claimants' lenders from the
    replica (the lender grouping needs them); `per_claimant` only counts the calls per
    claimant, for `read_lenders` to add the lenders later."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's ends must be timezone-aware")
    if end <= start:
        raise ValueError("the period ends before it starts")
    if lenders and replica is None:
        raise ValueError("the lender grouping needs the replica")
    async with dialler.connect() as conn:
        calls = await call_log.call_breakdown(
            conn, start, end, UK.key, by_user=lenders or per_claimant
        )
        links = await magic_links.links_sent_between(conn, start, end)
        converted = await conversions.conversions_between(conn, start, end)
        source_calls = [
            ref
            for link in links
            if link.source is not None and link.source.kind is ContactKind.CALL
            for ref in [_call_ref(link.source.ref)]
            if ref is not None
        ]
        link_call_queues = await call_log.queues_of_calls(conn, source_calls)
        agent_ids = {agent for agent, _ in calls.by_agent} | {link.agent_id for link in links}
        agent_ids |= {c.agent_id for c in converted}
        agents = await agent_store.agent_labels(conn, (a for a in agent_ids if a is not None))
    facts = FunnelFacts(start, end, calls, links, converted, agents, link_call_queues, None)
    if lenders:
        assert replica is not None
        facts = await read_lenders(facts, replica)
    return facts


async def read_lenders(facts: FunnelFacts, replica: AsyncEngine) -> FunnelFacts:
    """The facts with the lenders of every claimant in them (gathered `per_claimant`)."""
    if facts.calls.by_agent and not facts.calls.by_user:
        raise ValueError("the facts were gathered without the calls per claimant")
    users = set(facts.calls.by_user) | {link.user_id for link in facts.links}
    users |= {c.user_id for c in facts.conversions}
    found = await ReplicaReader(replica).claim_lenders(sorted(users))
    return replace(facts, lenders=found)


def report(facts: FunnelFacts, grouping: FunnelGrouping = FunnelGrouping.TOTAL) -> FunnelReport:
    """The funnel of the facts' period by `grouping` (the module docstring defines each
    stage and group)."""
    if grouping is FunnelGrouping.LENDER and facts.lenders is None:
        raise ValueError("the lender grouping needs the facts gathered with lenders")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAGES, 0))
    if grouping is FunnelGrouping.TOTAL:
        counts[ALL]  # one row even for an empty period

    def add(groups: Iterable[str], **stages: int | bool) -> None:
        for group in groups:
            row = counts[group]
            for stage, happened in stages.items():
                row[stage] += int(happened)

    calls = facts.calls
    if grouping is FunnelGrouping.QUEUE:
        for (queue, _), tally in calls.by_queue.items():
            add([queue or NO_QUEUE], called=tally.calls, reached=tally.reached)
    elif grouping is FunnelGrouping.LENDER:
        for user_id, tally in calls.by_user.items():
            add(_lenders(facts, user_id), called=tally.calls, reached=tally.reached)
    else:
        for (agent_id, _), tally in calls.by_agent.items():
            match grouping:
                case FunnelGrouping.AGENT:
                    groups = [agent_group(facts.agents, agent_id)]
                case FunnelGrouping.CHANNEL:
                    groups = ["ai" if _is_ai(facts, agent_id) else ContactKind.CALL.value]
                case _:
                    groups = [ALL]
            add(groups, called=tally.calls, reached=tally.reached)

    for link in facts.links:
        source = link.source
        match grouping:
            case FunnelGrouping.AGENT:
                groups = [agent_group(facts.agents, link.agent_id)]
            case FunnelGrouping.QUEUE:
                call_id = (
                    _call_ref(source.ref)
                    if source is not None and source.kind is ContactKind.CALL
                    else None
                )
                queue = facts.link_call_queues.get(call_id) if call_id is not None else None
                groups = [queue or NO_QUEUE]
            case FunnelGrouping.CHANNEL:
                if source is None:
                    groups = [link.channel]
                elif source.kind is ContactKind.CALL and _is_ai(facts, link.agent_id):
                    groups = [ContactKind.AI.value]
                else:
                    groups = [source.kind.value]
            case FunnelGrouping.LENDER:
                groups = _lenders(facts, link.user_id)
            case _:
                groups = [ALL]
        add(groups, link_sent=True, link_opened=link.opened, link_used=link.used)

    for conversion in facts.conversions:
        match grouping:
            case FunnelGrouping.AGENT:
                groups = [agent_group(facts.agents, conversion.agent_id)]
            case FunnelGrouping.QUEUE:
                groups = [conversion.queue or NO_QUEUE]
            case FunnelGrouping.CHANNEL:
                kind = conversion.contact_kind
                if kind is None:
                    groups = [NO_CHANNEL]
                elif kind is ContactKind.CALL and _is_ai(facts, conversion.agent_id):
                    groups = [ContactKind.AI.value]
                else:
                    groups = [kind.value]
            case FunnelGrouping.LENDER:
                groups = _lenders(facts, conversion.user_id, conversion.claim_id)
            case _:
                groups = [ALL]
        signed = conversion.kind is ConversionKind.SIGNED
        add(groups, signed=signed, documents_received=not signed)

    rows = [FunnelRow(group, **stages) for group, stages in sorted(counts.items())]
    return FunnelReport(start=facts.start, end=facts.end, grouping=grouping, rows=rows)


async def funnel(
    dialler: AsyncEngine,
    replica: AsyncEngine | None,
    start: datetime,
    end: datetime,
    grouping: FunnelGrouping = FunnelGrouping.TOTAL,
) -> FunnelReport:
    """The funnel over [start, end) by `grouping` (the module docstring defines each
    stage and group). `replica` is needed only for the lender grouping."""
    if grouping is FunnelGrouping.LENDER and replica is None:
        raise ValueError("the lender grouping needs the replica")
    facts = await gather(dialler, replica, start, end, lenders=grouping is FunnelGrouping.LENDER)
    return report(facts, grouping)


def total(rows: Iterable[FunnelRow], group: str = "total") -> FunnelRow:
    """The stages summed over rows (for the lender grouping, more than the period's total)."""
    sums = dict.fromkeys(STAGES, 0)
    for row in rows:
        for stage in STAGES:
            sums[stage] += getattr(row, stage)
    return FunnelRow(group, **sums)
