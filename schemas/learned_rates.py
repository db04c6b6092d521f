"""Learned rates (issue 14, "factors from data"): how often a contact attempt reached the
claimant and how often it converted, per segment of the claimants and of the attempts, with
95 % intervals and the rate shrunk towards the overall one.

The nightly `LearnRatesWorkflow` (`workflows/learning.py`) computes them from the attempts of
a window (default 180 days) and their attributed conversions, and saves them as a version
(`rate_versions`, `learned_rates`; owner `adapters/learned_rates.py`). The scorer reads the
newest version as a `RateTable`.

Dimensions and their segments (the keys come from `domain.learned_rates`):

- `overall` (segment `all`): every attempt;
- `channel`: `call` (an outbound call, a person's or the AI's) or `sms` (an AI SMS
  conversation);
- `queue`: the queue the attempt was made for (`none` when unknown);
- `region`: the region of the claimant's postcode area (`domain.learned_rates.region_of`);
- `lender`: each lender the claimant has a claim with (a claimant with claims at two lenders
  counts towards both);
- `hour` (`00`-`23`) and `weekday` (`Mon`-`Sun`): when a CALL started, UK time (a text is
  read whenever the claimant looks, so only calls say when to ring);
- `age_band`: for reporting only (`REPORTING_ONLY`): age is a protected characteristic and
  is never a factor of the score.

An attempt "reached" the claimant: a call answered by a person and bridged to an agent (or
recorded by hand with an outcome that says someone spoke: `adapters.call_log`), an SMS
conversation the claimant replied to. It "converted" when at least one conversion (a
signature, documents) was credited to it (`domain.attribution`); so a rate is at most 1.

Every activity and workflow message is one of the dataclasses below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum


class Dimension(StrEnum):
    OVERALL = "overall"
    CHANNEL = "channel"
    QUEUE = "queue"
    REGION = "region"
    LENDER = "lender"
    HOUR = "hour"
    WEEKDAY = "weekday"
    AGE_BAND = "age_band"


# Shown in reports (`dialler scoring rates`), never read by the score: protected
# characteristics are never a factor (docs/compliance.md).
REPORTING_ONLY: frozenset[str] = frozenset({Dimension.AGE_BAND.value})

OVERALL_SEGMENT = "all"
UNKNOWN_SEGMENT = "unknown"  # no postcode, an unknown area, no birth date, no claim
NO_QUEUE_SEGMENT = "none"
SEGMENT_LENGTH = 64  # learned_rates.segment's width


class Channel(StrEnum):
    CALL = "call"
    SMS = "sms"


@dataclass(frozen=True, slots=True)
class Tally:
    """Attempts, how many reached the claimant, how many converted."""

    attempts: int = 0
    reached: int = 0
    conversions: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.attempts + other.attempts,
            self.reached + other.reached,
            self.conversions + other.conversions,
        )


# Attempts are counted by the quarter hour (UTC) they started in: every zone's offset is a
# whole number of quarter hours, so a slot lies within one local hour, which the domain works
# out (`domain.learned_rates.hour_of_day`): the database does no time-zone arithmetic per row.
SLOT_MINUTES = 15


@dataclass(frozen=True)
class AttemptCounts:
    """One channel's attempts in a window, counted by the database (one scan, grouping
    sets) several ways: by queue, by the slot (the UTC quarter hour) they started in, and by
    claimant."""

    total: Tally
    by_queue: dict[str | None, Tally]
    by_slot: dict[datetime, Tally]
    by_user: dict[int, Tally]


@dataclass(frozen=True, slots=True)
class ClaimantAttributes:
    """What the replica says of a claimant that segments the rates."""

    postcode: str | None
    born: date | None
    lenders: tuple[str, ...]  # the lenders of their claims, each once


@dataclass(frozen=True)
class SegmentCount:
    """Attempts of one segment, how many reached the claimant, how many converted."""

    dimension: str
    segment: str
    attempts: int
    reached: int
    conversions: int


@dataclass(frozen=True)
class LearnedRate:
    """One segment's rates (rate = count / attempts), their 95 % intervals (Jeffreys), and
    the rates shrunk towards the overall rate (empirical Bayes: a small segment says
    little, so its shrunk rate stays near the overall one)."""

    dimension: str
    segment: str
    attempts: int
    reached: int
    conversions: int
    contact_rate: float
    contact_low: float
    contact_high: float
    conversion_rate: float
    conversion_low: float
    conversion_high: float
    shrunk_contact_rate: float
    shrunk_conversion_rate: float


@dataclass(frozen=True)
class RateTable:
    """A saved version of the learned rates, as the scorer reads it. `EMPTY` (no version
    saved yet) has no rates: every look-up answers None."""

    version_id: int | None
    computed_at: datetime | None
    overall_contact_rate: float | None
    overall_conversion_rate: float | None
    rates: dict[tuple[str, str], LearnedRate]

    def rate(self, dimension: str, segment: str) -> LearnedRate | None:
        return self.rates.get((dimension, segment))

    def dimension(self, dimension: str) -> list[LearnedRate]:
        """The segments of one dimension, most attempts first."""
        found = [r for (d, _), r in self.rates.items() if d == dimension]
        return sorted(found, key=lambda r: (-r.attempts, r.segment))


EMPTY = RateTable(None, None, None, None, {})


@dataclass(frozen=True)
class RateVersion:
    """A saved version, for listings (`dialler scoring rates --versions`)."""

    id: int
    computed_at: datetime
    window_start: datetime
    window_end: datetime
    attempts: int
    reached: int
    conversions: int
    seconds: float
    segments: int


# --- the domain's input and output (domain.learned_rates.learn_rates) --------------------------


@dataclass(frozen=True)
class RateInput:
    """Counts per segment and the overall count they shrink towards. `prior_strength`: a
    fixed k (in attempts) for every dimension; None chooses k per dimension from the data
    (method of moments, `domain.learned_rates`)."""

    overall: SegmentCount
    counts: list[SegmentCount]
    prior_strength: float | None = None
    confidence: float = 0.95


@dataclass(frozen=True)
class PriorStrength:
    """The k each dimension's rates were shrunk with, and how it was chosen."""

    dimension: str
    contact: float
    conversion: float
    chosen_by: str  # "moments", "default" (too few segments to tell) or "fixed"


@dataclass(frozen=True)
class LearnedRates:
    overall: LearnedRate
    rates: list[LearnedRate]  # every segment, the overall row first
    priors: list[PriorStrength] = field(default_factory=list)


# --- the workflow and its activities (workflows/learning.py, activities/learning.py) ----------


@dataclass
class LearnRatesInput:
    window_days: int = 180
    prior_strength: float | None = None  # None: chosen from the data
    zone: str = "Europe/London"
    # set by tests; the workflow uses its own deterministic clock otherwise
    now: datetime | None = None


@dataclass
class GatherRequest:
    window_start: datetime  # inclusive
    window_end: datetime  # exclusive
    zone: str = "Europe/London"


@dataclass
class GatheredCounts:
    window_start: datetime
    window_end: datetime
    overall: SegmentCount
    counts: list[SegmentCount]
    claimants: int  # claimants with at least one attempt in the window


@dataclass
class SaveRates:
    window_start: datetime
    window_end: datetime
    attempts: int
    reached: int
    conversions: int
    seconds: float  # how long the run took, by the workflow's clock
    rates: list[LearnedRate]


@dataclass
class SavedRates:
    version_id: int
    segments: int
    new: bool  # False: a retried save found the version it had saved


@dataclass
class LearnRatesResult:
    version_id: int
    window_start: datetime
    window_end: datetime
    attempts: int
    reached: int
    conversions: int
    claimants: int
    segments: int
    seconds: float
    priors: list[PriorStrength] = field(default_factory=list)
