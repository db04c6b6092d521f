"""Messages of the rules rollout: after a rules version is saved, every claimant with a task
is told to re-assess under it (`workflows/rules_rollout.py`); the same when a live split of
the score starts or ends (issue 14), so the arms take effect at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RulesRollout:
    """Tell every claimant with a task (any status) that rules version `version` is saved;
    with `split_id`, that the live split `split_id` (candidate version `version`) has
    `split_change` ("started" or "ended")."""

    version: int
    split_id: int | None = None
    split_change: str = ""


@dataclass
class RulesRolledOut:
    version: int
    claimants: int  # with a task row when the rollout started
    told: int  # running workflows that got the event
    not_running: int  # no workflow: nothing to re-assess (it reloads the rules when it starts)
    refused: int  # Temporal refused the signal (logged by the activity)
