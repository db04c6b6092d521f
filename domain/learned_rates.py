"""Learned rates (issue 14): the segment keys, and rates with intervals and shrinkage from
counts. Pure: the counts, the attributes and the day are passed in (`activities/learning.py`
reads them; `schemas.learned_rates` says what each dimension counts).

**Segment keys.** `region_of` maps a UK postcode's area (the letters before the first digit:
"M" of "M1 4AB", "EH" of "EH1 1AA") to its region (the ONS regions, Scotland, Wales,
Northern Ireland, the Channel Islands and the Isle of Man); an area that straddles a border
goes to the region where most of its people live (CH: North West, SY: West Midlands, DA
and KT: South East, TD: Scotland). Anything else (no postcode, a non-geographic area, junk)
is "unknown". `hour_of_day` and `day_of_week` are those of an aware moment in a zone;
`age_band` exists for reports only (age is a protected characteristic: never a factor).

**Intervals.** Jeffreys: the 2.5 % and 97.5 % quantiles of Beta(x + 1/2, n - x + 1/2),
with the lower bound 0 when x = 0 and the upper 1 when x = n (Brown, Cai and DasGupta 2001:
close to nominal coverage even for small n and rates near 0, where the Wald interval fails;
conversion rates are a few per cent). Quantiles by `scipy.stats.beta` (imported when first
needed: see `jeffreys_interval`).

**Shrinkage.** Empirical-Bayes beta-binomial: a segment's shrunk rate is
(x + k·p) / (n + k), where p is the overall rate of the attempts its dimension counts (the
overall rate; for hour and weekday, which count calls only, the calls' rate) and k is the
prior strength in attempts: a segment of k attempts is pulled halfway to p, a much larger one
hardly at all. k is chosen per dimension and per rate from the data by the method of
moments: the true segment rates are taken as Beta(p·k, (1-p)·k), whose variance is
p(1-p)/(k+1); the between-segment variance tau^2 is what the observed rates vary by beyond
binomial noise,

    tau^2 = (sum n_i (r_i - p)^2 - (m - 1) p (1 - p)) / (N - sum n_i^2 / N)

(m segments, N attempts; the DerSimonian-Laird form of the estimator), so
k = p(1-p)/tau^2 - 1, clamped to [K_MIN, K_MAX]. When the segments differ no more than
chance would make them (tau^2 <= 0), k = K_MAX: every segment gets the overall rate, which
is the honest answer. A dimension with fewer than MIN_SEGMENTS segments (the channel: call
and SMS) cannot estimate a variance, so it takes DEFAULT_PRIOR_STRENGTH. `RateInput`'s
`prior_strength` fixes k for every dimension instead (a rules file or the CLI may set it).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from schemas.learned_rates import (
    NO_QUEUE_SEGMENT,
    OVERALL_SEGMENT,
    SEGMENT_LENGTH,
    UNKNOWN_SEGMENT,
    AttemptCounts,
    Channel,
    ClaimantAttributes,
    Dimension,
    GatheredCounts,
    LearnedRate,
    LearnedRates,
    PriorStrength,
    RateInput,
    SegmentCount,
    Tally,
)

# --- segment keys --------------------------------------------------------------------------

NORTH_EAST = "North East"
NORTH_WEST = "North West"
YORKSHIRE = "Yorkshire and the Humber"
EAST_MIDLANDS = "East Midlands"
WEST_MIDLANDS = "West Midlands"
EAST = "East of England"
LONDON = "London"
SOUTH_EAST = "South East"
SOUTH_WEST = "South West"
WALES = "Wales"
SCOTLAND = "Scotland"
NORTHERN_IRELAND = "Northern Ireland"
CHANNEL_ISLANDS = "Channel Islands"
ISLE_OF_MAN = "Isle of Man"


def _areas(region: str, codes: str) -> dict[str, str]:
    return dict.fromkeys(codes.split(), region)


# Every geographic UK postcode area (121 of them, with the Crown dependencies'), by region.
AREA_REGIONS: dict[str, str] = {
    **_areas(NORTH_EAST, "DH DL NE SR TS"),
    **_areas(NORTH_WEST, "BB BL CA CH CW FY L LA M OL PR SK WA WN"),
    **_areas(YORKSHIRE, "BD DN HD HG HU HX LS S WF YO"),
    **_areas(EAST_MIDLANDS, "DE LE LN NG NN"),
    **_areas(WEST_MIDLANDS, "B CV DY HR ST SY TF WR WS WV"),
    **_areas(EAST, "AL CB CM CO IP LU NR PE SG SS WD"),
    **_areas(LONDON, "BR CR E EC EN HA IG N NW RM SE SM SW TW UB W WC"),
    **_areas(SOUTH_EAST, "BN CT DA GU HP KT ME MK OX PO RG RH SL SO TN"),
    **_areas(SOUTH_WEST, "BA BH BS DT EX GL PL SN SP TA TQ TR"),
    **_areas(WALES, "CF LD LL NP SA"),
    **_areas(SCOTLAND, "AB DD DG EH FK G HS IV KA KW KY ML PA PH TD ZE"),
    **_areas(NORTHERN_IRELAND, "BT"),
    **_areas(CHANNEL_ISLANDS, "GY JE"),
    **_areas(ISLE_OF_MAN, "IM"),
}
REGIONS: tuple[str, ...] = tuple(sorted(set(AREA_REGIONS.values())))

# An outward code starts with its area's one or two letters, then a digit. ASCII only: a
# Unicode "digit" or letter is not a postcode's.
_AREA = re.compile(r"([A-Z]{1,2})[0-9]", re.ASCII)


def postcode_area(postcode: str | None) -> str | None:
    """The area letters of a postcode ("M" of "m1 4ab"), or None when it has none."""
    if not postcode:
        return None
    # only the first few characters matter; a huge value is not scanned whole
    head = "".join(postcode[:16].upper().split())
    found = _AREA.match(head)
    return found.group(1) if found else None


def region_of(postcode: str | None) -> str:
    """The region of a postcode's area, or "unknown"."""
    area = postcode_area(postcode)
    return AREA_REGIONS.get(area, UNKNOWN_SEGMENT) if area else UNKNOWN_SEGMENT


# Reporting only (REPORTING_ONLY): (lowest age, label), ascending.
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "under 35"),
    (35, "35-49"),
    (50, "50-64"),
    (65, "65-74"),
    (75, "75 and over"),
)
MAX_AGE = 130  # older is a wrong birth date


def age_on(born: date | None, day: date) -> int | None:
    """Whole years of age on `day` (None without a birth date or with one after `day`)."""
    if born is None or born > day:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def age_band(age: int | None) -> str:
    """The reporting band of an age, "unknown" without one (or an impossible one)."""
    if age is None or age < 0 or age > MAX_AGE:
        return UNKNOWN_SEGMENT
    label = AGE_BANDS[0][1]
    for lowest, band in AGE_BANDS:
        if age >= lowest:
            label = band
    return label


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def hour_segment(hour: int) -> str:
    """An hour of the day, 0-23, as its segment: "00".."23"."""
    if not 0 <= hour <= 23:
        raise ValueError(f"no hour {hour}")
    return f"{hour:02d}"


def weekday_segment(iso_weekday: int) -> str:
    """An ISO weekday (1 Monday .. 7 Sunday) as its segment: "Mon".."Sun"."""
    if not 1 <= iso_weekday <= 7:
        raise ValueError(f"no ISO weekday {iso_weekday}")
    return WEEKDAYS[iso_weekday - 1]


def _local(moment: datetime, zone: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed (a naive one has no zone)")
    return moment.astimezone(ZoneInfo(zone))


def hour_of_day(moment: datetime, zone: str) -> str:
    return hour_segment(_local(moment, zone).hour)


def day_of_week(moment: datetime, zone: str) -> str:
    return weekday_segment(_local(moment, zone).isoweekday())


def segment_key(text: str | None) -> str:
    """A value from the databases as a segment key: without control characters (a NUL is
    refused by PostgreSQL), trimmed, at most SEGMENT_LENGTH characters; "unknown" when
    nothing is left."""
    if text is None:
        return UNKNOWN_SEGMENT
    cleaned = "".join(c for c in text if c.isprintable()).strip()[:SEGMENT_LENGTH].strip()
    return cleaned or UNKNOWN_SEGMENT


# --- counts per segment --------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptSource:
    """What the job counted: each channel's attempts of the window (`AttemptCounts`) and
    the replica's attributes of the claimants attempted; ages are taken on `on`, hours and
    weekdays in `zone`."""

    window_start: datetime
    window_end: datetime
    calls: AttemptCounts
    texts: AttemptCounts
    claimants: Mapping[int, ClaimantAttributes]
    on: date
    zone: str = "Europe/London"


def _count(dimension: Dimension, segment: str, tally: Tally) -> SegmentCount:
    return SegmentCount(dimension.value, segment, tally.attempts, tally.reached, tally.conversions)


def _by_segment(dimension: Dimension, pairs: Iterable[tuple[str, Tally]]) -> list[SegmentCount]:
    """Tallies added up by segment key (two raw values can make one key)."""
    summed: dict[str, Tally] = defaultdict(Tally)
    for segment, tally in pairs:
        summed[segment] = summed[segment] + tally
    return [
        _count(dimension, segment, tally)
        for segment, tally in sorted(summed.items())
        if tally.attempts > 0
    ]


class _Sum:
    """A tally being added up in place (a frozen Tally per addition costs more than the
    rest of the fold over hundreds of thousands of claimants)."""

    __slots__ = ("attempts", "conversions", "reached")

    def __init__(self) -> None:
        self.attempts = self.reached = self.conversions = 0

    def add(self, tally: Tally | _Sum) -> None:
        self.attempts += tally.attempts
        self.reached += tally.reached
        self.conversions += tally.conversions

    def tally(self) -> Tally:
        return Tally(self.attempts, self.reached, self.conversions)


def _sums(sums: Mapping[Any, _Sum]) -> list[tuple[Any, Tally]]:
    return [(key, s.tally()) for key, s in sums.items()]


def segment_counts(source: AttemptSource) -> GatheredCounts:
    """The counts per dimension and segment (`schemas.learned_rates` says what each
    counts), with the overall count. One pass over the claimants (tens or hundreds of
    thousands): each lender name and postcode area is turned into its key once."""
    calls, texts = source.calls, source.texts
    by_user: dict[int, _Sum] = defaultdict(_Sum)
    for channel in (calls, texts):
        for user_id, tally in channel.by_user.items():
            by_user[user_id].add(tally)
    keys: dict[str, str] = {}  # a lender's name as the replica spells it -> its key
    unknown = ClaimantAttributes(None, None, ())
    regions: dict[str | None, _Sum] = defaultdict(_Sum)  # by postcode area
    lenders: dict[str, _Sum] = defaultdict(_Sum)
    bands: dict[str, _Sum] = defaultdict(_Sum)
    for user_id, total in by_user.items():
        attributes = source.claimants.get(user_id) or unknown
        regions[postcode_area(attributes.postcode)].add(total)
        # a claimant counts once towards each of their lenders (names that clean to one key
        # are one lender)
        names = {keys.get(n) or keys.setdefault(n, segment_key(n)) for n in attributes.lenders}
        for name in names or (UNKNOWN_SEGMENT,):
            lenders[name].add(total)
        bands[age_band(age_on(attributes.born, source.on))].add(total)

    def queue(name: str | None) -> str:
        return NO_QUEUE_SEGMENT if name is None else segment_key(name)

    def region(area: str | None) -> str:
        return AREA_REGIONS.get(area, UNKNOWN_SEGMENT) if area else UNKNOWN_SEGMENT

    counts = [
        *_by_segment(
            Dimension.CHANNEL,
            [(Channel.CALL.value, calls.total), (Channel.SMS.value, texts.total)],
        ),
        *_by_segment(
            Dimension.QUEUE,
            [(queue(q), t) for c in (calls, texts) for q, t in c.by_queue.items()],
        ),
        *_by_segment(Dimension.REGION, [(region(a), t) for a, t in _sums(regions)]),
        *_by_segment(Dimension.LENDER, _sums(lenders)),
        *_by_segment(Dimension.AGE_BAND, _sums(bands)),
        # a quarter-hour slot lies within one local hour whatever the zone's offset
        *_by_segment(
            Dimension.HOUR, [(hour_of_day(s, source.zone), t) for s, t in calls.by_slot.items()]
        ),
        *_by_segment(
            Dimension.WEEKDAY,
            [(day_of_week(s, source.zone), t) for s, t in calls.by_slot.items()],
        ),
    ]
    return GatheredCounts(
        window_start=source.window_start,
        window_end=source.window_end,
        overall=_count(Dimension.OVERALL, OVERALL_SEGMENT, calls.total + texts.total),
        counts=counts,
        claimants=len(by_user),
    )


# --- rates, intervals, shrinkage -------------------------------------------------------------

DEFAULT_PRIOR_STRENGTH = 100.0  # attempts; for dimensions too small to estimate k from
K_MIN = 1.0
K_MAX = 1_000_000.0  # "no difference beyond chance": everyone gets the overall rate
MIN_SEGMENTS = 3


def jeffreys_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Jeffreys interval of a binomial proportion ([0, 1] with no trials)."""
    if trials <= 0:
        return 0.0, 1.0
    # imported here: the segment keys above are read by the scorer, which runs inside
    # workflows' sandboxes, where importing scipy for every workflow run would be costly
    from scipy import stats

    tail = (1.0 - confidence) / 2.0
    a, b = successes + 0.5, trials - successes + 0.5
    low = 0.0 if successes <= 0 else float(stats.beta.ppf(tail, a, b))
    high = 1.0 if successes >= trials else float(stats.beta.ppf(1.0 - tail, a, b))
    return low, high


def prior_strength(counts: Sequence[tuple[int, int]]) -> float | None:
    """k by the method of moments (module docstring) from (successes, trials) per segment;
    None when there are too few segments (or attempts) to tell."""
    segments = [(x, n) for x, n in counts if n > 0]
    total = sum(n for _, n in segments)
    if len(segments) < MIN_SEGMENTS or total <= 0:
        return None
    mean = sum(x for x, _ in segments) / total
    spread = mean * (1.0 - mean)
    if spread <= 0.0:  # every attempt failed (or succeeded): nothing to tell apart
        return K_MAX
    scatter = sum(n * (x / n - mean) ** 2 for x, n in segments)
    effective = total - sum(n * n for _, n in segments) / total
    if effective <= 0.0:
        return None
    between = (scatter - (len(segments) - 1) * spread) / effective
    if between <= 0.0:
        return K_MAX
    return min(K_MAX, max(K_MIN, spread / between - 1.0))


def shrunk(successes: int, trials: int, towards: float, k: float) -> float:
    """(x + k·p) / (n + k): p when there is nothing to go on."""
    if trials + k <= 0:
        return towards
    return (successes + k * towards) / (trials + k)


def _check(count: SegmentCount) -> None:
    if count.attempts < 0 or count.reached < 0 or count.conversions < 0:
        raise ValueError(f"{count.dimension} {count.segment!r}: a negative count")
    if count.reached > count.attempts or count.conversions > count.attempts:
        raise ValueError(f"{count.dimension} {count.segment!r}: more successes than attempts")


def _rate(
    count: SegmentCount,
    contact_towards: float,
    conversion_towards: float,
    k: tuple[float, float],
    confidence: float,
) -> LearnedRate:
    n = count.attempts
    contact_low, contact_high = jeffreys_interval(count.reached, n, confidence)
    conversion_low, conversion_high = jeffreys_interval(count.conversions, n, confidence)
    return LearnedRate(
        dimension=count.dimension,
        segment=count.segment,
        attempts=n,
        reached=count.reached,
        conversions=count.conversions,
        contact_rate=count.reached / n if n else 0.0,
        contact_low=contact_low,
        contact_high=contact_high,
        conversion_rate=count.conversions / n if n else 0.0,
        conversion_low=conversion_low,
        conversion_high=conversion_high,
        shrunk_contact_rate=shrunk(count.reached, n, contact_towards, k[0]),
        shrunk_conversion_rate=shrunk(count.conversions, n, conversion_towards, k[1]),
    )


def learn_rates(given: RateInput) -> LearnedRates:
    """Every segment's rates with their intervals and shrunk rates (module docstring)."""
    if not 0.0 < given.confidence < 1.0:
        raise ValueError("the confidence must be between 0 and 1")
    if given.prior_strength is not None and not (
        math.isfinite(given.prior_strength) and given.prior_strength >= 0
    ):
        raise ValueError("the prior strength must be a finite number of attempts, 0 or more")
    for count in (given.overall, *given.counts):
        _check(count)
    overall = _rate(given.overall, 0.0, 0.0, (0.0, 0.0), given.confidence)
    by_dimension: dict[str, list[SegmentCount]] = defaultdict(list)
    for count in given.counts:
        by_dimension[count.dimension].append(count)
    rates = [overall]
    priors = []
    for dimension, counts in by_dimension.items():
        attempts = sum(c.attempts for c in counts)
        # towards the overall rate of the attempts this dimension counts
        contact_p = sum(c.reached for c in counts) / attempts if attempts else 0.0
        conversion_p = sum(c.conversions for c in counts) / attempts if attempts else 0.0
        if given.prior_strength is not None:
            k = (given.prior_strength, given.prior_strength)
            chosen_by = "fixed"
        else:
            contact_k = prior_strength([(c.reached, c.attempts) for c in counts])
            conversion_k = prior_strength([(c.conversions, c.attempts) for c in counts])
            chosen_by = "moments" if contact_k is not None else "default"
            k = (
                DEFAULT_PRIOR_STRENGTH if contact_k is None else contact_k,
                DEFAULT_PRIOR_STRENGTH if conversion_k is None else conversion_k,
            )
        priors.append(PriorStrength(dimension, k[0], k[1], chosen_by))
        rates += [_rate(c, contact_p, conversion_p, k, given.confidence) for c in counts]
    return LearnedRates(overall=overall, rates=rates, priors=priors)
