"""domain.learned_rates: the segment keys (regions from postcode areas, whatever the
postcode holds; age bands; UK hours and weekdays), the counts per segment, and rates that
recover known true rates within their intervals, with small segments shrunk towards the
overall rate."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from demo.data import OUTWARD_CODES
from domain.learned_rates import (
    AREA_REGIONS,
    DEFAULT_PRIOR_STRENGTH,
    K_MAX,
    REGIONS,
    AttemptSource,
    age_band,
    age_on,
    day_of_week,
    hour_of_day,
    jeffreys_interval,
    learn_rates,
    postcode_area,
    prior_strength,
    region_of,
    segment_counts,
    segment_key,
)
from schemas.learned_rates import (
    AttemptCounts,
    ClaimantAttributes,
    LearnedRate,
    RateInput,
    SegmentCount,
    Tally,
)

UK = "Europe/London"
SEED = 2026

# --- regions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("postcode", "region"),
    [
        ("M1 4AB", "North West"),
        ("B33 8TH", "West Midlands"),
        ("EH1 1AA", "Scotland"),
        ("sw1a 1aa", "London"),
        ("  w1a0ax ", "London"),
        ("E1 6AN", "London"),
        ("LS1 4DY", "Yorkshire and the Humber"),
        ("NE1 7RU", "North East"),
        ("NG1 5FS", "East Midlands"),
        ("CB2 1TN", "East of England"),
        ("BN1 1AA", "South East"),
        ("BS1 5TR", "South West"),
        ("CF10 1EP", "Wales"),
        ("BT9 5AB", "Northern Ireland"),
        ("GY1 1AA", "Channel Islands"),
        ("IM1 1AA", "Isle of Man"),
        ("G2 1DU", "Scotland"),
        ("S1 2HE", "Yorkshire and the Humber"),
        ("L1 8JQ", "North West"),
    ],
)
def test_a_postcode_area_gives_its_region(postcode: str, region: str) -> None:
    assert region_of(postcode) == region


@pytest.mark.parametrize(
    "postcode",
    [None, "", "   ", "1AB 2CD", "XX1 1AA", "BX1 1LT", "GIR 0AA", "ABC1", "M", "ÉH1 1AA",
     "M\x001 4AB", "\x00", "EH\u0661 1AA", "999999999999999999999999999999"],
)  # fmt: skip
def test_anything_else_is_unknown(postcode: str | None) -> None:
    assert region_of(postcode) == "unknown"


def test_every_area_the_demo_data_uses_has_a_region() -> None:
    assert len(AREA_REGIONS) == 124
    assert {code: region_of(f"{code} 1AA") for code in OUTWARD_CODES if
            region_of(f"{code} 1AA") == "unknown"} == {}  # fmt: skip
    assert len(REGIONS) == 14


@given(st.text())
def test_any_text_gives_a_region_or_unknown(text: str) -> None:
    assert region_of(text) in (*REGIONS, "unknown")


@given(st.integers())
def test_numbers_are_not_postcodes(number: int) -> None:
    assert region_of(str(number)) == "unknown"
    assert region_of(f"{number}") == "unknown"


@given(
    area=st.sampled_from(sorted(AREA_REGIONS)),
    district=st.integers(min_value=0, max_value=99),
    rest=st.text(max_size=40),
    spaces=st.text(alphabet=" \t", max_size=3),
    lower=st.booleans(),
)
def test_an_area_and_a_digit_decide_whatever_follows(
    area: str, district: int, rest: str, spaces: str, lower: bool
) -> None:
    head = f"{spaces}{area}{district}"
    postcode = (head.lower() if lower else head) + rest
    assert postcode_area(postcode) == area
    assert region_of(postcode) == AREA_REGIONS[area]


def test_a_huge_postcode_is_not_scanned_whole() -> None:
    assert region_of("EH1" + "A" * 10_000_000) == "Scotland"
    assert region_of("\x00" * 10_000_000) == "unknown"


# --- ages, hours, weekdays, keys -----------------------------------------------------------------


def test_ages_and_their_reporting_bands() -> None:
    day = date(2026, 12, 3)
    assert age_on(date(1951, 12, 3), day) == 75
    assert age_on(date(1951, 12, 4), day) == 74
    assert age_on(date(2000, 2, 29), date(2026, 2, 28)) == 25
    assert age_on(date(2000, 2, 29), date(2026, 3, 1)) == 26
    assert age_on(None, day) is None
    assert age_on(date(2027, 1, 1), day) is None
    bands = {age: age_band(age) for age in (None, -1, 0, 34, 35, 49, 50, 64, 65, 74, 75, 130, 131)}
    assert bands == {
        None: "unknown", -1: "unknown", 0: "under 35", 34: "under 35", 35: "35-49",
        49: "35-49", 50: "50-64", 64: "50-64", 65: "65-74", 74: "65-74", 75: "75 and over",
        130: "75 and over", 131: "unknown",
    }  # fmt: skip


def test_hours_and_weekdays_are_the_uk_ones() -> None:
    summer = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)  # BST: 13:30, a Wednesday
    assert (hour_of_day(summer, UK), day_of_week(summer, UK)) == ("13", "Wed")
    winter = datetime(2026, 1, 5, 23, 30, tzinfo=UTC)  # GMT: a Monday night
    assert (hour_of_day(winter, UK), day_of_week(winter, UK)) == ("23", "Mon")
    sunday_night = datetime(2026, 6, 7, 23, 30, tzinfo=UTC)  # Monday 00:30 in London
    assert (hour_of_day(sunday_night, UK), day_of_week(sunday_night, UK)) == ("00", "Mon")
    assert hour_of_day(summer, "UTC") == "12"
    with pytest.raises(ValueError, match="aware"):
        hour_of_day(datetime(2026, 7, 1, 12, 30), UK)


def test_segment_keys_are_storable() -> None:
    assert segment_key("Black\x00 Horse ") == "Black Horse"
    assert segment_key("x" * 100) == "x" * 64
    assert segment_key(" \x00\n ") == "unknown"
    assert segment_key(None) == "unknown"


def test_importing_the_keys_does_not_import_scipy() -> None:
    """The scorer reads the keys inside workflow sandboxes, which import a module afresh for
    every workflow run: scipy must only be imported when an interval is computed."""
    probe = "import sys, domain.learned_rates; print('scipy' in sys.modules)"
    found = subprocess.run(  # noqa: S603 (this interpreter, a fixed probe)
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"


# --- counts per segment ----------------------------------------------------------------------


def _counts(
    total: Tally,
    by_queue: dict[str | None, Tally],
    by_user: dict[int, Tally],
    by_slot: dict[datetime, Tally] | None = None,
) -> AttemptCounts:
    return AttemptCounts(total, by_queue, by_slot or {}, by_user)


def _utc(hour: int, minute: int) -> datetime:
    return datetime(2026, 6, 29, hour, minute, tzinfo=UTC)  # a Monday, BST (UTC+1)


def test_counts_per_segment_from_the_channels_and_the_claimants() -> None:
    calls = _counts(
        Tally(10, 5, 2),
        {"unsigned": Tally(6, 3, 1), "outstanding": Tally(4, 2, 1)},
        {1: Tally(6, 3, 1), 2: Tally(3, 1, 1), 3: Tally(1, 1, 0)},
        # quarter hours (UTC) the calls started in: 09:00 and 09:45, 18:30 in London
        by_slot={
            _utc(8, 0): Tally(4, 2, 1),
            _utc(8, 45): Tally(3, 1, 1),
            _utc(17, 30): Tally(3, 2, 0),
        },
    )
    texts = _counts(
        Tally(4, 2, 1),
        {"unsigned": Tally(3, 2, 1), None: Tally(1, 0, 0)},
        {1: Tally(2, 1, 1), 4: Tally(2, 1, 0)},
        by_slot={_utc(2, 0): Tally(4, 2, 1)},  # texts say nothing of when to ring
    )
    claimants = {
        1: ClaimantAttributes("M1 4AB", date(1950, 1, 1), ("Santander", "Barclays")),
        2: ClaimantAttributes("EH1 1AA", date(1990, 6, 1), ("Santander",)),
        3: ClaimantAttributes("junk", None, ("Santan\x00der", "Santander")),
    }
    at = datetime(2026, 12, 3, tzinfo=UTC)
    gathered = segment_counts(AttemptSource(at, at, calls, texts, claimants, date(2026, 12, 3)))
    by = {(c.dimension, c.segment): (c.attempts, c.reached, c.conversions) for c in gathered.counts}
    assert gathered.overall == SegmentCount("overall", "all", 14, 7, 3)
    assert gathered.claimants == 4
    assert by == {
        ("channel", "call"): (10, 5, 2), ("channel", "sms"): (4, 2, 1),
        ("queue", "unsigned"): (9, 5, 2), ("queue", "outstanding"): (4, 2, 1),
        ("queue", "none"): (1, 0, 0),
        ("region", "North West"): (8, 4, 2), ("region", "Scotland"): (3, 1, 1),
        ("region", "unknown"): (3, 2, 0),  # claimant 3's junk postcode, claimant 4 unknown
        # claimant 1 counts towards both lenders; claimant 3's two spellings are one
        ("lender", "Santander"): (12, 6, 3), ("lender", "Barclays"): (8, 4, 2),
        ("lender", "unknown"): (2, 1, 0),
        ("age_band", "75 and over"): (8, 4, 2), ("age_band", "35-49"): (3, 1, 1),
        ("age_band", "unknown"): (3, 2, 0),
        ("hour", "09"): (7, 3, 2), ("hour", "18"): (3, 2, 0),
        ("weekday", "Mon"): (10, 5, 2),
    }  # fmt: skip


# --- intervals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "n"), [(1, 10), (3, 10), (9, 10), (17, 400), (250, 1000)])
def test_the_interval_is_jeffreys(x: int, n: int) -> None:
    assert jeffreys_interval(x, n) == pytest.approx(
        proportion_confint(x, n, alpha=0.05, method="jeffreys")
    )


def test_the_interval_reaches_the_ends_it_must() -> None:
    low, high = jeffreys_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2172, abs=1e-4)
    assert jeffreys_interval(10, 10)[1] == 1.0
    assert jeffreys_interval(0, 0) == (0.0, 1.0)
    narrow, wide = jeffreys_interval(30, 100, 0.8), jeffreys_interval(30, 100, 0.99)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


# --- recovering known rates ----------------------------------------------------------------------


def _synthetic(
    rng: np.random.Generator, dimension: str, truths: list[tuple[str, int, float, float]]
) -> list[SegmentCount]:
    """Attempts per segment drawn with known contact and conversion probabilities."""
    counts = []
    for segment, n, contact, conversion in truths:
        reached = rng.random(n) < contact
        # a conversion is independent of reaching here; the rate is per attempt either way
        converted = rng.random(n) < conversion
        counts.append(SegmentCount(dimension, segment, n, int(reached.sum()), int(converted.sum())))
    return counts


def _overall(counts: list[SegmentCount]) -> SegmentCount:
    return SegmentCount(
        "overall", "all", sum(c.attempts for c in counts), sum(c.reached for c in counts),
        sum(c.conversions for c in counts),
    )  # fmt: skip


def test_learned_rates_recover_the_true_rates_within_their_intervals() -> None:
    rng = np.random.default_rng(SEED)
    truths = {
        "region": [(f"region {i}", int(rng.integers(200, 5000)), float(rng.uniform(0.2, 0.6)),
                    float(rng.uniform(0.01, 0.08))) for i in range(40)],
        "hour": [(f"{h:02d}", int(rng.integers(50, 3000)), float(rng.uniform(0.1, 0.5)),
                  float(rng.uniform(0.005, 0.05))) for h in range(8, 21)],
        "lender": [(f"lender {i}", int(rng.integers(30, 200)), float(rng.uniform(0.3, 0.5)),
                    float(rng.uniform(0.02, 0.1))) for i in range(27)],
    }  # fmt: skip
    counts = [c for d, t in truths.items() for c in _synthetic(rng, d, t)]
    learned = learn_rates(RateInput(_overall(counts), counts))
    true = {
        (d, s): (contact, conversion) for d, t in truths.items() for s, _, contact, conversion in t
    }
    rates = [r for r in learned.rates if r.dimension != "overall"]
    assert len(rates) == len(true) == 80
    contact_in = [
        r.contact_low <= true[(r.dimension, r.segment)][0] <= r.contact_high for r in rates
    ]
    conversion_in = [r.conversion_low <= true[(r.dimension, r.segment)][1] <= r.conversion_high
                     for r in rates]  # fmt: skip
    # 95 % intervals: nearly all of them hold the truth (at least 90 %)
    assert sum(contact_in) / len(rates) >= 0.9
    assert sum(conversion_in) / len(rates) >= 0.9
    for r in rates:
        assert r.contact_low <= r.contact_rate <= r.contact_high
        assert r.contact_rate == r.reached / r.attempts
    # the intervals are not trivially wide: the big segments' are a few points
    big = [r for r in rates if r.attempts >= 2000]
    assert big and all(r.contact_high - r.contact_low < 0.05 for r in big)


def test_small_segments_shrink_towards_the_overall_rate() -> None:
    rng = np.random.default_rng(SEED + 1)
    truths = [(f"r{i}", 3000, p, 0.04) for i, p in enumerate((0.25, 0.3, 0.35, 0.4, 0.45, 0.5))]
    counts = _synthetic(rng, "region", truths)
    # two small segments whose raw rates are far from the rest: 5 of 5 and 0 of 4 reached
    counts += [
        SegmentCount("region", "tiny high", 5, 5, 2),
        SegmentCount("region", "tiny low", 4, 0, 0),
    ]
    overall = _overall(counts)
    learned = learn_rates(RateInput(overall, counts))
    p = overall.reached / overall.attempts
    by = {r.segment: r for r in learned.rates if r.dimension == "region"}
    [prior] = learned.priors
    assert prior.chosen_by == "moments" and 20 < prior.contact < 200
    for r in by.values():
        # every shrunk rate lies between the raw rate and the overall one
        assert min(r.contact_rate, p) <= r.shrunk_contact_rate <= max(r.contact_rate, p)
    high, low = by["tiny high"], by["tiny low"]
    assert abs(high.shrunk_contact_rate - p) < 0.2 * abs(high.contact_rate - p)
    assert abs(low.shrunk_contact_rate - p) < 0.2 * abs(low.contact_rate - p)
    for r in (by[f"r{i}"] for i in range(6)):  # big segments keep their own rate
        assert abs(r.shrunk_contact_rate - r.contact_rate) < 0.01
    # the fewer the attempts, the larger the pull: k / (n + k) of the way to the dimension's
    # own overall rate, whatever the raw rate
    sizes = [SegmentCount("lender", "n10", 10, 8, 0), SegmentCount("lender", "n100", 100, 10, 0),
             SegmentCount("lender", "n1000", 1000, 500, 0)]  # fmt: skip
    fixed = learn_rates(RateInput(overall, sizes, prior_strength=50.0))
    pooled = 518 / 1110
    pulls = [(r.contact_rate - r.shrunk_contact_rate) / (r.contact_rate - pooled)
             for r in fixed.rates if r.dimension == "lender"]  # fmt: skip
    assert pulls == pytest.approx([50 / 60, 50 / 150, 50 / 1050])
    assert [pr.chosen_by for pr in fixed.priors] == ["fixed"]


def test_the_method_of_moments_recovers_the_prior_strength() -> None:
    rng = np.random.default_rng(SEED + 2)
    k, p = 60.0, 0.3
    true_rates = rng.beta(p * k, (1 - p) * k, size=400)
    n = 2000
    counts = [(int((rng.random(n) < rate).sum()), n) for rate in true_rates]
    estimated = prior_strength(counts)
    assert estimated is not None and 0.75 * k < estimated < 1.25 * k
    # segments that differ only by chance: everyone gets the overall rate
    alike = [(int((rng.random(n) < p).sum()), n) for _ in range(50)]
    assert (prior_strength(alike) or 0) > 1000  # pulled nearly all the way
    assert prior_strength([(600, 2000)] * 50) == K_MAX
    assert prior_strength([(0, 100), (0, 50), (0, 10)]) == K_MAX
    assert prior_strength([(10, 100), (20, 100)]) is None  # too few segments


def test_a_dimension_of_two_segments_takes_the_default_strength() -> None:
    counts = [
        SegmentCount("channel", "call", 900, 300, 30),
        SegmentCount("channel", "sms", 100, 20, 1),
    ]
    learned = learn_rates(RateInput(_overall(counts), counts))
    [prior] = learned.priors
    assert (prior.contact, prior.conversion, prior.chosen_by) == (
        DEFAULT_PRIOR_STRENGTH, DEFAULT_PRIOR_STRENGTH, "default",
    )  # fmt: skip
    sms = next(r for r in learned.rates if r.segment == "sms")
    assert sms.shrunk_contact_rate == pytest.approx((20 + 100 * 0.32) / 200)
    overall: LearnedRate = learned.overall
    assert learned.rates[0] == overall
    assert (overall.contact_rate, overall.shrunk_contact_rate) == (0.32, 0.32)


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (SegmentCount("region", "x", 5, 6, 0), "more successes"),
        (SegmentCount("region", "x", 5, 1, 6), "more successes"),
        (SegmentCount("region", "x", -1, 0, 0), "negative"),
    ],
)
def test_impossible_counts_are_refused(count: SegmentCount, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        learn_rates(RateInput(SegmentCount("overall", "all", 10, 5, 1), [count]))


def test_bad_settings_are_refused() -> None:
    overall = SegmentCount("overall", "all", 10, 5, 1)
    with pytest.raises(ValueError, match="confidence"):
        learn_rates(RateInput(overall, [], confidence=1.0))
    with pytest.raises(ValueError, match="prior strength"):
        learn_rates(RateInput(overall, [], prior_strength=float("nan")))
    empty = learn_rates(RateInput(SegmentCount("overall", "all", 0, 0, 0), []))
    assert empty.overall.contact_rate == 0.0 and empty.overall.contact_high == 1.0
