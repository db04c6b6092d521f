"""The priority score of a claimant in a queue, with every factor explained.

The score is a plain sum of factors; each `ScoreFactor` carries its contribution and a detail
an agent or supervisor can read ("Santander (high-value lender) +15"). Every factor is always
listed, with a zero and the reason when it does not apply, so a breakdown never has holes.

Choices that keep the score explainable and monotone (property-tested):
- days are whole days, so a score does not drift by the minute;
- the lender factor takes the claimant's best open claim (largest boost): one call chases
  every claim, so the most valuable lender is what makes the call worth making;
- days since created uses the oldest open claim; estimated value sums the open claims
  (one call progresses all of them), capped;
- more days since the last contact, an older claimant, or a better lender never lower it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.calling_windows import as_utc
from domain.rules import ScoringRules
from schemas.enums import ClaimStatus
from schemas.outreach import ClaimantFacts, ClaimFact, ContactHistory, ScoreFactor, Stage

_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)


def _points(value: float) -> str:
    return f"{round(value, 3):+g}"


def _whole_days(since: datetime, now: datetime, what: str) -> int:
    return max(0, (now - as_utc(since, what)) // _DAY)


def _capped(amount: float, cap: float) -> tuple[float, str]:
    return (cap, " (cap)") if amount >= cap else (amount, "")


def _open_claims(facts: ClaimantFacts) -> list[ClaimFact]:
    return [claim for claim in facts.claims if claim.status != ClaimStatus.COMPLETE]


def _base(stage: Stage, rules: ScoringRules) -> ScoreFactor:
    queue = stage.queue
    assert queue is not None  # DONE is handled by the caller
    value = float(getattr(rules.base, queue.value))
    return ScoreFactor("queue", value, f"{queue.value} queue base {_points(value)}")


def _lender(claims: list[ClaimFact], rules: ScoringRules) -> ScoreFactor:
    if not claims:
        return ScoreFactor("lender", 0.0, "no open claim +0")
    # Best claim: the largest boost; ties go to the first listed, so the detail is stable.
    best_claim, (boost, listed) = claims[0], rules.lender_boost(claims[0].lender)
    for claim in claims[1:]:
        candidate = rules.lender_boost(claim.lender)
        if candidate[0] > boost:
            best_claim, (boost, listed) = claim, candidate
    if not listed:
        kind = "other lender"
    elif boost > rules.default_lender_boost:
        kind = "high-value lender"
    else:
        kind = "lender matrix"
    return ScoreFactor("lender", boost, f"{best_claim.lender} ({kind}) {_points(boost)}")


def _age(facts: ClaimantFacts, rules: ScoringRules) -> ScoreFactor:
    if facts.age_years is None:
        return ScoreFactor("age", 0.0, "age unknown +0")
    band = rules.age_bands[0]
    for candidate in rules.age_bands:
        if facts.age_years >= candidate.min_age:
            band = candidate
    detail = f"age {facts.age_years} ({band.min_age}+ band) {_points(band.points)}"
    return ScoreFactor("age", band.points, detail)


def _claim_age(claims: list[ClaimFact], rules: ScoringRules, now: datetime) -> ScoreFactor:
    if not claims:
        return ScoreFactor("claim_age", 0.0, "no open claim +0")
    days = max(_whole_days(claim.created_at, now, "claim created_at") for claim in claims)
    value, capped = _capped(days * rules.claim_age.points_per_day, rules.claim_age.cap)
    detail = f"oldest open claim {days} days old {_points(value)}{capped}"
    return ScoreFactor("claim_age", value, detail)


def _last_contact(history: ContactHistory, rules: ScoringRules, now: datetime) -> ScoreFactor:
    per_day = rules.last_contact
    if history.last_contact_at is None:
        # Never contacted is the longest gap there is: full marks.
        return ScoreFactor("last_contact", per_day.cap, f"never contacted {_points(per_day.cap)}")
    days = _whole_days(history.last_contact_at, now, "last_contact_at")
    value, capped = _capped(days * per_day.points_per_day, per_day.cap)
    detail = f"{days} days since last contact {_points(value)}{capped}"
    return ScoreFactor("last_contact", value, detail)


def _claim_value(claims: list[ClaimFact], rules: ScoringRules) -> ScoreFactor:
    estimates = [max(0.0, c.estimated_value) for c in claims if c.estimated_value is not None]
    if not estimates:
        return ScoreFactor("claim_value", 0.0, "no value estimate +0")
    total = sum(estimates)
    amount = total / 1000 * rules.claim_value.points_per_1000
    value, capped = _capped(amount, rules.claim_value.cap)
    claims_word = "claim" if len(estimates) == 1 else "claims"
    detail = f"estimated £{total:,.0f} across {len(estimates)} open {claims_word} "
    return ScoreFactor("claim_value", value, f"{detail}{_points(value)}{capped}")


def _failed(history: ContactHistory, rules: ScoringRules) -> ScoreFactor:
    failed = max(0, history.consecutive_failed_attempts)
    rule = rules.failed_attempts
    penalty, capped = _capped(failed * rule.penalty_per_attempt, rule.cap)
    value = -penalty if penalty else 0.0  # never "-0" in the detail
    detail = f"{failed} consecutive failed attempts {_points(value)}{capped}"
    return ScoreFactor("failed_attempts", value, detail)


def _callback(facts: ClaimantFacts, rules: ScoringRules, now: datetime) -> ScoreFactor:
    if facts.callback_at is None:
        return ScoreFactor("callback", 0.0, "no callback scheduled +0")
    callback_at = as_utc(facts.callback_at, "callback_at")
    if callback_at > now:
        return ScoreFactor("callback", 0.0, "callback not due yet +0")
    hours = (now - callback_at) // _HOUR
    timing = rules.callback
    amount = timing.due_bonus + hours * timing.points_per_hour_overdue
    value, capped = _capped(amount, timing.cap)
    detail = f"callback due, {hours}h overdue {_points(value)}{capped}"
    return ScoreFactor("callback", value, detail)


def _conversion(history: ContactHistory, rules: ScoringRules) -> ScoreFactor:
    rate = history.segment_conversion_rate
    if rate is None:
        return ScoreFactor("conversion", 0.0, "segment conversion rate: no data yet +0")
    rate = min(1.0, max(0.0, rate))  # learned elsewhere: clamp rather than trust
    value = rate * rules.conversion_weight
    return ScoreFactor("conversion", value, f"segment converts {rate:.0%} {_points(value)}")


def _vulnerability(facts: ClaimantFacts, rules: ScoringRules) -> ScoreFactor:
    if not facts.is_vulnerable:
        return ScoreFactor("vulnerability", 0.0, "not flagged vulnerable +0")
    value = rules.vulnerability_adjustment
    return ScoreFactor("vulnerability", value, f"vulnerable (people only) {_points(value)}")


def score(
    facts: ClaimantFacts,
    history: ContactHistory,
    stage: Stage,
    rules: ScoringRules,
    now: datetime,
) -> tuple[float, list[ScoreFactor]]:
    """(total, factors): total is the sum of the factors' rounded contributions."""
    now = as_utc(now, "now")
    if stage is Stage.DONE:
        return 0.0, [ScoreFactor("queue", 0.0, "done: nothing left to chase")]
    claims = _open_claims(facts)
    factors = [
        _base(stage, rules),
        _lender(claims, rules),
        _age(facts, rules),
        _claim_age(claims, rules, now),
        _last_contact(history, rules, now),
        _claim_value(claims, rules),
        _failed(history, rules),
        _callback(facts, rules, now),
        _conversion(history, rules),
        _vulnerability(facts, rules),
    ]
    rounded = [ScoreFactor(f.name, round(f.contribution, 3), f.detail) for f in factors]
    total = round(sum(f.contribution for f in rounded), 3)
    return total, rounded
