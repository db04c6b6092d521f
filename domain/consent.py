"""May we contact this claimant this way? Consent (PECR 19, 21A, 22) and TPS/CTPS screening.

Consent comes from two sources: the main app's `consents` rows (given, maybe withdrawn) and
what agents confirmed on a call (`consent_records`, where a withdrawal is its own row). For
each channel the latest event wins: a withdrawal after a grant ends it, a grant recorded
after a withdrawal renews it. `consented_channels` folds them at a given time.

The call rules (docs/compliance.md):
- a live call needs live-call consent (PECR 21A), unless its queue is configured as service
  contact about an existing claim (`compliance.service_contact_queues`, empty by default);
- a number on the TPS/CTPS list is not called unless the claimant gave live-call consent
  to us (PECR 21(4)), service contact included;
- a screening older than `compliance.tps_screening_max_age` is redone before the number is
  offered, so a stale screening never lets a call through;
- an automated or AI voice call needs automated-call consent (PECR 19), whatever the queue;
- SMS and email need their own consent (PECR 22).
Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.calling_windows import as_utc
from domain.rules import ComplianceRules
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import ClaimantFacts

NO_LIVE_CALL_CONSENT = "no live-call consent (PECR 21A)"
TPS_LISTED = "number on the TPS/CTPS list and no live-call consent overriding it"
TPS_UNSCREENED = "number not screened against the TPS/CTPS list recently: re-screening"
NO_AUTOMATED_CALL_CONSENT = "no automated-call consent (PECR 19): AI voice calls refused"
NO_SMS_CONSENT = "no SMS consent (PECR 22)"
NO_EMAIL_CONSENT = "no email consent (PECR 22)"


@dataclass(frozen=True)
class ConsentEvent:
    """A grant (`given`) or a withdrawal of consent to one channel, at `at`."""

    channel: ConsentChannel
    given: bool
    at: datetime


def consented_channels(events: Iterable[ConsentEvent], now: datetime) -> frozenset[str]:
    """The channels whose latest event up to `now` is a grant. Events from the future (a
    clock ahead on the main app) do not count yet."""
    now = as_utc(now, "now")
    latest: dict[ConsentChannel, ConsentEvent] = {}
    for event in events:
        at = as_utc(event.at, "consent event")
        if at > now:
            continue
        known = latest.get(event.channel)
        # equal times: a withdrawal wins (the safer reading of an ambiguous record)
        if known is None or at > known.at or (at == known.at and not event.given):
            latest[event.channel] = ConsentEvent(event.channel, event.given, at)
    return frozenset(channel.value for channel, event in latest.items() if event.given)


def has_consent(facts: ClaimantFacts, channel: ConsentChannel) -> bool:
    return channel.value in facts.consent_channels


def screening_is_stale(facts: ClaimantFacts, rules: ComplianceRules, now: datetime) -> bool:
    screened = facts.tps_screened_at
    return screened is None or as_utc(screened) + rules.tps_screening_max_age <= as_utc(now)


def live_call_refusal(
    facts: ClaimantFacts, queue: Queue | None, rules: ComplianceRules, now: datetime
) -> str | None:
    """Why a person may not call this claimant in `queue` (None: consent and TPS allow it)."""
    if has_consent(facts, ConsentChannel.LIVE_CALL):
        return None  # consent given to us overrides a TPS listing too (PECR 21(4))
    if not rules.is_service_contact(queue):
        return NO_LIVE_CALL_CONSENT + ("; " + TPS_LISTED if facts.tps_listed else "")
    # Service contact needs no marketing consent, but a TPS-listed number still needs it:
    # whether a call is "service" is a judgement, and the claimant said no to cold calls.
    if screening_is_stale(facts, rules, now):
        return TPS_UNSCREENED
    if facts.tps_listed:
        return TPS_LISTED
    return None


def rescreen_at(
    facts: ClaimantFacts, queue: Queue | None, rules: ComplianceRules
) -> datetime | None:
    """When the number must be screened again for this call to stay allowed (None: the
    call does not rely on a screening: consent was given, or there is no number)."""
    if facts.phone_key is None or has_consent(facts, ConsentChannel.LIVE_CALL):
        return None
    if not rules.is_service_contact(queue):
        return None  # refused for want of consent whatever the list says
    if facts.tps_screened_at is None:
        return datetime.min.replace(tzinfo=UTC)  # never screened: now
    return as_utc(facts.tps_screened_at) + rules.tps_screening_max_age


def channel_refusals(
    facts: ClaimantFacts, queue: Queue | None, rules: ComplianceRules, now: datetime
) -> dict[str, str]:
    """Every channel that may not be used now, with the reason; the rest are allowed."""
    reasons = {
        ConsentChannel.LIVE_CALL: live_call_refusal(facts, queue, rules, now),
        ConsentChannel.AUTOMATED_CALL: automated_call_refusal(facts),
        ConsentChannel.SMS: sms_refusal(facts),
        ConsentChannel.EMAIL: email_refusal(facts),
    }
    return {channel.value: reason for channel, reason in reasons.items() if reason is not None}


def automated_call_refusal(facts: ClaimantFacts) -> str | None:
    """Why an automated or AI voice call may not be made (None: it may)."""
    if not has_consent(facts, ConsentChannel.AUTOMATED_CALL):
        return NO_AUTOMATED_CALL_CONSENT
    return None


def sms_refusal(facts: ClaimantFacts) -> str | None:
    if not has_consent(facts, ConsentChannel.SMS):
        return NO_SMS_CONSENT
    return None


def email_refusal(facts: ClaimantFacts) -> str | None:
    if not has_consent(facts, ConsentChannel.EMAIL):
        return NO_EMAIL_CONSENT
    return None


# What an agent reads to the claimant before recording consent on a call ("consent
# confirmed on this call"); stored with the record as the evidence of what was agreed.
CONSENT_STATEMENTS = {
    ConsentChannel.LIVE_CALL: (
        "Are you happy for RMC to phone you about your claims? You can tell us to stop at any time."
    ),
    ConsentChannel.AUTOMATED_CALL: (
        "Are you happy to receive automated calls from RMC, with a recorded or AI voice, "
        "about your claims? You can tell us to stop at any time."
    ),
    ConsentChannel.SMS: (
        "Are you happy for RMC to text you about your claims? Reply STOP to any text to end it."
    ),
    ConsentChannel.EMAIL: (
        "Are you happy for RMC to email you about your claims? Every email has an unsubscribe link."
    ),
}
CONSENT_LABELS = {
    ConsentChannel.LIVE_CALL: "Phone calls from an agent",
    ConsentChannel.AUTOMATED_CALL: "Automated or AI calls",
    ConsentChannel.SMS: "Text messages",
    ConsentChannel.EMAIL: "Email",
}
