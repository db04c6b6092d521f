"""Who makes a claimant's next contact, a person or the AI, and by which channel.

Pure: the claimant's facts, their assessment so far, the `[ai]` rules and what the worker
knows about the AI agent on duty go in; a `Routing` with its reason comes out, shown with the
score wherever a task is explained. The first rule that sends the contact to a person wins,
so the reason a supervisor reads is the one that decided.

People only, whatever the rules file says: vulnerable claimants, a complaint or bereavement
raised with the AI, a claimant the AI handed to a person (until a person records an
outcome), a personal callback held for its agent. An AI voice call needs automated-call
consent (PECR regulation 19); without it the AI may only text, and only with SMS consent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from domain.rules import AiRules
from schemas.ai import AiAvailability, AiChannel, Routing
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import ClaimantFacts

VULNERABLE = "vulnerable: people only"
NO_MODEL = "no AI model configured"


def route_contact(
    facts: ClaimantFacts,
    queue: Queue | None,
    refusals: dict[str, str],
    personal_callback_owner: int | None,
    attempts: int,
    rules: AiRules,
    available: AiAvailability,
    now: datetime,
) -> Routing:
    """`refusals`: the channels that may not be used now and why (`domain.consent`);
    `attempts`: the claimant's attempts so far, so each attempt draws the share afresh."""
    reason = _people_only(facts, queue, personal_callback_owner)
    if reason is None:
        reason = _ai_unavailable(queue, rules, available)
    if reason is None:
        assert queue is not None
        reason = _over_share_or_cap(facts.user_id, queue, attempts, rules, available)
    if reason is not None:
        return Routing(to_ai=False, reason=reason)
    assert queue is not None
    policy = rules.policy(queue)
    channel, why_not = _channel(policy.channels, refusals, available)
    if channel is None:
        return Routing(to_ai=False, reason=why_not)
    how = "an automated call" if channel is AiChannel.VOICE else "SMS"
    explained = f"AI agent by {how}"
    if channel is AiChannel.SMS and why_not:
        explained += f" ({why_not})"
    return Routing(
        to_ai=True,
        reason=explained,
        channel=channel,
        ai_agent_id=available.agent_id,
        task_queue=available.task_queue,
    )


def _people_only(
    facts: ClaimantFacts, queue: Queue | None, personal_callback_owner: int | None
) -> str | None:
    if queue is None:
        return "nothing to contact about"
    if facts.is_vulnerable:
        return VULNERABLE
    if facts.ai_excluded is not None:
        return f"people only: {facts.ai_excluded}"
    if facts.ai_handoff is not None:
        return f"handed to a person by the AI: {facts.ai_handoff.summary[:120]}"
    if personal_callback_owner is not None:
        return "a personal callback held for its agent"
    return None


def _ai_unavailable(queue: Queue | None, rules: AiRules, available: AiAvailability) -> str | None:
    if available.agent_id is None:
        return available.unavailable_reason
    assert queue is not None
    if not rules.policy(queue).enabled:
        return f"AI not enabled for the {queue.value} queue"
    return None


def _over_share_or_cap(
    user_id: int, queue: Queue, attempts: int, rules: AiRules, available: AiAvailability
) -> str | None:
    policy = rules.policy(queue)
    if ai_share_draw(user_id, attempts) >= policy.share:
        return f"a person's attempt (the AI takes {policy.share:.0%} of {queue.value})"
    started = available.started_last_hour.get(queue.value, 0)
    if started >= policy.cap_per_hour:
        cap = policy.cap_per_hour
        return f"AI cap reached: {started} of {cap} {queue.value} contacts this hour"
    return None


def ai_share_draw(user_id: int, attempts: int) -> float:
    """A number in [0, 1) fixed by the claimant and attempt: the same attempt always routes
    the same way (a re-assessment never flips it), the next attempt draws again."""
    digest = hashlib.sha256(f"{user_id}:{attempts}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _channel(
    channels: Sequence[str], refusals: dict[str, str], available: AiAvailability
) -> tuple[AiChannel | None, str]:
    """The first channel of the policy's list that may be used, and, when the first choice
    was refused, why (shown with the routing)."""
    refused: list[str] = []
    for name in channels:
        channel = AiChannel(name)
        if channel is AiChannel.VOICE:
            why = refusals.get(ConsentChannel.AUTOMATED_CALL.value)
            if why is None and not available.voice_possible:
                why = "AI calls are switched off (or no telephony)"
        else:
            why = refusals.get(ConsentChannel.SMS.value)
            if why is None and not available.sms_possible:
                why = "AI texts are switched off"
        if why is None:
            return channel, "; ".join(refused)
        refused.append(why)
    return None, "; ".join(refused) or "no channel the AI may use"


def handoff_points(facts: ClaimantFacts, rules: AiRules) -> float:
    return rules.handoff_boost if facts.ai_handoff is not None else 0.0


def sms_window_open(last_reply_at: datetime, now: datetime, rules: AiRules) -> bool:
    return now - last_reply_at < rules.sms_reply_window
