"""Which queue a claimant belongs in: the seed's three queue definitions as one function.

- unsigned: no signature, enabled, status not inactive, at least one claim not complete
- outstanding: signed, enabled, at least one PENDING requirement
- callback: a pending callback that is due, enabled
A claimant who qualifies for several goes to the first in `priority` (by default a due
callback first, then unsigned, then outstanding). Opt-out and bereavement end outreach.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from schemas.enums import ClaimStatus, RequirementStatus, UserStatus
from schemas.outreach import ClaimantFacts, Stage

DEFAULT_PRIORITY = (Stage.CALLBACK, Stage.UNSIGNED, Stage.OUTSTANDING)


def qualifies_unsigned(facts: ClaimantFacts) -> bool:
    return (
        not facts.signed
        and facts.is_enabled
        and facts.status != UserStatus.INACTIVE
        and any(claim.status != ClaimStatus.COMPLETE for claim in facts.claims)
    )


def qualifies_outstanding(facts: ClaimantFacts) -> bool:
    return facts.signed and facts.is_enabled and bool(pending_requirements(facts))


def qualifies_callback(facts: ClaimantFacts, now: datetime) -> bool:
    return facts.is_enabled and facts.callback_at is not None and facts.callback_at <= now


def pending_requirements(facts: ClaimantFacts) -> list[str]:
    return [
        requirement.type
        for claim in facts.claims
        for requirement in claim.requirements
        if requirement.status == RequirementStatus.PENDING
    ]


def derive_stage(
    facts: ClaimantFacts, now: datetime, priority: Sequence[Stage] = DEFAULT_PRIORITY
) -> Stage:
    if facts.opted_out or facts.deceased:
        return Stage.DONE
    checks = {
        Stage.CALLBACK: lambda: qualifies_callback(facts, now),
        Stage.UNSIGNED: lambda: qualifies_unsigned(facts),
        Stage.OUTSTANDING: lambda: qualifies_outstanding(facts),
    }
    for stage in priority:
        if checks[stage]():
            return stage
    return Stage.DONE


def has_future_callback(facts: ClaimantFacts, now: datetime) -> bool:
    return facts.is_enabled and facts.callback_at is not None and facts.callback_at > now
