"""The conversion funnel (issue 11): `dialler report funnel` and, later, the supervisor
analytics read it from here. The CLI only formats `FunnelReport`.

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
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, call_log, conversions, magic_links
from adapters.agent_store import AgentLabel
from adapters.replica_reader import ReplicaReader
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


@dataclass
class _Labels:
    agents: Mapping[int, AgentLabel]
    link_call_queues: Mapping[int, str | None]
    lenders: Mapping[int, Mapping[int, str]]  # user id -> claim id -> lender


def _agent(labels: _Labels, agent_id: int | None) -> str:
    if agent_id is None:
        return NO_AGENT
    label = labels.agents.get(agent_id)
    return f"{label.display_name} (#{agent_id})" if label else f"agent #{agent_id}"


def _is_ai(labels: _Labels, agent_id: int | None) -> bool:
    label = labels.agents.get(agent_id) if agent_id is not None else None
    return label is not None and label.is_ai


def _lenders(labels: _Labels, user_id: int, claim_id: int | None = None) -> list[str]:
    claims = labels.lenders.get(user_id, {})
    if claim_id is not None and claim_id in claims:
        return [claims[claim_id]]
    return sorted(set(claims.values())) or [UNKNOWN_LENDER]


def _call_ref(ref: str) -> int | None:
    return int(ref) if ref.isdigit() else None


async def funnel(
    dialler: AsyncEngine,
    replica: AsyncEngine | None,
    start: datetime,
    end: datetime,
    grouping: FunnelGrouping = FunnelGrouping.TOTAL,
) -> FunnelReport:
    """The funnel over [start, end) by `grouping` (the module docstring defines each
    stage and group). `replica` is needed only for the lender grouping."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's ends must be timezone-aware")
    if end <= start:
        raise ValueError("the period ends before it starts")
    if grouping is FunnelGrouping.LENDER and replica is None:
        raise ValueError("the lender grouping needs the replica")
    async with dialler.connect() as conn:
        calls = await call_log.calls_started_between(conn, start, end)
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
        agent_ids = {c.agent_id for c in calls} | {link.agent_id for link in links}
        agent_ids |= {c.agent_id for c in converted}
        agents = await agent_store.agent_labels(conn, (a for a in agent_ids if a is not None))
    lenders: Mapping[int, Mapping[int, str]] = {}
    if grouping is FunnelGrouping.LENDER:
        assert replica is not None
        users = {c.user_id for c in calls} | {link.user_id for link in links}
        users |= {c.user_id for c in converted}
        lenders = await ReplicaReader(replica).claim_lenders(sorted(users))
    labels = _Labels(agents, link_call_queues, lenders)

    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAGES, 0))
    if grouping is FunnelGrouping.TOTAL:
        counts[ALL]  # one row even for an empty period

    def add(groups: Iterable[str], **stages: bool) -> None:
        for group in groups:
            row = counts[group]
            for stage, happened in stages.items():
                row[stage] += int(happened)

    for call in calls:
        match grouping:
            case FunnelGrouping.AGENT:
                groups = [_agent(labels, call.agent_id)]
            case FunnelGrouping.QUEUE:
                groups = [call.queue or NO_QUEUE]
            case FunnelGrouping.CHANNEL:
                groups = ["ai" if _is_ai(labels, call.agent_id) else ContactKind.CALL.value]
            case FunnelGrouping.LENDER:
                groups = _lenders(labels, call.user_id)
            case _:
                groups = [ALL]
        add(groups, called=True, reached=call.reached)

    for link in links:
        source = link.source
        match grouping:
            case FunnelGrouping.AGENT:
                groups = [_agent(labels, link.agent_id)]
            case FunnelGrouping.QUEUE:
                call_id = (
                    _call_ref(source.ref)
                    if source is not None and source.kind is ContactKind.CALL
                    else None
                )
                queue = labels.link_call_queues.get(call_id) if call_id is not None else None
                groups = [queue or NO_QUEUE]
            case FunnelGrouping.CHANNEL:
                if source is None:
                    groups = [link.channel]
                elif source.kind is ContactKind.CALL and _is_ai(labels, link.agent_id):
                    groups = [ContactKind.AI.value]
                else:
                    groups = [source.kind.value]
            case FunnelGrouping.LENDER:
                groups = _lenders(labels, link.user_id)
            case _:
                groups = [ALL]
        add(groups, link_sent=True, link_opened=link.opened, link_used=link.used)

    for conversion in converted:
        match grouping:
            case FunnelGrouping.AGENT:
                groups = [_agent(labels, conversion.agent_id)]
            case FunnelGrouping.QUEUE:
                groups = [conversion.queue or NO_QUEUE]
            case FunnelGrouping.CHANNEL:
                kind = conversion.contact_kind
                if kind is None:
                    groups = [NO_CHANNEL]
                elif kind is ContactKind.CALL and _is_ai(labels, conversion.agent_id):
                    groups = [ContactKind.AI.value]
                else:
                    groups = [kind.value]
            case FunnelGrouping.LENDER:
                groups = _lenders(labels, conversion.user_id, conversion.claim_id)
            case _:
                groups = [ALL]
        signed = conversion.kind is ConversionKind.SIGNED
        add(groups, signed=signed, documents_received=not signed)

    rows = [FunnelRow(group, **stages) for group, stages in sorted(counts.items())]
    return FunnelReport(start=start, end=end, grouping=grouping, rows=rows)


def total(rows: Iterable[FunnelRow], group: str = "total") -> FunnelRow:
    """The stages summed over rows (for the lender grouping, more than the period's total)."""
    sums = dict.fromkeys(STAGES, 0)
    for row in rows:
        for stage in STAGES:
            sums[stage] += getattr(row, stage)
    return FunnelRow(group, **sums)
