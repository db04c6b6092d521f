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

Factors learned from outcomes (the nightly learned rates, `ContactHistory.learned`, each
shrunk towards the overall rate when its segment is small): expected conversion (region,
lender, queue), best channel (calls vs texts) and best hour. With no learned rates yet they
score 0 and say so (expected conversion falls back to the queue's 90-day rate). Seasonal and
regional factors are read from the rules. Protected characteristics are never an input: age
only ever raises (the age bands) and is not part of expected conversion (docs/compliance.md).
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, datetime, timedelta
from statistics import fmean

from domain.calling_windows import as_utc
from domain.rules import CallingWindows, ScoringRules, lender_key
from schemas.enums import ClaimStatus, ConsentChannel
from schemas.learned_rates import UNKNOWN_SEGMENT, Channel, Dimension, LearnedRate, RateTable
from schemas.outreach import (
    ClaimantFacts,
    ClaimFact,
    ContactHistory,
    RateView,
    ScoreFactor,
    SegmentRate,
    Stage,
)

_DAY = timedelta(days=1)
_DEFAULT_WINDOWS = CallingWindows()  # plain data: the built-in time zone and bank holidays
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


def _segment_rate(rate: LearnedRate) -> SegmentRate:
    return SegmentRate(
        dimension=rate.dimension,
        segment=rate.segment,
        contact_rate=rate.shrunk_contact_rate,
        conversion_rate=rate.shrunk_conversion_rate,
        conversion_low=rate.conversion_low,
        conversion_high=rate.conversion_high,
    )


def rate_view(table: RateTable, facts: ClaimantFacts, stage: Stage) -> RateView | None:
    """What the score reads of a learned rates version for this claimant: the shrunk rates
    of their region, their open claims' lenders and their queue, the hours' and channels'
    (None: no version learned yet). Never the age band (reporting only)."""
    if table.version_id is None:
        return None
    wanted = [(Dimension.REGION.value, facts.region or UNKNOWN_SEGMENT)]
    lenders = dict.fromkeys(claim.lender for claim in _open_claims(facts))
    wanted += [(Dimension.LENDER.value, lender) for lender in lenders]
    if stage.queue is not None:
        wanted.append((Dimension.QUEUE.value, stage.queue.value))
    found = [table.rate(dimension, segment) for dimension, segment in wanted]
    hours = {
        int(rate.segment): rate.shrunk_contact_rate
        for rate in table.dimension(Dimension.HOUR.value)
        if rate.segment.isdigit() and 0 <= int(rate.segment) <= 23
    }
    channels = {
        channel.value: rate.shrunk_contact_rate
        for channel in Channel
        if (rate := table.rate(Dimension.CHANNEL.value, channel.value)) is not None
    }
    return RateView(
        version=table.version_id,
        segments=[_segment_rate(rate) for rate in found if rate is not None],
        hours=hours,
        channels=channels,
    )


def _rate(value: float) -> float:
    return min(1.0, max(0.0, value))  # learned elsewhere: clamp rather than trust


def _segments(
    learned: RateView, facts: ClaimantFacts, claims: list[ClaimFact], stage: Stage
) -> list[SegmentRate]:
    """The claimant's region, their best-converting open claim's lender (one call chases
    every claim, as the lender factor reasons) and their queue, those with a learned rate
    (the view holds the claimant's own segments). Only these dimensions: an age band is
    never read (age may only raise a score)."""
    found: list[SegmentRate] = []
    by_key = {(rate.dimension, lender_key(rate.segment)): rate for rate in learned.segments}
    region = next((rate for rate in learned.segments if rate.dimension == "region"), None)
    if region is not None:
        found.append(region)
    lenders = [by_key.get(("lender", lender_key(claim.lender))) for claim in claims]
    known = [rate for rate in lenders if rate is not None]
    if known:
        found.append(max(known, key=lambda rate: _rate(rate.conversion_rate)))
    queue = by_key.get(("queue", stage.value))
    if queue is not None:
        found.append(queue)
    return found


def _conversion(
    facts: ClaimantFacts,
    claims: list[ClaimFact],
    history: ContactHistory,
    stage: Stage,
    rules: ScoringRules,
) -> ScoreFactor:
    """Expected conversion: the mean of the claimant's segments' shrunk conversion rates
    (each already pulled towards the overall rate, so a mean stays between them and never
    trusts one small segment); before the first learned rates, the queue's 90-day rate."""
    learned = history.learned
    segments = _segments(learned, facts, claims, stage) if learned is not None else []
    if segments:
        rate = fmean(_rate(s.conversion_rate) for s in segments)
        value = rate * rules.conversion_weight
        parts = ", ".join(
            f"{s.dimension} {s.segment} {_rate(s.conversion_rate):.0%} "
            f"[{_rate(s.conversion_low) * 100:.0f}-{_rate(s.conversion_high):.0%}]"
            for s in segments
        )
        detail = f"expected conversion {rate:.1%} ({parts}) {_points(value)}"
        return ScoreFactor("conversion", value, detail)
    rate_or_none = history.segment_conversion_rate
    if rate_or_none is None:
        return ScoreFactor("conversion", 0.0, "segment conversion rate: no data yet +0")
    rate = _rate(rate_or_none)
    value = rate * rules.conversion_weight
    return ScoreFactor("conversion", value, f"segment converts {rate:.0%} {_points(value)}")


def _best_channel(
    facts: ClaimantFacts, history: ContactHistory, rules: ScoringRules
) -> ScoreFactor:
    """Call now, or SMS first: the learned response rates of calls and texts. Only a
    claimant who may be texted can be texted first; for them a better text rate lowers the
    call's priority (and the detail says "SMS first"), a better call rate raises it."""
    learned = history.learned
    call = learned.channels.get("call") if learned is not None else None
    sms = learned.channels.get("sms") if learned is not None else None
    if call is None or sms is None:
        return ScoreFactor("best_channel", 0.0, "call now: no learned channel rates yet +0")
    call, sms = _rate(call), _rate(sms)
    if ConsentChannel.SMS.value not in facts.consent_channels:
        return ScoreFactor("best_channel", 0.0, f"call now: no SMS consent (calls {call:.0%}) +0")
    value = (call - sms) * rules.channel_weight
    value = 0.0 if value == 0 else value  # never "-0"
    if call >= sms:
        detail = f"call now: calls answered {call:.0%} vs texts {sms:.0%}"
    else:
        detail = f"SMS first: texts answered {sms:.0%} vs calls {call:.0%}"
    return ScoreFactor("best_channel", value, f"{detail} {_points(value)}")


def _best_hour(
    facts: ClaimantFacts,
    claims: list[ClaimFact],
    history: ContactHistory,
    stage: Stage,
    rules: ScoringRules,
    at: datetime,
    windows: CallingWindows,
) -> ScoreFactor:
    """The hour the claimant becomes callable (UK time) against the average hour: points =
    weight x the claimant's contact rate x the hour's relative gain, when it is a gain."""
    hour = at.astimezone(windows.zone).hour
    learned = history.learned
    hour_rate = learned.hours.get(hour) if learned is not None else None
    if learned is None or hour_rate is None or not learned.hours:
        return ScoreFactor("best_hour", 0.0, f"{hour:02d}:00: no learned hourly rates yet +0")
    average = fmean(_rate(rate) for rate in learned.hours.values())
    hour_rate = _rate(hour_rate)
    if average <= 0 or hour_rate <= average:
        detail = f"{hour:02d}:00 reaches {hour_rate:.0%} vs {average:.0%} on average +0"
        return ScoreFactor("best_hour", 0.0, detail)
    gain = hour_rate / average - 1
    segments = _segments(learned, facts, claims, stage)
    own = fmean(_rate(s.contact_rate) for s in segments) if segments else average
    value = rules.hour_weight * own * gain
    detail = (
        f"{hour:02d}:00 reaches {hour_rate:.0%} vs {average:.0%} on average "
        f"(+{gain:.0%} on the claimant's {own:.0%}) {_points(value)}"
    )
    return ScoreFactor("best_hour", value, detail)


def _region(facts: ClaimantFacts, rules: ScoringRules) -> ScoreFactor:
    if facts.region is None:
        return ScoreFactor("region", 0.0, "region unknown +0")
    points, listed = rules.region_boost(facts.region)
    kind = "regional team" if listed else "no regional team"
    return ScoreFactor("region", points, f"{facts.region} ({kind}) {_points(points)}")


def _working_day(day: date, step: int) -> date:
    """The nearest weekday after (step 1) or before (step -1) `day`."""
    day += timedelta(days=step)
    while day.weekday() >= 5:
        day += timedelta(days=step)
    return day


def _calendar(at: datetime, rules: ScoringRules, windows: CallingWindows) -> ScoreFactor:
    """Month end and bank holidays, for the UK day the claimant becomes callable: the month's
    last `month_end_days` days, and the working days just before and after a bank holiday
    (a Friday before a holiday Monday, the Tuesday after it)."""
    day = at.astimezone(windows.zone).date()
    calendar = rules.calendar
    value, parts = 0.0, []
    days_left = monthrange(day.year, day.month)[1] - day.day
    if days_left < calendar.month_end_days:
        value += calendar.month_end_points
        parts.append("month end today" if days_left == 0 else f"month end in {days_left} days")
    if not windows.is_bank_holiday(day):
        for step, words in ((1, "before"), (-1, "after")):
            holiday = _working_day(day, step)
            if windows.is_bank_holiday(holiday):
                value += calendar.bank_holiday_points
                when = f"{holiday:%a} {holiday.day} {holiday:%b}"
                parts.append(f"working day {words} the bank holiday {when}")
    if not parts:
        return ScoreFactor("calendar", 0.0, "not near a month end or bank holiday +0")
    return ScoreFactor("calendar", value, f"{'; '.join(parts)} {_points(value)}")


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
    *,
    callable_at: datetime | None = None,
    windows: CallingWindows | None = None,
) -> tuple[float, list[ScoreFactor]]:
    """(total, factors): total is the sum of the factors' rounded contributions.

    `callable_at`: when the claimant may next be called (the best hour and the calendar are
    about that moment; default `now`); `windows`: the calling windows in force (time zone,
    bank holidays; default the built-in ones)."""
    now = as_utc(now, "now")
    at = max(now, as_utc(callable_at, "callable_at")) if callable_at is not None else now
    windows = windows if windows is not None else _DEFAULT_WINDOWS
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
        _conversion(facts, claims, history, stage, rules),
        _best_channel(facts, history, rules),
        _best_hour(facts, claims, history, stage, rules, at, windows),
        _region(facts, rules),
        _calendar(at, rules, windows),
        _vulnerability(facts, rules),
    ]
    rounded = [ScoreFactor(f.name, round(f.contribution, 3), f.detail) for f in factors]
    total = round(sum(f.contribution for f in rounded), 3)
    return total, rounded
