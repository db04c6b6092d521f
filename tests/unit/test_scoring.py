"""The priority score: each factor explained, the breakdown summing to the total, and the
promised monotonicity (longer gaps, older claimants and better lenders never score lower)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.rules import DiallerRules, ScoringRules
from domain.scoring import score
from schemas.outreach import ClaimantFacts, ClaimFact, ContactHistory, ScoreFactor, Stage

RULES = DiallerRules().scoring
NOW = datetime(2026, 7, 14, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HIGH_VALUE = ("Santander", "Lloyds", "Barclays")


def claim(lender: str = "Acme Loans", age_days: int = 10, value: float | None = None) -> ClaimFact:
    return ClaimFact(1, lender, "new", NOW - age_days * DAY, value)


def facts(**changes: object) -> ClaimantFacts:
    base = ClaimantFacts(
        consent_channels=["live_call"],
        user_id=1,
        is_enabled=True,
        status="active",
        signed=False,
        age_years=40,
        is_vulnerable=False,
        phone_key="p",
        preferred_call_start=None,
        preferred_call_end=None,
        claims=[claim()],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def factor(factors: list[ScoreFactor], name: str) -> ScoreFactor:
    return next(f for f in factors if f.name == name)


# --- examples ------------------------------------------------------------------------------


def test_every_factor_is_listed_with_a_detail() -> None:
    total, factors = score(facts(), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert [f.name for f in factors] == [
        "queue",
        "lender",
        "age",
        "claim_age",
        "last_contact",
        "claim_value",
        "failed_attempts",
        "callback",
        "conversion",
        "best_channel",
        "best_hour",
        "region",
        "calendar",
        "vulnerability",
    ]
    assert all(f.detail for f in factors)
    assert total == round(sum(f.contribution for f in factors), 3)


def test_high_value_lender_detail() -> None:
    _, factors = score(
        facts(claims=[claim("Santander")]), ContactHistory(), Stage.UNSIGNED, RULES, NOW
    )
    assert factor(factors, "lender") == ScoreFactor(
        "lender", 15.0, "Santander (high-value lender) +15"
    )


def test_best_lender_wins() -> None:
    claims = [claim("Acme Loans"), claim("HSBC"), claim("barclays")]
    _, factors = score(facts(claims=claims), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "lender").detail == "barclays (high-value lender) +15"


def test_other_lender_gets_the_default() -> None:
    _, factors = score(facts(), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "lender") == ScoreFactor("lender", 0.0, "Acme Loans (other lender) +0")


def test_queue_base() -> None:
    for stage, base in ((Stage.CALLBACK, 100), (Stage.UNSIGNED, 80), (Stage.OUTSTANDING, 50)):
        _, factors = score(facts(), ContactHistory(), stage, RULES, NOW)
        assert factor(factors, "queue").contribution == base
        assert factor(factors, "queue").detail == f"{stage.value} queue base +{base}"


def test_done_scores_zero() -> None:
    total, factors = score(facts(), ContactHistory(), Stage.DONE, RULES, NOW)
    assert total == 0.0
    assert sum(f.contribution for f in factors) == 0.0


def test_age_bands() -> None:
    for age, points in ((18, 0), (50, 4), (64, 4), (65, 8), (90, 12)):
        _, factors = score(facts(age_years=age), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
        assert factor(factors, "age").contribution == points
    _, factors = score(facts(age_years=None), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "age") == ScoreFactor("age", 0.0, "age unknown +0")


def test_claim_age_uses_the_oldest_open_claim_and_caps() -> None:
    claims = [
        claim(age_days=10),
        claim(age_days=42),
        replace(claim(age_days=999), status="complete"),
    ]
    _, factors = score(facts(claims=claims), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "claim_age") == ScoreFactor(
        "claim_age", 4.2, "oldest open claim 42 days old +4.2"
    )
    _, factors = score(
        facts(claims=[claim(age_days=400)]), ContactHistory(), Stage.UNSIGNED, RULES, NOW
    )
    assert factor(factors, "claim_age").detail == "oldest open claim 400 days old +20 (cap)"


def test_last_contact_days_and_never() -> None:
    history = ContactHistory(last_contact_at=NOW - 5 * DAY - timedelta(hours=3))
    _, factors = score(facts(), history, Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "last_contact") == ScoreFactor(
        "last_contact", 5.0, "5 days since last contact +5"
    )
    _, factors = score(facts(), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "last_contact") == ScoreFactor(
        "last_contact", 14.0, "never contacted +14"
    )


def test_claim_value_sums_open_claims_and_caps() -> None:
    claims = [claim(value=2000.0), claim(value=1200.0), claim(value=None)]
    _, factors = score(facts(claims=claims), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "claim_value") == ScoreFactor(
        "claim_value", 3.2, "estimated £3,200 across 2 open claims +3.2"
    )
    big = [claim(value=50_000.0)]
    _, factors = score(facts(claims=big), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "claim_value").contribution == 15.0


def test_failed_attempts_penalty_caps() -> None:
    for failed, penalty in ((0, 0.0), (2, -6.0), (9, -15.0)):
        history = ContactHistory(consecutive_failed_attempts=failed)
        _, factors = score(facts(), history, Stage.UNSIGNED, RULES, NOW)
        assert factor(factors, "failed_attempts").contribution == penalty
    assert (
        "+0"
        in factor(
            score(facts(), ContactHistory(), Stage.UNSIGNED, RULES, NOW)[1], "failed_attempts"
        ).detail
    )


def test_callback_bonus_grows_when_overdue_and_caps() -> None:
    cases = ((NOW + DAY, 0.0), (NOW, 10.0), (NOW - timedelta(hours=3, minutes=40), 13.0))
    for callback_at, points in cases:
        _, factors = score(
            facts(callback_at=callback_at), ContactHistory(), Stage.CALLBACK, RULES, NOW
        )
        assert factor(factors, "callback").contribution == points
    _, factors = score(
        facts(callback_at=NOW - 5 * DAY), ContactHistory(), Stage.CALLBACK, RULES, NOW
    )
    assert factor(factors, "callback").detail == "callback due, 120h overdue +25 (cap)"


def test_conversion_rate() -> None:
    history = ContactHistory(segment_conversion_rate=0.25)
    _, factors = score(facts(), history, Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "conversion") == ScoreFactor(
        "conversion", 5.0, "segment converts 25% +5"
    )
    _, factors = score(facts(), ContactHistory(), Stage.UNSIGNED, RULES, NOW)
    assert factor(factors, "conversion").contribution == 0.0
    assert "no data yet" in factor(factors, "conversion").detail


def test_vulnerability_adjustment_is_configurable() -> None:
    rules = RULES.model_copy(update={"vulnerability_adjustment": 5.0})
    _, factors = score(facts(is_vulnerable=True), ContactHistory(), Stage.UNSIGNED, rules, NOW)
    assert factor(factors, "vulnerability") == ScoreFactor(
        "vulnerability", 5.0, "vulnerable (people only) +5"
    )


def test_naive_claim_dates_are_refused() -> None:
    naive = ClaimFact(1, "Lloyds", "new", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        score(facts(claims=[naive]), ContactHistory(), Stage.UNSIGNED, RULES, NOW)


# --- properties ------------------------------------------------------------------------------

lenders = st.sampled_from([*HIGH_VALUE, "HSBC", "Halifax", "Acme Loans", "Vanquis", "Other"])
claims = st.builds(
    ClaimFact,
    claim_id=st.integers(1, 1000),
    lender=lenders,
    status=st.sampled_from(["new", "in_progress", "submitted", "complete"]),
    created_at=st.integers(0, 2000).map(lambda d: NOW - d * DAY),
    estimated_value=st.none() | st.floats(0, 100_000),
)
claimants = st.builds(
    facts,
    age_years=st.none() | st.integers(18, 105),
    is_vulnerable=st.booleans(),
    claims=st.lists(claims, max_size=4),
    callback_at=st.none() | st.integers(-500, 500).map(lambda h: NOW + timedelta(hours=h)),
)
histories = st.builds(
    ContactHistory,
    last_contact_at=st.none() | st.integers(0, 100 * 24).map(lambda h: NOW - timedelta(hours=h)),
    consecutive_failed_attempts=st.integers(0, 10),
    segment_conversion_rate=st.none() | st.floats(0, 1),
)
stages = st.sampled_from([Stage.CALLBACK, Stage.UNSIGNED, Stage.OUTSTANDING])


def total(f: ClaimantFacts, h: ContactHistory, stage: Stage, rules: ScoringRules = RULES) -> float:
    return score(f, h, stage, rules, NOW)[0]


@settings(max_examples=300)
@given(claimant=claimants, history=histories, stage=stages, extra_hours=st.integers(1, 2000))
def test_more_days_since_last_contact_never_lowers(
    claimant: ClaimantFacts, history: ContactHistory, stage: Stage, extra_hours: int
) -> None:
    before = total(claimant, history, stage)
    if history.last_contact_at is not None:
        earlier = replace(
            history, last_contact_at=history.last_contact_at - timedelta(hours=extra_hours)
        )
        assert total(claimant, earlier, stage) >= before
    never = replace(history, last_contact_at=None)
    assert total(claimant, never, stage) >= before


@settings(max_examples=300)
@given(claimant=claimants, history=histories, stage=stages, years=st.integers(1, 60))
def test_an_older_claimant_never_scores_lower(
    claimant: ClaimantFacts, history: ContactHistory, stage: Stage, years: int
) -> None:
    if claimant.age_years is None:
        return
    older = replace(claimant, age_years=claimant.age_years + years)
    assert total(older, history, stage) >= total(claimant, history, stage)


@settings(max_examples=300)
@given(
    claimant=claimants,
    history=histories,
    stage=stages,
    lender=st.sampled_from(HIGH_VALUE),
    data=st.data(),
)
def test_a_high_value_lender_never_lowers(
    claimant: ClaimantFacts,
    history: ContactHistory,
    stage: Stage,
    lender: str,
    data: st.DataObject,
) -> None:
    before = total(claimant, history, stage)
    # Adding an open claim with a high-value lender...
    added = replace(claimant, claims=[*claimant.claims, claim(lender, age_days=0)])
    assert total(added, history, stage) >= before
    # ... or switching one of the claims to one.
    if claimant.claims:
        index = data.draw(st.integers(0, len(claimant.claims) - 1))
        switched = list(claimant.claims)
        switched[index] = replace(switched[index], lender=lender)
        assert total(replace(claimant, claims=switched), history, stage) >= before


@settings(max_examples=200)
@given(claimant=claimants, history=histories, stage=stages)
def test_same_inputs_same_score_and_breakdown_sums_to_total(
    claimant: ClaimantFacts, history: ContactHistory, stage: Stage
) -> None:
    first = score(claimant, history, stage, RULES, NOW)
    again = score(replace(claimant), replace(history), stage, RULES, NOW)
    assert first == again
    value, factors = first
    assert math.isclose(value, sum(f.contribution for f in factors), abs_tol=1e-9)
    assert value == round(value, 3)
    assert all(f.contribution == round(f.contribution, 3) for f in factors)
    assert math.isfinite(value)
