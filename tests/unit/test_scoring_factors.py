"""The score's factors learned from outcomes and read from the rules (issue 14): expected
conversion, best channel, best hour, regional team and the calendar; the pure view of the
learned rates the scorer reads; the rules file's new settings; and no protected
characteristic ever lowering a claimant."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.assessment import assess
from domain.rules import DiallerRules, RulesError, ScoringRules, parse_rules
from domain.scoring import rate_view, score
from schemas.learned_rates import EMPTY, LearnedRate, RateTable
from schemas.outreach import (
    ClaimantFacts,
    ClaimFact,
    ContactHistory,
    RateView,
    ScoreFactor,
    SegmentRate,
    Stage,
)

ROOT = Path(__file__).resolve().parents[2]
RULES = DiallerRules()
SCORING = RULES.scoring
WINDOWS = RULES.calling_windows
# Tuesday 14 July 2026, 11:00 BST.
NOW = datetime(2026, 7, 14, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def claim(lender: str = "Santander", status: str = "new") -> ClaimFact:
    return ClaimFact(1, lender, status, NOW - 30 * DAY, None)


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
        region="Scotland",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def seg(dimension: str, segment: str, conversion: float, contact: float = 0.3) -> SegmentRate:
    return SegmentRate(dimension, segment, contact, conversion, conversion / 2, conversion * 2)


def view(**changes: object) -> RateView:
    base = RateView(
        version=3,
        segments=[
            seg("region", "Scotland", 0.10, contact=0.20),
            seg("lender", "Santander", 0.16, contact=0.30),
            seg("lender", "HSBC", 0.04, contact=0.50),
            seg("queue", "unsigned", 0.07, contact=0.40),
        ],
        hours={9: 0.2, 10: 0.3, 11: 0.3, 17: 0.5},  # average 0.325
        channels={"call": 0.30, "sms": 0.20},
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def factor(
    f: ClaimantFacts,
    history: ContactHistory,
    name: str,
    *,
    rules: ScoringRules = SCORING,
    stage: Stage = Stage.UNSIGNED,
    now: datetime = NOW,
    callable_at: datetime | None = None,
) -> ScoreFactor:
    _, factors = score(f, history, stage, rules, now, callable_at=callable_at, windows=WINDOWS)
    return next(x for x in factors if x.name == name)


# --- expected conversion ---------------------------------------------------------------------


def test_expected_conversion_averages_region_best_lender_and_queue() -> None:
    found = factor(facts(), ContactHistory(learned=view()), "conversion")
    # mean of Scotland 10%, Santander 16% (the better of no other open claim), unsigned 7%
    assert found.contribution == pytest.approx(0.11 * 20)
    assert found.detail == (
        "expected conversion 11.0% (region Scotland 10% [5-20%], "
        "lender Santander 16% [8-32%], queue unsigned 7% [4-14%]) +2.2"
    )


def test_the_best_converting_open_claim_lender_counts_and_a_complete_one_does_not() -> None:
    claims = [claim("hsbc"), claim("Santander", status="complete")]
    found = factor(facts(claims=claims), ContactHistory(learned=view()), "conversion")
    assert "lender HSBC 4%" in found.detail and "Santander" not in found.detail
    both = [claim("HSBC"), claim("Santander")]
    found = factor(facts(claims=both), ContactHistory(learned=view()), "conversion")
    assert "lender Santander 16%" in found.detail and "HSBC" not in found.detail


def test_expected_conversion_uses_the_queue_of_the_stage() -> None:
    learned = view(segments=[seg("queue", "unsigned", 0.07), seg("queue", "outstanding", 0.2)])
    found = factor(facts(), ContactHistory(learned=learned), "conversion", stage=Stage.OUTSTANDING)
    assert found.contribution == pytest.approx(4.0)
    assert "queue outstanding 20%" in found.detail


def test_an_age_band_rate_is_never_read() -> None:
    with_age = view(segments=[*view().segments, seg("age_band", "75 and over", 0.9)])
    plain = factor(facts(), ContactHistory(learned=view()), "conversion")
    assert factor(facts(), ContactHistory(learned=with_age), "conversion") == plain


def test_before_the_first_learned_rates_the_queue_rate_is_the_fallback() -> None:
    found = factor(facts(), ContactHistory(segment_conversion_rate=0.25), "conversion")
    assert found == ScoreFactor("conversion", 5.0, "segment converts 25% +5")
    # a learned version without any of the claimant's segments falls back too
    empty = ContactHistory(segment_conversion_rate=0.25, learned=view(segments=[]))
    assert factor(facts(), empty, "conversion") == found
    nothing = factor(facts(), ContactHistory(), "conversion")
    assert nothing == ScoreFactor("conversion", 0.0, "segment conversion rate: no data yet +0")


def test_learned_rates_are_clamped() -> None:
    learned = view(segments=[seg("queue", "unsigned", 1.7)])
    found = factor(facts(), ContactHistory(learned=learned), "conversion")
    assert found.contribution == pytest.approx(20.0)


# --- best channel ----------------------------------------------------------------------------


def test_best_channel_without_rates_says_so() -> None:
    found = factor(facts(), ContactHistory(), "best_channel")
    assert found == ScoreFactor("best_channel", 0.0, "call now: no learned channel rates yet +0")
    only_calls = view(channels={"call": 0.3})
    assert factor(facts(), ContactHistory(learned=only_calls), "best_channel").contribution == 0


def test_a_claimant_who_may_not_be_texted_is_called_now() -> None:
    learned = view(channels={"call": 0.2, "sms": 0.5})
    found = factor(facts(), ContactHistory(learned=learned), "best_channel")
    assert found == ScoreFactor("best_channel", 0.0, "call now: no SMS consent (calls 20%) +0")


def test_calls_answered_better_raise_the_call() -> None:
    textable = facts(consent_channels=["live_call", "sms"])
    found = factor(textable, ContactHistory(learned=view()), "best_channel")
    assert found.contribution == pytest.approx(1.0)  # (30% - 20%) x 10
    assert found.detail == "call now: calls answered 30% vs texts 20% +1"


def test_texts_answered_better_say_sms_first_and_lower_the_call() -> None:
    textable = facts(consent_channels=["live_call", "sms"])
    learned = view(channels={"call": 0.25, "sms": 0.35})
    found = factor(textable, ContactHistory(learned=learned), "best_channel")
    assert found.contribution == pytest.approx(-1.0)
    assert found.detail == "SMS first: texts answered 35% vs calls 25% -1"
    off = SCORING.model_copy(update={"channel_weight": 0.0})
    assert factor(textable, ContactHistory(learned=learned), "best_channel", rules=off).detail == (
        "SMS first: texts answered 35% vs calls 25% +0"
    )


# --- best hour -------------------------------------------------------------------------------


def test_a_better_hour_raises_by_the_claimants_gain() -> None:
    # 17:00 BST = 16:00 UTC: 50% vs 32.5% on average, a gain of 53.8%; the claimant's own
    # contact rate is the mean of their segments' (20%, 30% for Santander, 40%) = 30%
    at = datetime(2026, 7, 14, 16, 0, tzinfo=UTC)
    found = factor(facts(), ContactHistory(learned=view()), "best_hour", now=at)
    gain = 0.5 / 0.325 - 1
    assert found.contribution == pytest.approx(10 * 0.3 * gain, abs=1e-3)
    assert found.detail.startswith("17:00 reaches 50% vs 32% on average (+54% on the claimant")


def test_a_worse_hour_takes_nothing_off() -> None:
    at = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)  # 09:00 BST: 20%
    found = factor(facts(), ContactHistory(learned=view()), "best_hour", now=at)
    assert found == ScoreFactor("best_hour", 0.0, "09:00 reaches 20% vs 32% on average +0")


def test_the_hour_is_when_the_claimant_becomes_callable() -> None:
    later = datetime(2026, 7, 14, 16, 30, tzinfo=UTC)  # 17:30 BST
    found = factor(facts(), ContactHistory(learned=view()), "best_hour", callable_at=later)
    assert found.detail.startswith("17:00 reaches 50%")
    # a callable time already past is now
    past = factor(facts(), ContactHistory(learned=view()), "best_hour", callable_at=NOW - DAY)
    assert past.detail.startswith("11:00 reaches 30%")


def test_an_hour_without_data_or_no_rates_say_so() -> None:
    at = datetime(2026, 7, 14, 19, 0, tzinfo=UTC)  # 20:00 BST: not learned
    found = factor(facts(), ContactHistory(learned=view()), "best_hour", now=at)
    assert found == ScoreFactor("best_hour", 0.0, "20:00: no learned hourly rates yet +0")
    assert factor(facts(), ContactHistory(), "best_hour").contribution == 0


def test_the_best_hour_uses_the_average_hour_without_claimant_segments() -> None:
    at = datetime(2026, 7, 14, 16, 0, tzinfo=UTC)
    learned = view(segments=[])
    found = factor(facts(), ContactHistory(learned=learned), "best_hour", now=at)
    assert found.contribution == pytest.approx(10 * 0.325 * (0.5 / 0.325 - 1), abs=1e-3)


# --- regional team ---------------------------------------------------------------------------


def test_a_regional_team_raises_its_region_ignoring_case() -> None:
    rules = parse_rules('[scoring.regions]\n"scotland" = 5\n').scoring
    found = factor(facts(), ContactHistory(), "region", rules=rules)
    assert found == ScoreFactor("region", 5.0, "Scotland (regional team) +5")
    other = factor(facts(region="Wales"), ContactHistory(), "region", rules=rules)
    assert other == ScoreFactor("region", 0.0, "Wales (no regional team) +0")
    unknown = factor(facts(region=None), ContactHistory(), "region", rules=rules)
    assert unknown == ScoreFactor("region", 0.0, "region unknown +0")


# --- calendar --------------------------------------------------------------------------------

CALENDAR = parse_rules(
    "[scoring.calendar]\nmonth_end_days = 3\nmonth_end_points = 4\nbank_holiday_points = 2\n"
).scoring


def _on(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "points", "detail"),
    [
        (date(2026, 7, 31), 4.0, "month end today +4"),
        (date(2026, 7, 29), 4.0, "month end in 2 days +4"),
        (date(2026, 7, 28), 0.0, "not near a month end or bank holiday +0"),
        # Good Friday 3 April and Easter Monday 6 April 2026
        (date(2026, 4, 2), 2.0, "working day before the bank holiday Fri 3 Apr +2"),
        (date(2026, 4, 7), 2.0, "working day after the bank holiday Mon 6 Apr +2"),
        (
            date(2026, 4, 4),
            4.0,
            "working day before the bank holiday Mon 6 Apr; "
            "working day after the bank holiday Fri 3 Apr +4",
        ),
        # Friday before the late May bank holiday (Mon 25 May), and a month end with it
        (date(2026, 5, 22), 2.0, "working day before the bank holiday Mon 25 May +2"),
        (date(2026, 8, 28), 2.0, "working day before the bank holiday Mon 31 Aug +2"),
        (
            date(2026, 8, 29),
            6.0,
            "month end in 2 days; working day before the bank holiday Mon 31 Aug +6",
        ),
        (date(2026, 4, 3), 0.0, "not near a month end or bank holiday +0"),  # the holiday
    ],
)
def test_month_end_and_bank_holidays(day: date, points: float, detail: str) -> None:
    found = factor(facts(), ContactHistory(), "calendar", rules=CALENDAR, now=_on(day))
    assert found == ScoreFactor("calendar", points, detail)


def test_the_calendar_is_off_by_default_but_still_explained() -> None:
    found = factor(facts(), ContactHistory(), "calendar", now=_on(date(2026, 7, 31)))
    assert found == ScoreFactor("calendar", 0.0, "month end today +0")


def test_the_calendar_reads_the_days_of_the_uk() -> None:
    # 23:30 UTC on 30 June is 00:30 BST on 1 July: not a month end in the UK
    late = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    found = factor(facts(), ContactHistory(), "calendar", rules=CALENDAR, now=late)
    assert found.contribution == 0


# --- the rate view ---------------------------------------------------------------------------


def _rate(dimension: str, segment: str, contact: float, conversion: float) -> LearnedRate:
    return LearnedRate(
        dimension, segment, 100, int(contact * 100), int(conversion * 100),
        contact, contact - 0.05, contact + 0.05, conversion, conversion - 0.02,
        conversion + 0.02, contact + 0.01, conversion + 0.01,
    )  # fmt: skip


TABLE = RateTable(
    version_id=9,
    computed_at=NOW,
    overall_contact_rate=0.3,
    overall_conversion_rate=0.1,
    rates={
        (r.dimension, r.segment): r
        for r in [
            _rate("overall", "all", 0.3, 0.1),
            _rate("region", "Scotland", 0.2, 0.08),
            _rate("region", "unknown", 0.25, 0.09),
            _rate("lender", "Santander", 0.35, 0.15),
            _rate("lender", "Barclays", 0.3, 0.12),
            _rate("queue", "unsigned", 0.4, 0.11),
            _rate("age_band", "75 and over", 0.5, 0.2),
            _rate("hour", "09", 0.2, 0.1),
            _rate("hour", "17", 0.4, 0.1),
            _rate("channel", "call", 0.3, 0.1),
            _rate("channel", "sms", 0.2, 0.05),
        ]
    },
)


def test_the_view_holds_the_claimants_shrunk_rates_and_never_the_age_band() -> None:
    claims = [claim("Santander"), claim("Barclays", status="complete"), claim("Acme")]
    found = rate_view(TABLE, facts(claims=claims), Stage.UNSIGNED)
    assert found is not None and found.version == 9
    assert [(s.dimension, s.segment) for s in found.segments] == [
        ("region", "Scotland"),
        ("lender", "Santander"),
        ("queue", "unsigned"),
    ]
    santander = found.segments[1]
    assert (santander.contact_rate, santander.conversion_rate) == (0.36, 0.16)  # shrunk
    assert (santander.conversion_low, santander.conversion_high) == pytest.approx((0.13, 0.17))
    assert found.hours == pytest.approx({9: 0.21, 17: 0.41})
    assert found.channels == pytest.approx({"call": 0.31, "sms": 0.21})


def test_the_view_places_a_claimant_without_a_region_in_unknown() -> None:
    found = rate_view(TABLE, facts(region=None), Stage.OUTSTANDING)
    assert found is not None
    assert [(s.dimension, s.segment) for s in found.segments] == [
        ("region", "unknown"),
        ("lender", "Santander"),
    ]


def test_no_version_learned_means_no_view() -> None:
    assert rate_view(EMPTY, facts(), Stage.UNSIGNED) is None


# --- through assess --------------------------------------------------------------------------


def test_assess_scores_the_hour_the_claimant_becomes_callable() -> None:
    # a no_answer at 10:00 BST: callable from 14:00 BST, whose learned rate counts
    history = ContactHistory(
        last_disposition="no_answer",
        last_disposition_at=NOW - HOUR,
        learned=view(hours={13: 0.6, 10: 0.1}),
    )
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    hour = next(f for f in assessment.factors if f.name == "best_hour")
    assert hour.detail == "14:00: no learned hourly rates yet +0"  # not 11:00, now
    assert assessment.not_before == NOW + 3 * HOUR
    history = replace(history, learned=view(hours={14: 0.6, 10: 0.1}))
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    hour = next(f for f in assessment.factors if f.name == "best_hour")
    assert hour.detail.startswith("14:00 reaches 60% vs 35% on average")
    assert hour.contribution > 0


# --- the rules file --------------------------------------------------------------------------


def test_the_shipped_file_sets_the_new_factors_defaults() -> None:
    rules = parse_rules((ROOT / "config" / "dialler_rules.toml").read_text(encoding="utf-8"))
    scoring = rules.scoring
    assert scoring == ScoringRules()
    assert (scoring.conversion_weight, scoring.channel_weight, scoring.hour_weight) == (20, 10, 10)
    assert scoring.regions == {}
    assert (scoring.calendar.month_end_days, scoring.calendar.month_end_points) == (3, 0)
    assert scoring.calendar.bank_holiday_points == 0
    assert scoring.preferred_agent_hold == timedelta(minutes=10)


def test_the_new_settings_parse() -> None:
    scoring = parse_rules(
        "[scoring]\nchannel_weight = 4\nhour_weight = 2.5\n"
        "preferred_agent_hold = { minutes = 0 }\n"
        '[scoring.regions]\n"North East" = 3\nLondon = 0\n'
        "[scoring.calendar]\nmonth_end_days = 1\nmonth_end_points = 2\n"
    ).scoring
    assert (scoring.channel_weight, scoring.hour_weight) == (4, 2.5)
    assert scoring.preferred_agent_hold == timedelta(0)
    assert scoring.region_boost("north east") == (3.0, True)
    assert scoring.region_boost("Wales") == (0.0, False)
    assert scoring.calendar.month_end_days == 1


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("[scoring.regions]\nScotlnd = 5\n", "scoring.regions", "unknown region 'Scotlnd'"),
        ('[scoring.regions]\nWales = 1\n"WALES" = 2\n', "scoring.regions", "listed twice"),
        ("[scoring.regions]\nWales = -3\n", "scoring.regions.Wales", "greater than or equal"),
        ('[scoring.regions]\nWales = "5"\n', "scoring.regions.Wales", "valid number"),
        ("[scoring]\nchannel_weight = -1\n", "scoring.channel_weight", "greater than or equal"),
        ("[scoring]\nhour_weight = nan\n", "scoring.hour_weight", "finite"),
        (
            "[scoring]\npreferred_agent_hold = { hours = 2 }\n",
            "scoring.preferred_agent_hold",
            "at most 1 hour",
        ),
        ('[scoring]\npreferred_agent_hold = "soon"\n', "scoring.preferred_agent_hold", "duration"),
        ("[scoring.calendar]\nmonth_end_days = 0\n", "scoring.calendar.month_end_days", "1"),
        ("[scoring.calendar]\nmonth_end_days = 20\n", "scoring.calendar.month_end_days", "15"),
        (
            "[scoring.calendar]\nbank_holiday_points = -2\n",
            "scoring.calendar.bank_holiday_points",
            "greater than or equal",
        ),
        ("[scoring.calendar]\npayday = 3\n", "scoring.calendar.payday", "Extra inputs"),
    ],
)
def test_mistakes_in_the_new_settings_name_their_key(text: str, where: str, words: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert any(p.startswith(f"{where}:") and words in p for p in caught.value.problems), (
        caught.value.problems
    )


# --- protected characteristics ---------------------------------------------------------------

_RATES = st.floats(min_value=0, max_value=1, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    younger=st.integers(min_value=0, max_value=110),
    years=st.integers(min_value=0, max_value=20),
    region=_RATES,
    lender=_RATES,
    queue=_RATES,
    hour=st.integers(min_value=0, max_value=23),
)
def test_age_only_ever_raises_and_only_through_the_age_bands(
    younger: int, years: int, region: float, lender: float, queue: float, hour: int
) -> None:
    learned = view(
        segments=[
            seg("region", "Scotland", region),
            seg("lender", "Santander", lender),
            seg("queue", "unsigned", queue),
            seg("age_band", "75 and over", 1.0 - queue),  # never read
        ]
    )
    history = ContactHistory(learned=learned)
    now = datetime(2026, 7, 14, hour, 0, tzinfo=UTC)
    young_total, young = score(facts(age_years=younger), history, Stage.UNSIGNED, SCORING, now)
    old_total, old = score(facts(age_years=younger + years), history, Stage.UNSIGNED, SCORING, now)
    assert old_total >= young_total
    assert [f for f in old if f.name != "age"] == [f for f in young if f.name != "age"]
