"""The replay of past contacts under two rule sets (`dialler scoring evaluate`): which ordering
puts the claimants who converted first? Pure: the contacts, the claimants' facts and scores
and the random seed are passed in; the statistics are scipy's.

What is measured (the same words as the command's output):

- A *contact* is one claimant called in one queue on one UK day (several calls that day are
  one contact); it *converted* when a conversion (signature or document) is credited to one
  of its calls by the attribution rules (`domain.attribution`).
- Per queue, the contacts of the whole range form the pool, and `k` is the queue's contacts
  per day (the pool divided by the days the queue had contacts, rounded; at least 1): what
  the floor got through in a day. Each ordering (the rules in force, the new rules) sorts
  the pool by score, and its *top-k conversion rate* is the share of converters among its
  first k. Ties at the k-th place share the remaining places: a tied group counts at its
  mean conversion, so an ordering gains nothing from the order of equal scores.
- The *lift* is new minus current, in percentage points. Overall, each queue contributes
  its own top k (the queues are worked separately), so the overall rate is the converters in
  the queues' top k over the sum of the k.
- Its 95 % *interval* is a percentile bootstrap (`scipy.stats.bootstrap`): the contacts are
  resampled with replacement within each queue (each queue keeps its size and its k), the
  lift is recomputed for each of `resamples` resamples, and the interval is the middle 95 %
  of those lifts. The seed is fixed, so a run is repeatable.
- The verdict: "NEW ranks converters higher" when the whole interval is above 0, "lower"
  when it is below 0, "no evidence of a difference" when it contains 0 (or nothing can be
  compared: no converter, every contact converted, or k covers the whole pool, as in a
  one-day range, where both orderings call everyone).

`as_at_contact` rewinds a claimant's facts (read today) to the contact: conversions after it
are undone (a signature: unsigned again; a document: the requirement pending again), nothing
that stops outreach held (the claimant was called), and the queue they were called from is
the one they qualify for. A contact that cannot be rewound so (the claimant left the
replica, an unsigned call with no open claim left, an outstanding call with no pending
requirement) is not replayed, and counted.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import bootstrap

from schemas.attribution import ConversionKind
from schemas.enums import ClaimStatus, Queue, RequirementStatus, UserStatus
from schemas.outreach import ClaimantFacts

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 20261203
CELLS_PER_BATCH = 2_000_000  # resampled scores held at once (16 MB per array)
QUEUE_ORDER = (Queue.CALLBACK, Queue.UNSIGNED, Queue.OUTSTANDING)
DELETED = "deleted"  # ClaimantFacts.status of a claimant no longer on the replica


# --- rewinding the facts ------------------------------------------------------------------------


@dataclass(frozen=True)
class LaterConversion:
    """A conversion of the claimant, as `as_at_contact` needs it."""

    kind: ConversionKind
    occurred_at: datetime
    requirement_id: int | None = None


def as_at_contact(
    facts: ClaimantFacts, queue: Queue, at: datetime, conversions: Sequence[LaterConversion]
) -> ClaimantFacts | None:
    """The claimant's facts as they stood when they were called from `queue` at `at`, as far
    as the dialler knows (the module docstring); None when the contact cannot be replayed."""
    if facts.status == DELETED:
        return None
    rewound = copy.deepcopy(facts)
    # They were called, so nothing that stops outreach held then (an opt-out, bereavement, a
    # wrong number or a pause recorded on this very call comes after it).
    rewound.opted_out = False
    rewound.deceased = False
    rewound.paused = None
    rewound.wrong_phone_key = None
    rewound.is_enabled = True
    if rewound.status == UserStatus.INACTIVE:
        rewound.status = UserStatus.ACTIVE.value
    undone = {c.requirement_id for c in conversions if c.occurred_at > at and c.requirement_id}
    for claim in rewound.claims:
        for requirement in claim.requirements:
            if requirement.requirement_id in undone:
                requirement.status = RequirementStatus.PENDING.value
    if queue is Queue.CALLBACK:
        # due when they were called (a callback booked since replaces the one they had)
        if rewound.callback_at is None or rewound.callback_at > at:
            rewound.callback_at = at
        return rewound
    # called from another queue: no callback was due then
    rewound.callback_at = None
    rewound.callback_owner_agent_id = None
    if queue is Queue.UNSIGNED:
        rewound.signed = False
        if not any(claim.status != ClaimStatus.COMPLETE for claim in rewound.claims):
            return None
        return rewound
    rewound.signed = True
    pending = any(
        r.status == RequirementStatus.PENDING for c in rewound.claims for r in c.requirements
    )
    return rewound if pending else None


# --- the comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayedContact:
    user_id: int
    queue: Queue
    day: date
    current: float  # the score under the rules in force
    new: float  # the score under the new rules
    converted: bool


@dataclass(frozen=True)
class Lift:
    """One pool's comparison (a queue, or every queue: "overall")."""

    name: str
    contacts: int
    converters: int
    days: int
    k: int
    current_rate: float | None  # top-k conversion rate, ordered by the rules in force
    new_rate: float | None  # ... by the new rules
    lift: float | None  # new - current (a fraction: x100 for percentage points)
    low: float | None  # the interval
    high: float | None
    note: str = ""  # why nothing can be compared, when it cannot

    @property
    def verdict(self) -> str:
        return verdict(self)


@dataclass(frozen=True)
class Evaluation:
    queues: list[Lift]
    overall: Lift
    skipped: int  # contacts that could not be replayed
    resamples: int
    confidence: float
    seed: int


def _pp(value: float) -> str:
    return f"{value * 100:+.1f}"


def verdict(lift: Lift) -> str:
    """One line: which rules rank converters higher, with the lift and its interval."""
    if lift.lift is None or lift.low is None or lift.high is None:
        return f"no evidence of a difference: {lift.note or 'nothing to compare'}"
    figures = f"lift {_pp(lift.lift)} pp [{_pp(lift.low)}, {_pp(lift.high)}]"
    if lift.low > 0:
        return f"NEW ranks converters higher: {figures}"
    if lift.high < 0:
        return f"NEW ranks converters lower: {figures}"
    return f"no evidence of a difference: {figures}"


Array = NDArray[Any]


def top_k_rate(scores: Array, converted: Array, k: int) -> Array:
    """The converters' share among the k best scores, along the last axis (any leading axes
    are resamples); a group tied at the k-th score fills the remaining places at its mean."""
    ordered = -np.sort(-scores, axis=-1)
    threshold = ordered[..., k - 1 : k]
    above = scores > threshold
    tied = scores == threshold
    hits_above = np.sum(converted * above, axis=-1)
    hits_tied = np.sum(converted * tied, axis=-1)
    places = k - np.sum(above, axis=-1)
    result: Array = (hits_above + hits_tied * places / np.sum(tied, axis=-1)) / k
    return result


@dataclass(frozen=True)
class _Pool:
    queue: Queue
    current: Array
    new: Array
    converted: Array
    days: int
    k: int


def _pool(queue: Queue, contacts: Sequence[ReplayedContact]) -> _Pool:
    days = len({c.day for c in contacts})
    k = min(len(contacts), max(1, round(len(contacts) / days)))
    return _Pool(
        queue,
        np.array([c.current for c in contacts], dtype=float),
        np.array([c.new for c in contacts], dtype=float),
        np.array([c.converted for c in contacts], dtype=float),
        days,
        k,
    )


def _lift_of(pools: Sequence[_Pool]) -> Callable[..., Array]:
    """The bootstrap's statistic: each sample is one pool's resampled contact indices."""

    def statistic(*samples: Array, axis: int = -1) -> Array:
        current_hits: Array | float = 0.0
        new_hits: Array | float = 0.0
        for pool, picked in zip(pools, samples, strict=True):
            picked = np.moveaxis(picked, axis, -1)
            converted = pool.converted[picked]
            current_hits = current_hits + pool.k * top_k_rate(
                pool.current[picked], converted, pool.k
            )
            new_hits = new_hits + pool.k * top_k_rate(pool.new[picked], converted, pool.k)
        total_k = sum(pool.k for pool in pools)
        return np.asarray((np.asarray(new_hits) - np.asarray(current_hits)) / total_k)

    return statistic


def _compare(
    name: str, pools: Sequence[_Pool], resamples: int, confidence: float, seed: int
) -> Lift:
    contacts = sum(len(p.converted) for p in pools)
    converters = int(sum(p.converted.sum() for p in pools))
    days = max((p.days for p in pools), default=0)
    k = sum(p.k for p in pools)
    if not contacts:
        return Lift(name, 0, 0, 0, 0, None, None, None, None, None, "no contacts replayed")
    current_hits = sum(p.k * float(top_k_rate(p.current, p.converted, p.k)) for p in pools)
    new_hits = sum(p.k * float(top_k_rate(p.new, p.converted, p.k)) for p in pools)
    current_rate, new_rate = current_hits / k, new_hits / k
    note = ""
    if converters == 0:
        note = "no contact converted"
    elif converters == contacts:
        note = "every contact converted"
    elif all(p.k >= len(p.converted) for p in pools):
        note = f"k covers every contact ({days} day{'s' if days != 1 else ''}): use a longer range"
    if note:
        return Lift(name, contacts, converters, days, k, current_rate, new_rate, None, None,
                    None, note)  # fmt: skip
    result = bootstrap(
        tuple(np.arange(len(p.converted)) for p in pools),
        _lift_of(pools),
        n_resamples=resamples,
        batch=max(1, CELLS_PER_BATCH // contacts),  # memory: resamples x contacts at once
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Lift(
        name,
        contacts,
        converters,
        days,
        k,
        current_rate,
        new_rate,
        new_rate - current_rate,
        float(interval.low),
        float(interval.high),
    )


def evaluate(
    contacts: Sequence[ReplayedContact],
    *,
    skipped: int = 0,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Evaluation:
    """Per queue and overall: the top-k conversion rate under each ordering, the lift and
    its bootstrap interval (the module docstring says how)."""
    if resamples < 100:
        raise ValueError("at least 100 resamples")
    if not 0.5 <= confidence < 1.0:
        raise ValueError("the confidence level is between 0.5 and 1")
    by_queue: dict[Queue, list[ReplayedContact]] = {}
    for contact in sorted(contacts, key=lambda c: (c.day, c.user_id)):
        by_queue.setdefault(contact.queue, []).append(contact)
    pools = {queue: _pool(queue, found) for queue, found in by_queue.items()}
    lifts = [
        _compare(queue.value, [pools[queue]], resamples, confidence, seed)
        if queue in pools
        else _compare(queue.value, [], resamples, confidence, seed)
        for queue in QUEUE_ORDER
    ]
    ordered = [pools[q] for q in QUEUE_ORDER if q in pools]
    overall = _compare("overall", ordered, resamples, confidence, seed)
    return Evaluation(lifts, overall, skipped, resamples, confidence, seed)
