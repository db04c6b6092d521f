"""Abandoned calls (Ofcom's persistent-misuse policy): which calls count, and the daily rate.

A call has two legs. The agent's leg is the one the agent's browser (or an AI agent's
media stream) places through Twilio; the claimant's leg is the `<Dial><Number>` child
of it (Twilio's `ParentCallSid` names the agent's leg). The dialler dials with
`answerOnBridge`, so the agent's leg is answered only once it is bridged to the claimant:
its `CallDuration` is how long an agent was connected to the claimant.

From their call-status callbacks (`CallStatus`, `Timestamp`, `CallDuration`,
`AnsweredBy`), a call is **abandoned** when the claimant's leg was answered by a person
(`CallStatus=in-progress`; `AnsweredBy`, when machine detection ran, is `human` or
`unknown`, not a machine or fax) and either:

1. **no agent was on the line within 2 seconds** of the answer: the agent's leg ended,
   never bridged to the claimant (its `CallDuration` 0), before `answered_at + 2 s`; or
2. **the dialler hung up on the answered call**: the agent's leg ended without ever being
   bridged to the claimant (`CallDuration` 0) while the claimant was still on the line,
   so Twilio hung up on them (their leg ended after the agent's, or had not ended when the
   agent's leg's final callback came: callbacks are sent in the order the legs end, and
   `Timestamp` has one-second resolution, so a tie goes to the order of arrival).

A claimant who hangs up first (during the recording notice, or after talking to the
agent) has not been abandoned. A call answered by a machine is not a live call.

An abandoned call locks the number for 72 hours (`domain.contact_policy`) and counts for
the abandon rate: abandoned calls over live calls (answered by a person) in the last 24
hours, at most 3 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

AGENT_WITHIN = timedelta(seconds=2)
RATE_WINDOW = timedelta(hours=24)
MAX_ABANDON_RATE = 0.03  # Ofcom: at most 3 % of live calls over 24 hours
_NOT_A_PERSON = ("machine", "fax")
NO_AGENT = "no agent on the line within 2 seconds of the answer"
DIALLER_HUNG_UP = "the dialler hung up on the answered call"


@dataclass(frozen=True)
class CallLegs:
    """What the call-status callbacks have told about a call so far."""

    answered_at: datetime | None  # the claimant's leg answered
    answered_by: str | None  # Twilio AnsweredBy, when machine detection ran
    claimant_left_at: datetime | None  # the claimant's leg ended
    agent_left_at: datetime | None  # the agent's leg ended
    agent_seconds: int | None  # how long the agent's leg was bridged to the claimant


def answered_by_a_person(answered_at: datetime | None, answered_by: str | None) -> bool:
    """A live call: answered, and not by a machine or a fax."""
    if answered_at is None:
        return False
    return not (answered_by or "").lower().startswith(_NOT_A_PERSON)


def abandon_reason(legs: CallLegs) -> str | None:
    """Why the call counts as abandoned, or None (see the module's rule)."""
    if legs.answered_at is None or not answered_by_a_person(legs.answered_at, legs.answered_by):
        return None
    if legs.agent_left_at is None:
        return None  # the agent's leg is still up: someone is (or will be) on the line
    if legs.agent_seconds:
        return None  # an agent was connected to the claimant
    if legs.agent_left_at < legs.answered_at + AGENT_WITHIN:
        return NO_AGENT
    claimant_still_on = legs.claimant_left_at is None or legs.agent_left_at < legs.claimant_left_at
    if claimant_still_on:
        return DIALLER_HUNG_UP
    return None


@dataclass(frozen=True)
class AbandonRate:
    live_calls: int
    abandoned: int

    @property
    def rate(self) -> float:
        """Abandoned over live calls; 0 when there were none."""
        return self.abandoned / self.live_calls if self.live_calls else 0.0

    @property
    def within_limit(self) -> bool:
        return self.rate <= MAX_ABANDON_RATE

    def describe(self) -> str:
        verdict = "within" if self.within_limit else "OVER"
        return (
            f"abandoned calls (24 h): {self.abandoned} of {self.live_calls} live calls, "
            f"{self.rate:.1%} ({verdict} the {MAX_ABANDON_RATE:.0%} limit)"
        )


def abandon_rate(live_calls: int, abandoned: int) -> AbandonRate:
    """The rate over the last 24 hours' counts. An abandoned call is a live call by
    definition (it was answered by a person), so it is counted in both."""
    if live_calls < 0 or abandoned < 0:
        raise ValueError("counts cannot be negative")
    return AbandonRate(live_calls=max(live_calls, abandoned), abandoned=abandoned)
