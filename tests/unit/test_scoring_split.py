"""The live split's pure parts: a claimant's arm is drawn by a hash of (user id, split id), so
it is stable for a claimant and the share of candidates matches the split's share on many
claimants; a new split draws afresh. The arms' comparison gives statsmodels' difference,
interval and p-value, checked against figures worked out by hand."""

from __future__ import annotations

import math

import pytest

from domain.rules import DiallerRules
from domain.scoring_split import Arm, arm_of, check_share, scored_by, split_draw
from domain.split_comparison import ArmCounts, compare_arms, difference

CLAIMANTS = range(1, 100_001)


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5])
def test_the_candidate_share_is_respected_on_many_claimants(share: float) -> None:
    candidates = sum(arm_of(user_id, 7, share) is Arm.CANDIDATE for user_id in CLAIMANTS)
    # binomial: the standard deviation of the share is under 0.0016 here; 0.01 is 6 of them
    assert abs(candidates / len(CLAIMANTS) - share) < 0.01


def test_a_claimants_arm_is_stable_and_each_split_draws_afresh() -> None:
    first = [arm_of(user_id, 3, 0.3) for user_id in range(1, 5001)]
    again = [arm_of(user_id, 3, 0.3) for user_id in range(1, 5001)]
    assert first == again
    # a fixed value: the draw is SHA-256, not a per-process salted hash()
    assert split_draw(12345, 3) == split_draw(12345, 3)
    assert 0.0 <= split_draw(12345, 3) < 1.0
    other = [arm_of(user_id, 4, 0.3) for user_id in range(1, 5001)]
    both = sum(a is Arm.CANDIDATE and b is Arm.CANDIDATE for a, b in zip(first, other, strict=True))
    # independent draws: about 0.3 x 0.3 of claimants are candidates in both splits
    assert abs(both / 5000 - 0.09) < 0.02
    assert first != other


def test_a_larger_share_keeps_the_smaller_shares_candidates() -> None:
    """The draw is compared with the share: raising it only adds candidates."""
    small = {u for u in range(1, 5001) if arm_of(u, 9, 0.1) is Arm.CANDIDATE}
    large = {u for u in range(1, 5001) if arm_of(u, 9, 0.4) is Arm.CANDIDATE}
    assert small < large


@pytest.mark.parametrize("share", [0.0, 0.005, 0.51, 1.0, float("nan"), float("inf")])
def test_a_share_out_of_bounds_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="between 1% and 50%"):
        check_share(share)
    assert check_share(0.5) == 0.5
    assert check_share(0.01) == 0.01


def test_the_difference_is_statsmodels_z_test_and_interval() -> None:
    found = difference("converted", control=(20, 100), candidate=(30, 100))
    assert found.control_rate == 0.2
    assert found.candidate_rate == 0.3
    assert found.difference == pytest.approx(0.1)
    # by hand: pooled 0.25, standard error sqrt(0.25 * 0.75 * (1/100 + 1/100)), z = 1.633
    z = 0.1 / math.sqrt(0.25 * 0.75 * 0.02)
    assert found.p_value == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert found.low is not None and found.high is not None
    assert found.low < 0 < 0.1 < found.high < 0.25  # Newcombe's interval: wide at n = 100
    assert not found.significant
    larger = difference("converted", control=(200, 1000), candidate=(300, 1000))
    assert larger.low is not None and larger.low > 0
    assert larger.p_value is not None and larger.p_value < 1e-6
    assert larger.significant


def test_nothing_is_claimed_without_data() -> None:
    empty = difference("reached", control=(0, 0), candidate=(3, 10))
    assert empty.difference is None and empty.low is None and empty.p_value is None
    none_converted = difference("converted", control=(0, 50), candidate=(0, 50))
    assert none_converted.difference == 0.0
    assert none_converted.p_value is None  # 0/0: no test
    assert not none_converted.significant
    with pytest.raises(ValueError):
        difference("converted", control=(5, 3), candidate=(1, 2))


def test_the_arms_are_compared_per_claimant_contacted() -> None:
    control = ArmCounts(Arm.CONTROL, 400, 200, 40, calls=900, reached_calls=250, conversions=45)
    candidate = ArmCounts(Arm.CANDIDATE, 100, 60, 20, calls=210, reached_calls=70, conversions=22)
    found = compare_arms(control, candidate)
    assert found.reached.control_rate == 0.5
    assert found.reached.candidate_rate == 0.6
    assert found.converted.difference == pytest.approx(0.2 - 0.1)


def test_the_candidate_arm_takes_only_the_candidates_score() -> None:
    in_force = DiallerRules()
    candidate = DiallerRules.model_validate(
        {"scoring": {"default_lender_boost": 40}, "contact": {"claimant_caps": {"daily": 1}}}
    )
    merged = scored_by(in_force, candidate)
    assert merged.scoring.default_lender_boost == 40
    assert merged.contact == in_force.contact  # who may be called, and when, is unchanged
    assert merged.calling_windows == in_force.calling_windows
    assert scored_by(in_force, DiallerRules()) is in_force
