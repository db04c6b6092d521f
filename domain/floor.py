"""The floor as a supervisor's wallboard shows it: where each task stands, why a task waits,
the day's call figures and the agents' states. Pure: rows and time are passed in.

Why a task waits is read from what its workflow wrote on it (`call_tasks.not_before_reason`,
built by `domain.contact_policy`, `domain.calling_windows`, `domain.consent` and
`domain.facts`), plus the personal-callback hold (`owner_agent_id`, `held_until`):

- a *ready* task whose `not_before` has passed is callable now, unless it is a personal
  callback still held for its owner (`held`: only the owner is offered it);
- a *ready* task whose `not_before` is ahead waits for the constraint that set it, which
  the reason names first ("cooldown after no_answer until 14:30, then calling window closed
  until 08:00 Tue 3 Mar" waits for the cooldown);
- a *withdrawn* task waits when what took it out of the queue can change: no live-call
  consent, the TPS, a wrong or missing number. A withdrawal that ends outreach (opted out,
  deceased, nothing left to chase, no workflow) is not in the queue at all;
- a *claimed* task is with an agent; a *completed* one is done.

A TPS-listed number without consent counts as TPS (either consent or a TPS removal would
let the call through; the listing is the more specific fact for a supervisor).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from domain.abandoned_calls import MAX_ABANDON_RATE, AbandonRate, abandon_rate
from domain.attribution import SPOKE_DISPOSITIONS
from domain.calling_windows import as_utc
from domain.consent import NO_LIVE_CALL_CONSENT, TPS_LISTED, TPS_UNSCREENED
from domain.dispositions import EFFECTS, Disposition
from domain.facts import WRONG_NUMBER_REASON
from schemas.enums import AgentState, Queue, TaskStatus

UK = ZoneInfo("Europe/London")
CALLBACK_LOOKAHEAD = timedelta(hours=1)


class Standing(StrEnum):
    CALLABLE = "callable"  # an agent of the queue may be offered it now
    WAITING = "waiting"  # in the queue, not callable yet (see WaitReason)
    CLAIMED = "claimed"  # with an agent
    OUT = "out"  # not in the queue: outreach ended, or done


class WaitReason(StrEnum):
    COOLDOWN = "cooldown"  # after an outcome, or a pause after failed attempts
    OUTSIDE_WINDOW = "outside_window"  # calling window or the claimant's preferred hours
    CALLBACK_SCHEDULED = "callback_scheduled"  # an agreed callback time not reached yet
    CONTACT_CAP = "contact_cap"  # daily or rolling 7-day caps, per claimant or number
    LOCKED = "locked"  # the 72-hour lock after an abandoned call
    HELD = "held"  # held for one agent: a personal callback, or the previous successful agent
    NO_CONSENT = "no_consent"  # no live-call consent (PECR 21A)
    TPS = "tps"  # on the TPS/CTPS list, or waiting for a re-screening
    NO_NUMBER = "no_number"  # a wrong number reported, or none on file
    OTHER = "other"  # a reason this version does not recognise


WAIT_LABELS: dict[WaitReason, str] = {
    WaitReason.COOLDOWN: "Cooldown",
    WaitReason.OUTSIDE_WINDOW: "Outside calling window",
    WaitReason.CALLBACK_SCHEDULED: "Callback not due yet",
    WaitReason.CONTACT_CAP: "Contact cap reached",
    WaitReason.LOCKED: "Locked (abandoned call)",
    WaitReason.HELD: "Held for an agent (callback or previous agent)",
    WaitReason.NO_CONSENT: "No consent",
    WaitReason.TPS: "TPS",
    WaitReason.NO_NUMBER: "No usable number",
    WaitReason.OTHER: "Other",
}

# Times, dates and counts in a reason ("until 14:30", "6 consecutive failed attempts") do not
# change what it waits for, so reasons are compared without their digits (`reason_key`).
# The database groups tasks by that key (SQL `translate(reason, REASON_DIGITS, '')`), one
# group per kind of reason rather than one per minute of the day.
REASON_DIGITS = "0123456789"
_NO_DIGITS = str.maketrans("", "", REASON_DIGITS)


def reason_key(reason: str) -> str:
    """The reason without its digits, trimmed: what `wait_reason` reads."""
    return reason.translate(_NO_DIGITS).strip()


def _key(prefix: str) -> str:
    return prefix.translate(_NO_DIGITS)


# The first words of each reason, as the rule modules write them (their f-strings start so).
_PREFIXES: tuple[tuple[str, WaitReason], ...] = tuple(
    (_key(prefix).lstrip(), found)
    for prefix, found in (
        ("cooldown after ", WaitReason.COOLDOWN),
        ("6 consecutive failed attempts: paused", WaitReason.COOLDOWN),
        ("abandoned call: ", WaitReason.LOCKED),
        ("callback scheduled for ", WaitReason.CALLBACK_SCHEDULED),
        ("daily cap of ", WaitReason.CONTACT_CAP),
        ("rolling 7-day cap of ", WaitReason.CONTACT_CAP),
        ("calling window closed", WaitReason.OUTSIDE_WINDOW),
        ("outside the claimant's preferred hours", WaitReason.OUTSIDE_WINDOW),
        (TPS_LISTED, WaitReason.TPS),
        (TPS_UNSCREENED, WaitReason.TPS),
        (WRONG_NUMBER_REASON, WaitReason.NO_NUMBER),
        ("no phone number to call", WaitReason.NO_NUMBER),
    )
)
_NO_CONSENT, _TPS_LISTED = _key(NO_LIVE_CALL_CONSENT), _key(TPS_LISTED)
# Withdrawn tasks wait only for these; any other withdrawal took the claimant out.
_WITHDRAWN_WAITING = frozenset({WaitReason.NO_CONSENT, WaitReason.TPS, WaitReason.NO_NUMBER})


def wait_reason(reason: str) -> WaitReason:
    """What a task's `not_before_reason` (or its `reason_key`) says it waits for: its
    first, binding clause."""
    text = reason_key(reason)
    if text.startswith(_NO_CONSENT):
        return WaitReason.TPS if _TPS_LISTED in text else WaitReason.NO_CONSENT
    for prefix, found in _PREFIXES:
        if text.startswith(prefix):
            return found
    return WaitReason.OTHER


@dataclass(frozen=True)
class Place:
    standing: Standing
    reason: WaitReason | None = None  # set when waiting


def place_of(status: str, *, due: bool, held: bool, reason: str) -> Place:
    """Where a task stands: `due` says its `not_before` has passed, `held` that it is still
    held for one agent (a personal callback's owner, or the claimant's previous successful
    agent: `domain.agent_preference`)."""
    if status == TaskStatus.CLAIMED:
        return Place(Standing.CLAIMED)
    if status == TaskStatus.READY:
        if not due:
            return Place(Standing.WAITING, wait_reason(reason))
        if held:
            return Place(Standing.WAITING, WaitReason.HELD)
        return Place(Standing.CALLABLE)
    if status == TaskStatus.WITHDRAWN:
        why = wait_reason(reason)
        if why in _WITHDRAWN_WAITING:
            return Place(Standing.WAITING, why)
    return Place(Standing.OUT)


# --- queues ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskGroup:
    """Tasks counted together: one queue, status, due / held flags and reason (the reason
    is empty where it cannot matter: callable and claimed tasks)."""

    queue: str
    status: str
    due: bool
    held: bool
    reason: str  # its `reason_key`
    tasks: int
    oldest_due: datetime | None = None  # the earliest `not_before` of the group's due tasks


@dataclass
class QueueFloor:
    queue: str
    callable_now: int = 0
    claimed: int = 0
    waiting_by_reason: dict[WaitReason, int] = field(default_factory=dict)
    oldest_callable: datetime | None = None  # callable since (earliest `not_before`)
    callbacks_due_now: int | None = None  # pending callbacks due (the callback queue only)
    callbacks_next_hour: int | None = None

    @property
    def waiting(self) -> int:
        return sum(self.waiting_by_reason.values())

    def waiting_reasons(self) -> list[tuple[WaitReason, int]]:
        """The reasons in the labels' order, those with tasks only."""
        return [(r, self.waiting_by_reason[r]) for r in WaitReason if self.waiting_by_reason.get(r)]

    def oldest_callable_seconds(self, now: datetime) -> float | None:
        if self.oldest_callable is None:
            return None
        return max(0.0, (as_utc(now) - as_utc(self.oldest_callable)).total_seconds())


def queue_floors(groups: Iterable[TaskGroup]) -> dict[str, QueueFloor]:
    """Every queue (each of `Queue`, with or without tasks), its tasks by standing."""
    floors = {queue.value: QueueFloor(queue.value) for queue in Queue}
    for group in groups:
        floor = floors.setdefault(group.queue, QueueFloor(group.queue))
        place = place_of(group.status, due=group.due, held=group.held, reason=group.reason)
        if place.standing is Standing.CALLABLE:
            floor.callable_now += group.tasks
            if group.oldest_due is not None and (
                floor.oldest_callable is None or group.oldest_due < floor.oldest_callable
            ):
                floor.oldest_callable = group.oldest_due
        elif place.standing is Standing.CLAIMED:
            floor.claimed += group.tasks
        elif place.standing is Standing.WAITING and place.reason is not None:
            reasons = floor.waiting_by_reason
            reasons[place.reason] = reasons.get(place.reason, 0) + group.tasks
    return floors


# --- calls ----------------------------------------------------------------------------------


def day_start(now: datetime, zone: ZoneInfo = UK) -> datetime:
    """Midnight at the start of `now`'s local day (the UK day by default), timezone-aware."""
    local = as_utc(now, "now").astimezone(zone)
    return datetime.combine(local.date(), time.min, zone)


@dataclass(frozen=True)
class CallGroup:
    """Calls by one agent (None: no agent on record) with one outcome (None: none yet)."""

    agent_id: int | None
    disposition: str | None
    today: int  # started since the start of the UK day
    live_24h: int  # answered by a person, in the last 24 hours (Ofcom's window)
    abandoned_24h: int


@dataclass(frozen=True)
class OutcomeCount:
    disposition: str | None
    label: str
    people: int
    ai: int

    @property
    def total(self) -> int:
        return self.people + self.ai


def outcome_label(disposition: str | None) -> str:
    if disposition is None:
        return "No outcome yet"
    try:
        return EFFECTS[Disposition(disposition)].label
    except ValueError:
        return disposition.replace("_", " ").capitalize()


def share(part: int, whole: int) -> float | None:
    """part / whole; None when there is nothing to share (shown as a dash, not 0 %)."""
    return part / whole if whole else None


def over_the_line(rate: AbandonRate) -> bool:
    """At or over Ofcom's 3 % of live calls: the wallboard shows it red."""
    return rate.live_calls > 0 and rate.rate >= MAX_ABANDON_RATE


@dataclass(frozen=True)
class CallsToday:
    outcomes: list[OutcomeCount]  # by outcome, most first ("no outcome yet" last)
    calls: int
    people_calls: int
    ai_calls: int
    with_outcome: int
    contacts: int  # outcomes that say the claimant was spoken to
    abandon: AbandonRate  # over the last 24 hours
    per_agent: dict[int, int]  # calls today per agent id

    @property
    def contact_rate(self) -> float | None:
        """Contacts over calls with an outcome (a call still in progress is not counted)."""
        return share(self.contacts, self.with_outcome)

    @property
    def ai_share(self) -> float | None:
        return share(self.ai_calls, self.calls)

    @property
    def abandon_over_the_line(self) -> bool:
        return over_the_line(self.abandon)


def calls_today(groups: Iterable[CallGroup], ai_agents: frozenset[int]) -> CallsToday:
    """The day's calls by outcome, people vs AI (`ai_agents`: the AI agents' ids), the
    contact rate's counts and the 24-hour abandon rate."""
    people: dict[str | None, int] = {}
    ai: dict[str | None, int] = {}
    per_agent: dict[int, int] = {}
    live = abandoned = 0
    for group in groups:
        live += group.live_24h
        abandoned += group.abandoned_24h
        if not group.today:
            continue
        side = ai if group.agent_id in ai_agents else people
        side[group.disposition] = side.get(group.disposition, 0) + group.today
        if group.agent_id is not None:
            per_agent[group.agent_id] = per_agent.get(group.agent_id, 0) + group.today
    outcomes = [
        OutcomeCount(d, outcome_label(d), people.get(d, 0), ai.get(d, 0)) for d in {*people, *ai}
    ]
    outcomes.sort(key=lambda o: (o.disposition is None, -o.total, o.label))
    with_outcome = sum(o.total for o in outcomes if o.disposition is not None)
    return CallsToday(
        outcomes=outcomes,
        calls=sum(o.total for o in outcomes),
        people_calls=sum(people.values()),
        ai_calls=sum(ai.values()),
        with_outcome=with_outcome,
        contacts=sum(o.total for o in outcomes if o.disposition in SPOKE_DISPOSITIONS),
        abandon=abandon_rate(live, abandoned),
        per_agent=per_agent,
    )


# --- agents ---------------------------------------------------------------------------------


STATE_ORDER = (
    AgentState.ON_CALL,
    AgentState.WRAP_UP,
    AgentState.READY,
    AgentState.PAUSED,
    AgentState.OFFLINE,
)


@dataclass(frozen=True)
class AgentSeen:
    """An agent and their latest state change (none recorded: Offline since ever)."""

    agent_id: int
    name: str
    is_ai: bool
    queue: str | None
    state: str | None
    reason: str | None
    since: datetime | None


@dataclass(frozen=True)
class Claimant:
    """The task an agent holds."""

    user_id: int
    queue: str
    claimed_at: datetime | None


@dataclass(frozen=True)
class AgentOnFloor:
    agent_id: int
    name: str
    is_ai: bool
    queue: str | None
    state: AgentState
    reason: str | None  # why paused (or what the change was)
    seconds_in_state: float | None  # None: never seen
    claimant: Claimant | None
    calls_today: int


@dataclass(frozen=True)
class StateCount:
    state: AgentState
    people: int
    ai: int

    @property
    def total(self) -> int:
        return self.people + self.ai


def _state(value: str | None) -> AgentState:
    try:
        return AgentState(value) if value is not None else AgentState.OFFLINE
    except ValueError:
        return AgentState.OFFLINE


def agents_on_floor(
    seen: Sequence[AgentSeen],
    claimants: Mapping[int, Claimant],
    calls_per_agent: Mapping[int, int],
    now: datetime,
) -> list[AgentOnFloor]:
    """Each agent with their state, time in it, claimant and calls today: busiest states
    first, then the longest in their state."""
    now = as_utc(now, "now")
    rows = [
        AgentOnFloor(
            agent_id=a.agent_id,
            name=a.name,
            is_ai=a.is_ai,
            queue=a.queue,
            state=_state(a.state),
            reason=a.reason,
            seconds_in_state=(
                None if a.since is None else max(0.0, (now - as_utc(a.since)).total_seconds())
            ),
            claimant=claimants.get(a.agent_id),
            calls_today=calls_per_agent.get(a.agent_id, 0),
        )
        for a in seen
    ]
    rows.sort(
        key=lambda r: (STATE_ORDER.index(r.state), -(r.seconds_in_state or 0.0), r.name, r.agent_id)
    )
    return rows


def state_counts(agents: Iterable[AgentOnFloor]) -> list[StateCount]:
    """People and AI agents in each state, every state listed."""
    people = dict.fromkeys(AgentState, 0)
    ai = dict.fromkeys(AgentState, 0)
    for agent in agents:
        (ai if agent.is_ai else people)[agent.state] += 1
    return [StateCount(s, people[s], ai[s]) for s in STATE_ORDER]


# --- the AI agents (issue 13) -----------------------------------------------------------------

# The AI worker marks its agent Ready when it starts and Offline when it stops.
ON_DUTY = frozenset({AgentState.READY, AgentState.ON_CALL})  # as agent_store.ai_agents_on_duty
AI_OFF = "AI: no model configured — all contacts go to people"


@dataclass(frozen=True)
class AiContacts:
    """AI conversations started in a period, on one channel ("voice", "sms", "triage")."""

    channel: str
    started: int
    handed_off: int


@dataclass(frozen=True)
class AiFloor:
    """The AI agents as the wallboard shows them: whether a model is configured at all (no
    model: people make every contact), the AI agents on duty, and the day's AI contacts."""

    configured: bool
    voice_enabled: bool
    sms_enabled: bool
    on_duty: list[AgentOnFloor]
    calls: int
    sms: int
    triage: int
    handoffs: int

    @property
    def contacts(self) -> int:
        return self.calls + self.sms + self.triage


def ai_floor(
    *,
    configured: bool,
    voice_enabled: bool,
    sms_enabled: bool,
    agents: Iterable[AgentOnFloor],
    contacts: Iterable[AiContacts],
) -> AiFloor:
    """The AI's part of the floor: `agents` is the floor (people are left out), `contacts`
    the day's AI conversations by channel."""
    started: dict[str, int] = {}
    handoffs = 0
    for count in contacts:
        started[count.channel] = started.get(count.channel, 0) + count.started
        handoffs += count.handed_off
    return AiFloor(
        configured=configured,
        voice_enabled=voice_enabled,
        sms_enabled=sms_enabled,
        on_duty=[a for a in agents if a.is_ai and a.state in ON_DUTY],
        calls=started.get("voice", 0),
        sms=started.get("sms", 0),
        triage=started.get("triage", 0),
        handoffs=handoffs,
    )
