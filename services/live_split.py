"""The live split of the score, as supervisors run it from the rules page (issue 14): start
one for a saved rules version with a share of claimants and a note, see it running, end it.

- Start: the candidate is a saved version other than the one in force (the newest saved
  version is always in force, so a candidate is an earlier version, or one saved before a
  return to the rules in force) that still parses; the share is 1-50 % of claimants; the note
  says why. Refused while a split runs (409).
- The candidate arm is scored by the candidate version's [scoring] only: every other rule
  (calling windows, caps, consent, compliance, the AI's routing) stays the rules in force
  (`domain.scoring_split.scored_by`).
- Starting and ending are audited (`scoring_split_started`, `scoring_split_ended`: the split,
  the version, the share and the note) in the same transaction as the change, then the
  queues are re-scored like a rules rollout (`RulesRolloutClient.start_split`: a RULES_CHANGED
  event to every claimant with a task, after the workers' few seconds to see the split).
  Temporal away: the split stands; claimants take their arm at their next change.
- The arms are compared on the funnel (`services.funnel.split_arms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import rules_versions, scoring_splits
from adapters.audit_log import append_audit
from adapters.rules_source import RulesSource
from adapters.scoring_splits import Split, SplitRunning
from domain.rules import RulesError, parse_rules
from domain.scoring_split import MAX_SHARE, MIN_SHARE, check_share
from services.rules_editing import Actor, DraftRefused, check_note
from workflows.rules_rollout_client import RolloutUnavailable, RulesRolloutClient

log = get_logger(__name__)

AUDIT_STARTED = "scoring_split_started"
AUDIT_ENDED = "scoring_split_ended"
AUDIT_SUBJECT = "scoring_split"
HISTORY_SHOWN = 20


class SplitRefused(Exception):
    """Nothing was changed; `problems` maps a form field ("version", "share", "note" or
    "split") to what is wrong. `status`: 422 for the form, 409 for the split's state."""

    def __init__(self, problems: dict[str, list[str]], status: int = 422) -> None:
        self.problems = problems
        self.status = status
        super().__init__("; ".join(p for ps in problems.values() for p in ps))


@dataclass(frozen=True)
class SplitChanged:
    split: Split
    rollout_id: str | None  # the re-scoring's workflow id; None when it could not start
    rollout_problem: str | None = None


@dataclass(frozen=True)
class SplitOverview:
    running: Split | None
    history: list[Split]
    in_force: int  # the version in force: not a candidate


def share_of(percent: str) -> float:
    """A share from the form's percentage ("10", "12.5"); raises ValueError saying why not."""
    try:
        value = float(percent.strip().removesuffix("%"))
    except ValueError:
        raise ValueError(
            f"the share is a percentage between {MIN_SHARE:.0%} and {MAX_SHARE:.0%}"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"the share is a percentage between {MIN_SHARE:.0%} and {MAX_SHARE:.0%}")
    return check_share(round(value / 100, 4))


class LiveSplits:
    def __init__(
        self, dialler: AsyncEngine, source: RulesSource, *, rollout: RulesRolloutClient | None
    ) -> None:
        self._dialler = dialler
        self._source = source
        self._rollout = rollout

    async def overview(self, limit: int = HISTORY_SHOWN) -> SplitOverview:
        in_force = (await self._source.newest()).version
        async with self._dialler.connect() as conn:
            running = await scoring_splits.running(conn)
            history = await scoring_splits.history(conn, limit=limit)
        return SplitOverview(running, history, in_force)

    async def split(self, split_id: int) -> Split | None:
        async with self._dialler.connect() as conn:
            return await scoring_splits.split(conn, split_id)

    async def start(
        self, version_id: int | None, share: str, note: str, *, actor: Actor
    ) -> SplitChanged:
        """Start a split (the module docstring says what is refused) and re-score."""
        problems: dict[str, list[str]] = {}
        try:
            fraction = share_of(share)
        except ValueError as error:
            problems["share"] = [str(error)]
        try:
            note = check_note(note)
        except DraftRefused as refused:
            problems.update(refused.problems)
        version_problem = await self._candidate_problem(version_id)
        if version_problem:
            problems["version"] = [version_problem]
        if problems:
            raise SplitRefused(problems)
        assert version_id is not None
        try:
            async with self._dialler.begin() as conn:
                split = await scoring_splits.start(
                    conn,
                    rules_version_id=version_id,
                    share=fraction,
                    note=note,
                    started_by=actor.agent_id,
                )
                await self._audit(conn, AUDIT_STARTED, split, actor)
        except SplitRunning as running:
            raise SplitRefused({"split": [str(running)]}, status=409) from None
        log.info("live split started", split=split.id, version=version_id, share=fraction)
        return await self._rescore(split, "started")

    async def end(self, split_id: int, *, actor: Actor) -> SplitChanged:
        async with self._dialler.begin() as conn:
            ended = await scoring_splits.end(conn, split_id, ended_by=actor.agent_id)
            if ended is not None:
                await self._audit(conn, AUDIT_ENDED, ended, actor)
        if ended is None:
            raise SplitRefused({"split": [f"split {split_id} is not running"]}, status=409)
        log.info("live split ended", split=ended.id)
        return await self._rescore(ended, "ended")

    async def _candidate_problem(self, version_id: int | None) -> str | None:
        if version_id is None:
            return "choose the saved version to try"
        in_force = (await self._source.newest()).version
        if version_id == in_force:
            return f"version {version_id} is in force already: choose another saved version"
        async with self._dialler.connect() as conn:
            stored = await rules_versions.version(conn, version_id)
        if stored is None:
            return f"there is no saved rules version {version_id}"
        if rules_versions.sha256_of(stored.text) != stored.sha256:
            return f"version {version_id}'s text does not match its sha256"
        try:
            parse_rules(stored.text)
        except RulesError as error:
            return f"version {version_id} is not valid rules: " + "; ".join(error.problems)
        return None

    @staticmethod
    async def _audit(conn: AsyncConnection, action: str, split: Split, actor: Actor) -> None:
        await append_audit(
            conn,
            actor_type=actor.audit_type,
            actor_id=actor.audit_id,
            action=action,
            subject_type=AUDIT_SUBJECT,
            subject_id=str(split.id),
            detail={
                "split": split.id,
                "version": split.rules_version_id,
                "share": split.share,
                "note": split.note,
            },
            ip_address=actor.ip_address,
        )

    async def _rescore(self, split: Split, change: str) -> SplitChanged:
        if self._rollout is None:
            return SplitChanged(split, None, "no Temporal connection in this process")
        try:
            rollout_id = await self._rollout.start_split(split.id, split.rules_version_id, change)
        except RolloutUnavailable as error:
            log.warning("live split re-scoring not started", split=split.id, error=str(error))
            return SplitChanged(split, None, str(error))
        return SplitChanged(split, rollout_id)
