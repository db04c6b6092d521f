"""Supervisor analytics over a date range (issue 12): per agent, per queue, per channel and
per lender, the conversion funnel and hour-of-day contact rates, as tables that the page
and its CSV exports share (so both always show the same figures).

Where each figure comes from (the owners count in the database; nothing here loops over
calls, changes, links or conversions, only over the groups the database returns):

- calls, reached, talk time, outcomes, hours: `calls` started in the range, grouped by
  `adapters.call_log.call_breakdown` (read through `services.funnel.gather`, so the funnel
  and the tables come from one scan). "Reached" is the funnel's: a person answered and an
  agent was bridged to them, or a call recorded by hand whose outcome says they spoke.
  Talk time is `calls.agent_seconds`, the time the agent's leg was bridged to the claimant
  (`duration_seconds` is the claimant's leg: it counts answering machines and ringing
  before an agent joined, and is not the agent's talk). Contact rate = reached / calls.
- time in each state (ready, paused, on call, wrap-up) and wrap-up time: the intervals
  between an agent's `agent_state_changes`, clipped to the range and to now
  (`adapters.agent_store.state_time_between`, `domain.analytics.time_in_states`).
  Wrap-up time is the time in the wrap-up state.
- links sent and used, signed, documents received: the funnel (`services.funnel`), by
  agent, queue and channel, with its definitions.
- SMS sent and received: `sms_messages` kept in the range, outbound ones by their agent.
- lenders (`lenders`): the funnel by lender, which reads every claimant's lenders from the
  claims replica, so the page loads that table after itself and shows the rest without it.

The calls and the time in states of a settled day (two days old:
`domain.analytics.settled_days`) are counted once and kept by their owners (`call_days`,
`agent_state_days`): a report reads the kept days and counts only the rest of its range.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import agent_store, sms_outbox
from adapters.agent_store import AgentLabel
from adapters.databases import for_reports
from domain.analytics import (
    WORKING_STATES,
    DateRange,
    HourFigures,
    StateSpan,
    StateTotal,
    average,
    csv_rows,
    day_start,
    hours_of_day,
    rate,
    settled_days,
    time_in_states,
    uk_today,
)
from domain.attribution import UK
from domain.dispositions import EFFECTS, Disposition
from schemas.attribution import FunnelGrouping, FunnelReport, FunnelRow
from schemas.enums import AgentState, MessageDirection
from services import funnel
from services.funnel import FunnelFacts

log = structlog.get_logger(__name__)

NO_OUTCOME = "(no outcome)"
NO_AGENT = funnel.NO_AGENT
LENDERS_UNAVAILABLE = "The claims replica did not answer, so the lenders cannot be shown."
STATE_HEADINGS = {
    AgentState.READY: "Ready",
    AgentState.PAUSED: "Paused",
    AgentState.ON_CALL: "On call",
    AgentState.WRAP_UP: "Wrap-up",
}
# The funnel's stages as the page names them, in order (documents received is not a step
# of the signing funnel but is shown with it).
STAGE_HEADINGS = {
    "called": "Called",
    "reached": "Reached",
    "link_sent": "Link sent",
    "link_opened": "Link opened",
    "link_used": "Link used",
    "signed": "Signed",
    "documents_received": "Documents received",
}
STEPS = ("called", "reached", "link_sent", "link_opened", "link_used", "signed")

Kind = Literal["text", "count", "seconds", "rate"]
TABLES = ("funnel", "agents", "outcomes", "queues", "channels", "lenders", "hours")


@dataclass(frozen=True)
class Column:
    heading: str
    kind: Kind = "count"


@dataclass(frozen=True)
class Table:
    """One table of the page and its CSV export: values are raw (seconds, fractions), the
    page formats them and the CSV keeps them."""

    key: str  # its CSV's name: /supervisor/analytics/<key>.csv (one of TABLES)
    title: str
    columns: list[Column]
    rows: list[list[Any]]
    note: str = ""
    unavailable: str | None = None  # why the table cannot be shown

    def csv(self) -> str:
        """The table as CSV: seconds as whole seconds, rates as fractions (0.25 is 25%)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        headings = [
            f"{c.heading} (seconds)" if c.kind == "seconds" else c.heading for c in self.columns
        ]
        values = (
            [
                _csv_value(column.kind, value)
                for column, value in zip(self.columns, row, strict=True)
            ]
            for row in self.rows
        )
        writer.writerows(csv_rows(headings, values))
        return out.getvalue()


def _csv_value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "seconds":
        return round(value)
    if kind == "rate":
        return round(value, 4)
    return value


@dataclass(frozen=True)
class AgentFigures:
    agent_id: int | None
    name: str
    is_ai: bool
    calls: int = 0
    reached: int = 0
    talk_seconds: int = 0
    states: Mapping[AgentState, float] = field(default_factory=dict)
    sms_sent: int = 0
    links_sent: int = 0
    links_used: int = 0
    signed: int = 0
    documents: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)

    @property
    def contact_rate(self) -> float | None:
        return rate(self.reached, self.calls)

    @property
    def average_talk(self) -> float | None:
        return average(self.talk_seconds, self.reached)

    def seconds_in(self, state: AgentState) -> float:
        return self.states.get(state, 0.0)


@dataclass(frozen=True)
class Totals:
    calls: int
    reached: int
    talk_seconds: int
    links_sent: int
    links_used: int
    signed: int
    documents: int
    agents: int  # agents with any activity

    @property
    def contact_rate(self) -> float | None:
        return rate(self.reached, self.calls)


@dataclass(frozen=True)
class Analytics:
    chosen: DateRange
    start: datetime
    end: datetime
    totals: Totals
    funnel: FunnelRow
    agents: list[AgentFigures]
    outcome_keys: list[str]  # the outcome columns, in the dispositions' order
    hours: list[HourFigures]
    tables: dict[str, Table]  # by key, in the page's order (the lenders are apart: `lenders`)


async def analytics(dialler: AsyncEngine, chosen: DateRange, now: datetime) -> Analytics:
    """Every figure of the range but the lenders (`now` ends the intervals still running).
    The reads run at once, each on a connection of its own."""
    start, end = chosen.period
    settled = settled_days(chosen, uk_today(now))
    facts, (totals, spans, live_from), messages = await asyncio.gather(
        funnel.gather(dialler, None, start, end, settled=settled),
        _state_time(dialler, start, end, settled),
        _messages(dialler, start, end),
    )
    states = time_in_states(totals, spans, live_from, end, now)
    by_agent = {
        grouping: funnel.report(facts, grouping)
        for grouping in (FunnelGrouping.TOTAL, FunnelGrouping.AGENT)
    }
    wanted = {a for a, _ in facts.calls.by_agent if a is not None} | set(states)
    wanted |= {agent for agent, _ in messages if agent is not None}
    missing = wanted - set(facts.agents)
    labels = dict(facts.agents)
    if missing:
        async with dialler.connect() as conn:
            labels |= await agent_store.agent_labels(conn, missing)
    agents = _agents(facts, labels, states, messages, by_agent[FunnelGrouping.AGENT])
    total_row = by_agent[FunnelGrouping.TOTAL].rows[0]
    outcome_keys = _outcome_keys(facts)
    hours = hours_of_day({h: (t.calls, t.reached) for h, t in facts.calls.by_hour.items()})
    tables = [
        _funnel_table(total_row),
        _agents_table(agents),
        _outcomes_table(agents, outcome_keys),
        _queues_table(facts),
        _channels_table(funnel.report(facts, FunnelGrouping.CHANNEL), messages),
        _hours_table(hours),
    ]
    talk = sum(t.talk_seconds for t in facts.calls.by_agent.values())
    summary = Totals(
        calls=total_row.called,
        reached=total_row.reached,
        talk_seconds=talk,
        links_sent=total_row.link_sent,
        links_used=total_row.link_used,
        signed=total_row.signed,
        documents=total_row.documents_received,
        agents=sum(1 for a in agents if a.agent_id is not None),
    )
    return Analytics(
        chosen=chosen,
        start=start,
        end=end,
        totals=summary,
        funnel=total_row,
        agents=agents,
        outcome_keys=outcome_keys,
        hours=hours,
        tables={t.key: t for t in tables},
    )


async def lenders(dialler: AsyncEngine, replica: AsyncEngine, chosen: DateRange) -> Table:
    """The funnel by lender: the claimants' lenders are on the claims replica, read for
    every claimant of the range, so the page loads this table on its own. Without the
    replica, the table is empty and says why."""
    start, end = chosen.period
    facts = await funnel.gather(dialler, None, start, end, per_claimant=True)
    try:
        facts = await funnel.read_lenders(facts, replica)
    except (SQLAlchemyError, OSError) as error:
        log.warning("analytics without lenders: the replica failed", error=type(error).__name__)
        return _lenders_table(facts, LENDERS_UNAVAILABLE)
    return _lenders_table(facts, None)


async def _state_time(
    dialler: AsyncEngine, start: datetime, end: datetime, settled: Sequence[date]
) -> tuple[list[StateTotal], list[StateSpan], datetime]:
    """Time in each state: the settled days' kept counts, and the rest of the range counted
    now (its totals, and the spans for `time_in_states` to clip from the returned instant
    on)."""
    kept: list[date] = []
    if settled:
        async with dialler.begin() as conn:
            await for_reports(conn)
            kept = await agent_store.keep_state_days(conn, settled, UK.key)
    live_from = day_start(kept[-1] + timedelta(days=1)) if kept else start
    totals: list[StateTotal] = []
    spans: list[StateSpan] = []
    async with dialler.connect() as conn:
        await for_reports(conn)
        if kept:
            totals += await agent_store.kept_state_time(conn, kept[0], kept[-1])
        if live_from < end:
            live_totals, spans = await agent_store.state_time_between(conn, live_from, end)
            totals += live_totals
    return totals, spans, live_from


async def _messages(
    dialler: AsyncEngine, start: datetime, end: datetime
) -> dict[tuple[int | None, str], int]:
    async with dialler.connect() as conn:
        await for_reports(conn)
        return await sms_outbox.message_counts_between(conn, start, end)


def _outcome_keys(facts: FunnelFacts) -> list[str]:
    """Every disposition (in the console's order), then any other value found, then calls
    with no outcome recorded."""
    seen = {d for _, d in facts.calls.by_agent}
    known = [d.value for d in Disposition]
    others = sorted(d for d in seen if d is not None and d not in known)
    return [*known, *others, NO_OUTCOME]


def outcome_heading(key: str) -> str:
    try:
        return EFFECTS[Disposition(key)].label
    except ValueError:
        return key


def _agents(
    facts: FunnelFacts,
    labels: Mapping[int, AgentLabel],
    states: Mapping[int, Mapping[AgentState, float]],
    messages: Mapping[tuple[int | None, str], int],
    by_agent: FunnelReport,
) -> list[AgentFigures]:
    calls: dict[int | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    outcomes: dict[int | None, dict[str, int]] = defaultdict(dict)
    for (agent_id, disposition), tally in facts.calls.by_agent.items():
        sums = calls[agent_id]
        sums[0] += tally.calls
        sums[1] += tally.reached
        sums[2] += tally.talk_seconds
        outcomes[agent_id][disposition or NO_OUTCOME] = tally.calls
    funnel_rows = {row.group: row for row in by_agent.rows}
    sent = {
        a: n for (a, direction), n in messages.items() if direction == MessageDirection.OUTBOUND
    }
    ids: set[int | None] = set(calls) | set(states) | set(sent)
    # links and conversions credited to an agent who neither called nor texted in the range
    ids |= {a for a in facts.agents if funnel.agent_group(facts.agents, a) in funnel_rows}
    if NO_AGENT in funnel_rows:
        ids.add(None)
    found: list[AgentFigures] = []
    for agent_id in ids:
        row = funnel_rows.get(funnel.agent_group(facts.agents, agent_id))
        label = labels.get(agent_id) if agent_id is not None else None
        name = NO_AGENT if agent_id is None else label.display_name if label else f"#{agent_id}"
        n_calls, reached, talk = calls.get(agent_id, (0, 0, 0))
        figures = AgentFigures(
            agent_id=agent_id,
            name=name,
            is_ai=label is not None and label.is_ai,
            calls=n_calls,
            reached=reached,
            talk_seconds=talk,
            states=states.get(agent_id, {}) if agent_id is not None else {},
            sms_sent=sent.get(agent_id, 0),
            links_sent=row.link_sent if row else 0,
            links_used=row.link_used if row else 0,
            signed=row.signed if row else 0,
            documents=row.documents_received if row else 0,
            outcomes=outcomes.get(agent_id, {}),
        )
        if _active(figures, works_a_queue=label is None or label.works_a_queue):
            found.append(figures)
    found.sort(key=lambda a: (a.agent_id is None, -a.calls, a.name.casefold(), a.agent_id or 0))
    return found


def _active(agent: AgentFigures, *, works_a_queue: bool) -> bool:
    """Listed when they contacted claimants or were credited; an agent also for time spent
    signed in. A supervisor's or admin's signed-in time alone is not agent work: signing in
    records a state for everyone, and they would fill the table with empty rows."""
    contacted = bool(
        agent.calls or agent.sms_sent or agent.links_sent or agent.signed or agent.documents
    )
    return contacted or (works_a_queue and any(agent.states.values()))


# --- the tables ------------------------------------------------------------------------------


def _funnel_table(row: FunnelRow) -> Table:
    rows: list[list[Any]] = []
    previous: int | None = None
    for stage in STEPS:
        count = getattr(row, stage)
        of_previous = rate(count, previous) if previous is not None else None
        rows.append([STAGE_HEADINGS[stage], count, rate(count, row.called), of_previous])
        previous = count
    rows.append([STAGE_HEADINGS["documents_received"], row.documents_received, None, None])
    return Table(
        "funnel",
        "Conversion funnel",
        [Column("Stage", "text"), Column("Count"), Column("Of called", "rate"),
         Column("Of the stage before", "rate")],
        rows,
        note="Links opened and used, whenever it happened, of the links sent in the range; "
        "signatures and documents received in the range, credited to the last contact.",
    )  # fmt: skip


def _agents_table(agents: Sequence[AgentFigures]) -> Table:
    columns = [
        Column("Agent", "text"),
        Column("Kind", "text"),
        Column("Calls"),
        Column("Reached"),
        Column("Contact rate", "rate"),
        Column("Talk time", "seconds"),
        Column("Average talk", "seconds"),
        *(Column(STATE_HEADINGS[s], "seconds") for s in WORKING_STATES),
        Column("SMS sent"),
        Column("Links sent"),
        Column("Links used"),
        Column("Signed"),
        Column("Documents received"),
    ]
    rows = [
        [
            a.name if a.agent_id is None else f"{a.name} (#{a.agent_id})",
            "" if a.agent_id is None else "AI" if a.is_ai else "Person",
            a.calls,
            a.reached,
            a.contact_rate,
            a.talk_seconds,
            a.average_talk,
            *(a.seconds_in(s) for s in WORKING_STATES),
            a.sms_sent,
            a.links_sent,
            a.links_used,
            a.signed,
            a.documents,
        ]
        for a in agents
    ]
    return Table(
        "agents",
        "Agents",
        columns,
        rows,
        note="Talk time: connected to the claimant; average over calls that reached them. "
        "Ready, Paused, On call and Wrap-up: time in each state within the range.",
    )


def _outcomes_table(agents: Sequence[AgentFigures], keys: Sequence[str]) -> Table:
    used = [k for k in keys if any(a.outcomes.get(k) for a in agents)]
    rows: list[list[Any]] = [
        [
            a.name if a.agent_id is None else f"{a.name} (#{a.agent_id})",
            *(a.outcomes.get(k, 0) for k in used),
            a.calls,
        ]
        for a in agents
        if a.calls
    ]
    if rows:
        rows.append(["Total", *(sum(a.outcomes.get(k, 0) for a in agents) for k in used),
                     sum(a.calls for a in agents)])  # fmt: skip
    columns = [Column("Agent", "text"), *(Column(outcome_heading(k)) for k in used),
               Column("Calls")]  # fmt: skip
    return Table("outcomes", "Outcomes by agent", columns, rows)


def _stage_columns(first: str) -> list[Column]:
    return [Column(first, "text"), *(Column(h) for h in STAGE_HEADINGS.values())]


def _stages(row: FunnelRow) -> list[Any]:
    return [row.group, *(getattr(row, stage) for stage in STAGE_HEADINGS)]


def _queues_table(facts: FunnelFacts) -> Table:
    talk: dict[str, int] = defaultdict(int)
    for (queue, _), tally in facts.calls.by_queue.items():
        talk[queue or funnel.NO_QUEUE] += tally.talk_seconds
    rows = [
        [*_stages(row), rate(row.reached, row.called), talk.get(row.group, 0)]
        for row in funnel.report(facts, FunnelGrouping.QUEUE).rows
    ]
    columns = [*_stage_columns("Queue"), Column("Contact rate", "rate"),
               Column("Talk time", "seconds")]  # fmt: skip
    return Table(
        "queues",
        "Queues",
        columns,
        rows,
        note="Calls by the queue they were placed from; links by the queue of the call they "
        "were sent from; conversions by the queue of the call they are credited to.",
    )


def _channels_table(report: FunnelReport, messages: Mapping[tuple[int | None, str], int]) -> Table:
    by_direction: dict[str, int] = defaultdict(int)
    for (_, direction), count in messages.items():
        by_direction[direction] += count
    rows_by_group = {row.group: row for row in report.rows}
    if any(by_direction.values()):
        rows_by_group.setdefault("sms", FunnelRow("sms"))
    rows: list[list[Any]] = []
    for group, row in sorted(rows_by_group.items()):
        texts = group == "sms"
        rows.append([
            *_stages(row),
            by_direction[MessageDirection.OUTBOUND] if texts else None,
            by_direction[MessageDirection.INBOUND] if texts else None,
        ])  # fmt: skip
    columns = [*_stage_columns("Channel"), Column("SMS sent"), Column("SMS received")]
    return Table(
        "channels",
        "Channels",
        columns,
        rows,
        note="call: calls by people; ai: calls by AI agents; sms and email: magic links "
        "sent by text or email without a call, and conversions credited to a text. "
        "SMS sent and received: every message kept in the range.",
    )


def _lenders_table(facts: FunnelFacts, unavailable: str | None) -> Table:
    rows = (
        []
        if facts.lenders is None
        else [_stages(row) for row in funnel.report(facts, FunnelGrouping.LENDER).rows]
    )
    return Table(
        "lenders",
        "Lenders",
        _stage_columns("Lender"),
        rows,
        note="By the lenders of the claimant's claims: a claimant with claims against two "
        "lenders counts under both, so the rows can add up to more than the total.",
        unavailable=unavailable,
    )


def _hours_table(hours: Sequence[HourFigures]) -> Table:
    return Table(
        "hours",
        "Contact rate by hour of day (UK time)",
        [Column("Hour", "text"), Column("Calls"), Column("Reached"),
         Column("Contact rate", "rate")],
        [[h.label, h.calls, h.reached, h.contact_rate] for h in hours],
    )  # fmt: skip
