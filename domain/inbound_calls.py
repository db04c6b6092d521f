"""Claimants ringing back: where an inbound call to the dialler's number goes, and what the
caller hears when no one takes it. Pure: the floor, the rules and the time are passed in.

- An unknown caller (no call of ours ever went to their number) hears a neutral message and
  the call ends: nothing about anyone, nothing beyond the company's name.
- In hours, the agent who last called them, when that agent is free; otherwise the free
  agent of the claimant's queue (the queue of their task) who has been Ready the longest.
- Out of hours, or with no one free, a message, and a shared callback at the next calling
  time at least `CALLBACK_LEAD` ahead (the next window's start when the lines are closed).

"In hours" is the legal calling window of the rules in force, bank holidays included. The
claimant's own preferred hours do not apply: they are the one calling.

"Free": an active person with the agent role (never an AI: the Voice SDK rings people), Ready,
holding no claimant (an agent looking at a claimed claimant's context is about to dial them)
and not being rung for another inbound call.

Opted-out and suppressed claimants are routed like anyone else: a person answers a claimant
who rings us. Nothing here reads or writes a suppression; an inbound call never lifts one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from domain.calling_windows import as_utc, is_open, next_open
from domain.phones import phone_key, to_e164
from domain.rules import CallingWindows
from schemas.enums import AgentRole, AgentState

# A callback booked because no one was free is due this long after the call: long enough
# for the queue to take it as a callback, short enough that the claimant is rung back soon.
CALLBACK_LEAD = timedelta(minutes=15)
MIN_DIGITS = 6  # fewer digits is no phone number ("Anonymous", a withheld number)

COMPANY = "Resolve My Claim"
UNKNOWN_CALLER_MESSAGE = (
    f"Thank you for calling. You've reached {COMPANY}. "
    "We cannot take your call on this line. Goodbye."
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


class InboundRoute(StrEnum):
    UNKNOWN = "unknown"  # no call of ours went to this number: the neutral message
    LAST_AGENT = "last_agent"  # the agent who last called them
    QUEUE_AGENT = "queue_agent"  # the free agent of their queue Ready the longest
    CALLBACK = "callback"  # closed, or no one free: a message and a shared callback


@dataclass(frozen=True)
class FloorAgent:
    """An agent as routing sees them: who they are and their latest state."""

    agent_id: int
    role: str
    queue: str | None
    is_ai: bool
    is_active: bool
    state: str | None  # None: no state recorded (Offline)
    since: datetime | None  # when they entered it
    busy: bool = False  # holds a claimant, or is being rung for another inbound call


@dataclass(frozen=True)
class InboundCall:
    at: datetime  # when the call came (timezone-aware)
    windows: CallingWindows  # the rules in force
    known: bool  # a call of ours went to the caller's number
    last_agent_id: int | None  # the agent of that latest call (None: none, or no agent)
    queue: str | None  # the queue of the claimant's task (None: they have no task)
    agents: tuple[FloorAgent, ...] = ()


@dataclass(frozen=True)
class InboundDecision:
    route: InboundRoute
    agent_id: int | None = None  # the agent to ring
    callback_at: datetime | None = None  # UTC; for CALLBACK
    in_hours: bool = False
    reason: str = ""  # for logs and the callback's note: ids and words, no personal data


def is_free(agent: FloorAgent) -> bool:
    return (
        agent.is_active
        and not agent.is_ai
        and agent.role == AgentRole.AGENT.value
        and agent.state == AgentState.READY.value
        and not agent.busy
    )


def callback_time(at: datetime, windows: CallingWindows) -> datetime:
    """The shared callback's time: the first calling time at least `CALLBACK_LEAD` after
    `at` (out of hours, the next window's start)."""
    return next_open(as_utc(at, "at") + CALLBACK_LEAD, windows)


def _longest_ready(agents: list[FloorAgent]) -> FloorAgent:
    never = datetime.min.replace(tzinfo=UTC)
    return min(agents, key=lambda a: (a.since or never, a.agent_id))


def route_inbound(call: InboundCall) -> InboundDecision:
    if not call.known:
        return InboundDecision(InboundRoute.UNKNOWN, reason="unknown caller")
    at = as_utc(call.at, "at")
    if not is_open(at, call.windows):
        return InboundDecision(
            InboundRoute.CALLBACK,
            callback_at=callback_time(at, call.windows),
            reason="lines closed",
        )
    free = [a for a in call.agents if is_free(a)]
    last = next((a for a in free if a.agent_id == call.last_agent_id), None)
    if last is not None:
        return InboundDecision(
            InboundRoute.LAST_AGENT, agent_id=last.agent_id, in_hours=True,
            reason="the agent who last called them",
        )  # fmt: skip
    in_queue = [a for a in free if call.queue is not None and a.queue == call.queue]
    if in_queue:
        chosen = _longest_ready(in_queue)
        return InboundDecision(
            InboundRoute.QUEUE_AGENT, agent_id=chosen.agent_id, in_hours=True,
            reason=f"the {call.queue} queue's agent Ready the longest",
        )  # fmt: skip
    return InboundDecision(
        InboundRoute.CALLBACK,
        callback_at=callback_time(at, call.windows),
        in_hours=True,
        reason="no one free",
    )


# --- the caller's number ------------------------------------------------------------------------


def caller_keys(number: str | None) -> list[str]:
    """The phone keys (`domain.phones.phone_key`) a caller's number may have been stored
    under when we called it: as Twilio sends it (E.164), and the UK spellings of the same
    number (07..., 447...). Empty for no usable number (withheld, "Anonymous")."""
    if not number or sum(ch.isdigit() for ch in number) < MIN_DIGITS:
        return []
    spellings = {number}
    e164 = to_e164(number)
    if e164 is not None:
        spellings.add(e164)
        spellings.add(e164.removeprefix("+"))
        if e164.startswith("+44"):
            spellings.add("0" + e164.removeprefix("+44"))
    return sorted({key for s in spellings if (key := phone_key(s)) is not None})


# --- what the caller hears ----------------------------------------------------------------------


def _spoken_time(at: datetime, now: datetime, zone: tzinfo) -> str:
    """E.g. "14:30 today", "08:00 tomorrow", "09:00 on Saturday 4 April"."""
    local, today = at.astimezone(zone), now.astimezone(zone).date()
    clock = f"{local:%H:%M}"
    if local.date() == today:
        return f"{clock} today"
    if local.date() == today + timedelta(days=1):
        return f"{clock} tomorrow"
    weekday, month = _WEEKDAYS[local.weekday()], _MONTHS[local.month - 1]
    return f"{clock} on {weekday} {local.day} {month}"


def callback_message(decision: InboundDecision, now: datetime, zone: tzinfo, booked: bool) -> str:
    """What a known caller hears when no one takes the call (`booked`: the shared callback
    was booked; else they are asked to ring again). No name: a number can be shared."""
    why = (
        "All our advisers are busy at the moment."
        if decision.in_hours
        else "Our lines are closed at the moment."
    )
    if booked and decision.callback_at is not None:
        when = _spoken_time(decision.callback_at, now, zone)
        then = f"We will call you back from {when}."
    elif decision.in_hours:
        then = "Please try again shortly."
    else:
        then = "Please call again when our lines are open."
    return f"Thank you for calling {COMPANY}. {why} {then} Goodbye."


def callback_note(decision: InboundDecision, now: datetime, zone: tzinfo) -> str:
    """The shared callback's note, for the agent who takes it."""
    return f"The claimant rang us back at {now.astimezone(zone):%H:%M} ({decision.reason})."


def after_missed_ring(at: datetime, windows: CallingWindows) -> InboundDecision:
    """The agent rung did not take the call (no answer, declined, failed): as when no one is
    free, a message and a shared callback."""
    at = as_utc(at, "at")
    return InboundDecision(
        InboundRoute.CALLBACK,
        callback_at=callback_time(at, windows),
        in_hours=is_open(at, windows),
        reason="the agent rung did not answer",
    )
