"""The conversion funnel (issue 11): `dialler report funnel` and the supervisor analytics
(`services.analytics`) read it from here. The CLI only formats `FunnelReport`.

The facts of a period are read once (`gather`: calls, links and conversions counted by the
database, never one row each) and grouped any number of ways (`report`); `funnel` does both
for one grouping.

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

A live split's arms (issue 14) are compared by `split_arms`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters import agent_store, call_log, conversions, magic_links
from adapters.agent_store import AgentLabel
from adapters.call_log import ArmTally, CallBreakdown
from adapters.conversions import ConversionBreakdown
from adapters.databases import for_reports
from adapters.magic_links import LinkBreakdown
from adapters.replica_reader import ReplicaReader
from adapters.scoring_splits import Split
from domain.analytics import day_start
from domain.attribution import UK
from domain.scoring_split import Arm
from domain.split_comparison import ArmComparison, ArmCounts, compare_arms
from schemas.attribution import (
    ContactKind,
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
    ways by `report`: calls, links and conversions, each already counted by the database
    per the groups' keys (and, for the lender grouping, per claimant), and the names the
    groups are labelled with."""

    start: datetime
    end: datetime
    calls: CallBreakdown
    links: LinkBreakdown
    conversions: ConversionBreakdown
    agents: Mapping[int, AgentLabel]
    lenders: Mapping[int, Mapping[int, str]] | None  # user id -> claim id -> lender
    per_claimant: bool = False


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


async def gather(
    dialler: AsyncEngine,
    replica: AsyncEngine | None,
    start: datetime,
    end: datetime,
    *,
    lenders: bool = False,
    per_claimant: bool = False,
    settled: Sequence[date] = (),
) -> FunnelFacts:
    """The facts of [start, end). `lenders` also reads the claimants' lenders from the
    replica (the lender grouping needs them); `per_claimant` only counts per claimant, for
    `read_lenders` to add the lenders later. `settled`: the period's first days, from the
    UK day `start` begins, that are settled (`domain.analytics.settled_days`): their calls
    are counted once and kept (not per claimant). Calls, links and conversions are read at
    once, each on a connection of its own."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's ends must be timezone-aware")
    if end <= start:
        raise ValueError("the period ends before it starts")
    if lenders and replica is None:
        raise ValueError("the lender grouping needs the replica")
    if settled and day_start(settled[0]) != start:
        raise ValueError("the settled days must start with the period's first day")
    by_user = lenders or per_claimant

    kept_days = [] if by_user else list(settled)  # the kept counts are not per claimant

    async def calls() -> CallBreakdown:
        return call_log.combined(
            await kept_and_live(
                dialler,
                start,
                end,
                kept_days,
                keep=lambda conn, days: call_log.keep_call_days(conn, days, UK.key),
                read_kept=call_log.kept_call_breakdown,
                read_live=lambda conn, since, until: call_log.call_breakdown(
                    conn, since, until, UK.key, by_user=by_user
                ),
            )
        )

    async def links() -> LinkBreakdown:
        queue = call_log.queue_of_call
        return magic_links.combined(
            await kept_and_live(
                dialler,
                start,
                end,
                kept_days,
                keep=lambda conn, days: magic_links.keep_link_days(conn, days, UK.key, queue),
                read_kept=magic_links.kept_link_breakdown,
                read_live=lambda conn, since, until: magic_links.link_counts_between(
                    conn, since, until, queue, by_user=by_user
                ),
            )
        )

    async def converted() -> ConversionBreakdown:
        async with dialler.connect() as conn:
            await for_reports(conn)
            return await conversions.conversion_counts_between(conn, start, end, by_claim=by_user)

    counted_calls, counted_links, counted_conversions = await asyncio.gather(
        calls(), links(), converted()
    )
    agent_ids = {agent for agent, _ in counted_calls.by_agent}
    agent_ids |= {agent for agent, *_ in counted_links.by_source}
    agent_ids |= {agent for agent, *_ in counted_conversions.by_credit}
    async with dialler.connect() as conn:
        agents = await agent_store.agent_labels(conn, (a for a in agent_ids if a is not None))
    facts = FunnelFacts(
        start, end, counted_calls, counted_links, counted_conversions, agents, None, by_user
    )
    if lenders:
        assert replica is not None
        facts = await read_lenders(facts, replica)
    return facts


Counts = TypeVar("Counts")


async def kept_and_live(
    dialler: AsyncEngine,
    start: datetime,
    end: datetime,
    settled: Sequence[date],
    *,
    keep: Callable[[AsyncConnection, Sequence[date]], Awaitable[list[date]]],
    read_kept: Callable[[AsyncConnection, date, date], Awaitable[Counts]],
    read_live: Callable[[AsyncConnection, datetime, datetime], Awaitable[Counts]],
) -> list[Counts]:
    """The counts of [start, end) in parts: the settled days its owner keeps (`keep` counts
    those not kept yet and says which are, from the first on), and the rest counted live."""
    kept: list[date] = []
    if settled:
        async with dialler.begin() as conn:
            await for_reports(conn)
            kept = await keep(conn, settled)
    live_from = day_start(kept[-1] + timedelta(days=1)) if kept else start
    parts = []
    async with dialler.connect() as conn:
        await for_reports(conn)
        if kept:
            parts.append(await read_kept(conn, kept[0], kept[-1]))
        if live_from < end:
            parts.append(await read_live(conn, live_from, end))
    return parts


async def read_lenders(facts: FunnelFacts, replica: AsyncEngine) -> FunnelFacts:
    """The facts with the lenders of every claimant in them (gathered `per_claimant`)."""
    if not facts.per_claimant:
        raise ValueError("the facts were gathered without the counts per claimant")
    users = set(facts.calls.by_user) | set(facts.links.by_user)
    users |= {user for user, _ in facts.conversions.by_claim}
    found = await ReplicaReader(replica).claim_lenders(sorted(users))
    return replace(facts, lenders=found)


def _link_groups(
    facts: FunnelFacts,
    grouping: FunnelGrouping,
    agent_id: int | None,
    channel: str,
    source_kind: str | None,
    queue: str | None,
) -> list[str]:
    match grouping:
        case FunnelGrouping.AGENT:
            return [agent_group(facts.agents, agent_id)]
        case FunnelGrouping.QUEUE:
            return [queue or NO_QUEUE]
        case FunnelGrouping.CHANNEL:
            if source_kind is None:
                return [channel]
            if source_kind == ContactKind.CALL and _is_ai(facts, agent_id):
                return [ContactKind.AI.value]
            return [source_kind]
    return [ALL]


def _conversion_groups(
    facts: FunnelFacts,
    grouping: FunnelGrouping,
    agent_id: int | None,
    queue: str | None,
    kind: ContactKind | None,
) -> list[str]:
    match grouping:
        case FunnelGrouping.AGENT:
            return [agent_group(facts.agents, agent_id)]
        case FunnelGrouping.QUEUE:
            return [queue or NO_QUEUE]
        case FunnelGrouping.CHANNEL:
            if kind is None:
                return [NO_CHANNEL]
            if kind is ContactKind.CALL and _is_ai(facts, agent_id):
                return [ContactKind.AI.value]
            return [kind.value]
    return [ALL]


def report(facts: FunnelFacts, grouping: FunnelGrouping = FunnelGrouping.TOTAL) -> FunnelReport:
    """The funnel of the facts' period by `grouping` (the module docstring defines each
    stage and group)."""
    if grouping is FunnelGrouping.LENDER and facts.lenders is None:
        raise ValueError("the lender grouping needs the facts gathered with lenders")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STAGES, 0))
    if grouping is FunnelGrouping.TOTAL:
        counts[ALL]  # one row even for an empty period

    def add(groups: Iterable[str], **stages: int) -> None:
        for group in groups:
            row = counts[group]
            for stage, count in stages.items():
                row[stage] += count

    if grouping is FunnelGrouping.LENDER:
        for user_id, calls in facts.calls.by_user.items():
            add(_lenders(facts, user_id), called=calls.calls, reached=calls.reached)
        for user_id, links in facts.links.by_user.items():
            add(_lenders(facts, user_id), link_sent=links.sent, link_opened=links.opened,
                link_used=links.used)  # fmt: skip
        for (user_id, claim_id), converted in facts.conversions.by_claim.items():
            add(_lenders(facts, user_id, claim_id), signed=converted.signed,
                documents_received=converted.documents)  # fmt: skip
        return _report(facts, grouping, counts)

    if grouping is FunnelGrouping.QUEUE:
        for (queue, _), calls in facts.calls.by_queue.items():
            add([queue or NO_QUEUE], called=calls.calls, reached=calls.reached)
    else:
        for (agent_id, _), calls in facts.calls.by_agent.items():
            match grouping:
                case FunnelGrouping.AGENT:
                    groups = [agent_group(facts.agents, agent_id)]
                case FunnelGrouping.CHANNEL:
                    groups = ["ai" if _is_ai(facts, agent_id) else ContactKind.CALL.value]
                case _:
                    groups = [ALL]
            add(groups, called=calls.calls, reached=calls.reached)
    for (agent_id, channel, source_kind, queue), links in facts.links.by_source.items():
        add(_link_groups(facts, grouping, agent_id, channel, source_kind, queue),
            link_sent=links.sent, link_opened=links.opened, link_used=links.used)  # fmt: skip
    for (agent_id, queue, kind), converted in facts.conversions.by_credit.items():
        add(_conversion_groups(facts, grouping, agent_id, queue, kind),
            signed=converted.signed, documents_received=converted.documents)  # fmt: skip
    return _report(facts, grouping, counts)


def _report(
    facts: FunnelFacts, grouping: FunnelGrouping, counts: Mapping[str, Mapping[str, int]]
) -> FunnelReport:
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


# --- a live split's arms (issue 14) -------------------------------------------------------------


@dataclass(frozen=True)
class SplitArms:
    """A live split's arms over its calls, compared: contacts (claimants called), reached and
    converted per arm, with the difference candidate - control, its 95 % interval and the
    p-value (statsmodels, `domain.split_comparison`).

    The calls are those we placed while the split ran ([started, ended), or up to now) that
    carry an arm: a call takes its task's arm with its outcome (`adapters.call_log`). A call
    without an outcome, or made while no split ran, is in no arm. Conversions are those
    credited to the arm's calls (`domain.attribution`), whenever they occurred."""

    split: Split
    start: datetime
    end: datetime
    comparison: ArmComparison


def _arm(arm: Arm, tally: ArmTally | None) -> ArmCounts:
    if tally is None:
        return ArmCounts(arm, 0, 0, 0, 0, 0, 0)
    return ArmCounts(
        arm,
        tally.claimants,
        tally.reached_claimants,
        tally.converted_claimants,
        tally.calls,
        tally.reached_calls,
        tally.conversions,
    )


async def split_arms(dialler: AsyncEngine, split: Split, now: datetime) -> SplitArms:
    """The arms of `split` (running: up to `now`), compared."""
    end = split.ended_at or now
    async with dialler.connect() as conn:
        await for_reports(conn)
        tallies = await call_log.arm_counts(
            conn, split.started_at, end, conversions.conversions_per_call(split.started_at)
        )
    comparison = compare_arms(
        _arm(Arm.CONTROL, tallies.get(Arm.CONTROL.value)),
        _arm(Arm.CANDIDATE, tallies.get(Arm.CANDIDATE.value)),
    )
    return SplitArms(split, split.started_at, end, comparison)
