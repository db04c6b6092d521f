"""The arms of a live split compared (issue 14; the funnel shows it): each arm's rates and the
difference candidate - control with its 95 % confidence interval (`confint_proportions_2indep`,
Newcombe's method) and the two-sided p-value of the z-test of equal proportions
(`proportions_ztest`), both from statsmodels: the statistics are a maintained library's, not
ours. Pure: the counts are passed in.

The unit is the claimant, because the arm is drawn per claimant (`domain.scoring_split`): two
calls to one claimant are not independent trials. A claimant counts as reached when one of
their calls in the split reached them, as converted when a conversion is credited to one of
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from domain.scoring_split import Arm

CONFIDENCE = 0.95


@dataclass(frozen=True)
class ArmCounts:
    """One arm's figures over a split's calls: claimants contacted (called at least once),
    reached (at least one call reached them), converted (at least one conversion credited
    to one of the arm's calls); and the raw counts of calls, reached calls and conversions."""

    arm: Arm
    claimants: int
    reached_claimants: int
    converted_claimants: int
    calls: int
    reached_calls: int
    conversions: int


@dataclass(frozen=True)
class ArmDifference:
    """A rate in each arm (successes / claimants contacted), the difference candidate -
    control with its confidence interval, and the p-value of "the rates are equal". None
    where an arm has no claimants, or the test has nothing to say (no success and no failure
    anywhere)."""

    measure: str  # "reached" or "converted"
    control_rate: float | None
    candidate_rate: float | None
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    confidence: float = CONFIDENCE

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def _rate(successes: int, total: int) -> float | None:
    return successes / total if total else None


def difference(
    measure: str,
    control: tuple[int, int],
    candidate: tuple[int, int],
    confidence: float = CONFIDENCE,
) -> ArmDifference:
    """(successes, trials) per arm -> the difference candidate - control, its interval and
    p-value, by statsmodels."""
    (c_hits, c_n), (k_hits, k_n) = control, candidate
    for hits, n in (control, candidate):
        if n < 0 or not 0 <= hits <= n:
            raise ValueError("successes must be between 0 and the number of trials")
    control_rate, candidate_rate = _rate(c_hits, c_n), _rate(k_hits, k_n)
    if control_rate is None or candidate_rate is None:
        return ArmDifference(measure, control_rate, candidate_rate, None, None, None, None)
    low, high = confint_proportions_2indep(
        k_hits, k_n, c_hits, c_n, compare="diff", alpha=1 - confidence
    )
    p_value: float | None = None
    pooled = (c_hits + k_hits) / (c_n + k_n)
    if 0.0 < pooled < 1.0:  # all successes or none: the z statistic is 0/0
        _, p = proportions_ztest([k_hits, c_hits], [k_n, c_n])
        p_value = float(p)
    return ArmDifference(
        measure,
        control_rate,
        candidate_rate,
        candidate_rate - control_rate,
        float(low),
        float(high),
        p_value,
        confidence,
    )


@dataclass(frozen=True)
class ArmComparison:
    control: ArmCounts
    candidate: ArmCounts
    reached: ArmDifference
    converted: ArmDifference


def compare_arms(control: ArmCounts, candidate: ArmCounts) -> ArmComparison:
    """The arms side by side: reach and conversion per claimant contacted."""
    return ArmComparison(
        control,
        candidate,
        difference(
            "reached",
            (control.reached_claimants, control.claimants),
            (candidate.reached_claimants, candidate.claimants),
        ),
        difference(
            "converted",
            (control.converted_claimants, control.claimants),
            (candidate.converted_claimants, candidate.claimants),
        ),
    )
