"""A live split of the score (issue 14): while a split runs, a share of claimants is scored by
a candidate rules version ("candidate" arm), the rest by the rules in force ("control").
Pure: the split, the claimants and the counts are passed in.

- `scored_by`: the candidate arm takes only the candidate version's [scoring] section.
- `arm_of`: a claimant's arm is a deterministic hash of (user id, split id) compared with the
  share: the same claimant stays in the same arm for the whole split, on every worker and
  after every restart (no state to keep, nothing to look up), and a new split draws afresh.
  SHA-256 rather than Python's `hash()`, which is salted per process.

The arms' statistics are `domain.split_comparison` (statsmodels: kept out of this module,
which the outreach worker imports).
"""

from __future__ import annotations

import hashlib
import math
from enum import StrEnum

from domain.rules import DiallerRules

# How often a worker looks for a split started or ended (adapters.scoring_splits.SplitSource);
# the re-scoring after a start or an end waits a little longer, so every worker sees it.
SPLIT_CHECK_SECONDS = 5.0
SPLIT_SETTLE_SECONDS = SPLIT_CHECK_SECONDS + 2.0
SPLIT_CHANGES = ("started", "ended")
MIN_SHARE = 0.01
MAX_SHARE = 0.5  # a candidate is tried on at most half of the claimants
_HASH_SPAN = float(2**64)


class Arm(StrEnum):
    CONTROL = "control"  # scored by the rules in force
    CANDIDATE = "candidate"  # scored by the split's candidate rules version


def split_draw(user_id: int, split_id: int) -> float:
    """The claimant's uniform draw in [0, 1) for this split: the first 8 bytes of
    SHA-256("<split id>:<user id>")."""
    digest = hashlib.sha256(f"{split_id}:{user_id}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_SPAN


def arm_of(user_id: int, split_id: int, share: float) -> Arm:
    """The claimant's arm: candidate when their draw is below the share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("a share is between 0 and 1")
    return Arm.CANDIDATE if split_draw(user_id, split_id) < share else Arm.CONTROL


def scored_by(in_force: DiallerRules, candidate: DiallerRules) -> DiallerRules:
    """The rules a candidate-arm claimant is assessed with: the candidate version's score (its
    [scoring] section) and every other rule in force (calling windows, caps, consent,
    compliance, the AI's routing): a split changes the order of the queue, never who may be
    called, when or by whom."""
    if candidate.scoring == in_force.scoring:
        return in_force
    return in_force.model_copy(update={"scoring": candidate.scoring})


def check_share(share: float) -> float:
    """The share a split may be started with; raises ValueError saying why not."""
    if not math.isfinite(share) or not MIN_SHARE <= share <= MAX_SHARE:
        raise ValueError(
            f"the candidate's share is between {MIN_SHARE:.0%} and {MAX_SHARE:.0%} of claimants"
        )
    return share
