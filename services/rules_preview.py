"""What a rules change would do to the queues, before it is saved: the top of each queue under
the rules in force and under the edited rules, side by side (the rules page), and one
claimant's assessment under given rules (`dialler scoring explain`, `scoring test`); and
past contacts replayed under given rules (`replay`, for `dialler scoring evaluate`).

Claimants are assessed by the activities' own code path (`OutreachActivities.load_facts`,
then `assess`), so a preview ranks exactly as the workflows will. Each claimant's facts are
loaded once and assessed under both rule sets at the same instant.

Assessing every claimant of a queue would take minutes at scale, so the candidates are the
`candidates` best-scored ready tasks of each queue (a queue without tasks, before any
workflow ran, takes that many claimants of its seed query, lowest ids first). A claimant
ranked lower today who would jump into the top under the new rules is missed: the page says
how many candidates were assessed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.outreach import OutreachActivities
from adapters import task_store
from adapters.ai_presence import AiPresence
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from adapters.scoring_splits import SplitSource
from domain.rules import DiallerRules
from domain.scoring_evaluation import LaterConversion, as_at_contact
from schemas.enums import Queue
from schemas.outreach import Assessment, AssessRequest, ClaimantFacts, LoadFactsRequest

PREVIEW_TOP = 20
CANDIDATES_PER_QUEUE = 200
ASSESSMENTS_IN_FLIGHT = 8  # claimants assessed at once (a few connections of each pool)
QUEUES = (Queue.CALLBACK, Queue.UNSIGNED, Queue.OUTSTANDING)


@dataclass(frozen=True)
class Ranked:
    """A claimant in one queue's list under one rule set, and where the other rule set puts
    them: `other_rank` None when they would not be in this queue at all (`other_note` says
    why: another queue, or no task)."""

    user_id: int
    rank: int
    score: float
    other_rank: int | None
    other_score: float | None
    other_note: str = ""

    @property
    def movement(self) -> int | None:
        """Places gained going from the other list to this one (before -> after)."""
        return None if self.other_rank is None else self.other_rank - self.rank


@dataclass(frozen=True)
class PastContact:
    """A claimant called from `queue` at `at`, to replay; `conversions`: the claimant's
    conversions since (at least) then, to undo those after it."""

    user_id: int
    queue: Queue
    at: datetime
    conversions: Sequence[LaterConversion] = ()


@dataclass
class QueuePreview:
    queue: Queue
    before: list[Ranked] = field(default_factory=list)  # top under the rules in force
    after: list[Ranked] = field(default_factory=list)  # top under the edited rules
    candidates: int = 0
    from_tasks: bool = True  # False: the seed query's claimants (no tasks yet)

    @property
    def order_changed(self) -> bool:
        return [r.user_id for r in self.before] != [r.user_id for r in self.after] or any(
            r.score != r.other_score for r in self.after
        )


@dataclass
class Preview:
    at: datetime
    queues: list[QueuePreview]
    assessed: int  # distinct claimants
    top: int  # claimants listed per queue and rule set
    candidates: int  # at most this many claimants assessed per queue


class RulesPreview:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica: AsyncEngine,
        *,
        candidates: int = CANDIDATES_PER_QUEUE,
        in_flight: int = ASSESSMENTS_IN_FLIGHT,
        ai: AiPresence | None = None,
        splits: SplitSource | None = None,
    ) -> None:
        """`ai`: the AI's presence, so an explanation says who would make the contact;
        `splits`: the running live split, so it says which arm scored the claimant."""
        self._ai = ai
        self._splits = splits
        self._dialler = dialler
        self._replica = replica
        self._candidates = candidates
        self._in_flight = in_flight

    async def explain(self, user_id: int, rules: DiallerRules) -> Assessment:
        """Stage, score breakdown and `not_before` under `rules`, now."""
        ((assessment,),) = await self.assess([user_id], [rules], datetime.now(UTC))
        return assessment

    async def compare(
        self, before: DiallerRules, after: DiallerRules, *, top: int = PREVIEW_TOP
    ) -> Preview:
        """The top `top` of each queue under `before` and under `after`."""
        now = datetime.now(UTC)
        candidates, from_tasks = await self.candidates(now)
        user_ids = sorted({u for ids in candidates.values() for u in ids})
        assessed = await self.assess(user_ids, [before, after], now)
        old = [pair[0] for pair in assessed]
        new = [pair[1] for pair in assessed]
        queues = []
        for queue in QUEUES:
            ranked_old, ranked_new = _ranking(old, queue), _ranking(new, queue)
            queues.append(
                QueuePreview(
                    queue=queue,
                    before=_listed(ranked_old, ranked_new, new, top),
                    after=_listed(ranked_new, ranked_old, old, top),
                    candidates=len(candidates[queue]),
                    from_tasks=from_tasks[queue],
                )
            )
        return Preview(now, queues, len(user_ids), top=top, candidates=self._candidates)

    async def candidates(self, now: datetime) -> tuple[dict[Queue, list[int]], dict[Queue, bool]]:
        """Per queue: the best-scored ready tasks, else the seed query's lowest ids; and
        whether they came from the tasks."""
        found: dict[Queue, list[int]] = {}
        async with self._dialler.connect() as conn:
            for queue in QUEUES:
                found[queue] = await task_store.top_ready_user_ids(conn, queue, self._candidates)
        from_tasks = {queue: bool(ids) for queue, ids in found.items()}
        for queue in (q for q in QUEUES if not found[q]):
            members = await self._seed_query(queue, now)
            found[queue] = sorted(members)[: self._candidates]
        return found, from_tasks

    async def _seed_query(self, queue: Queue, now: datetime) -> set[int]:
        if queue is Queue.CALLBACK:
            return await due_callback_user_ids(self._dialler, self._replica, now)
        if queue is Queue.UNSIGNED:
            return await unsigned_user_ids(self._replica)
        return await outstanding_user_ids(self._replica)

    async def assess(
        self, user_ids: Sequence[int], rule_sets: Sequence[DiallerRules], now: datetime
    ) -> list[list[Assessment]]:
        """For each claimant (in order), their assessment under each rule set (in order):
        the facts are loaded once."""
        assessors = [
            OutreachActivities(self._dialler, self._replica, r, self._ai, self._splits)
            for r in rule_sets
        ]
        gate = asyncio.Semaphore(self._in_flight)

        async def one(user_id: int) -> list[Assessment]:
            async with gate:
                facts = await assessors[0].load_facts(LoadFactsRequest(user_id))
                return [await a.assess(AssessRequest(facts, now)) for a in assessors]

        return list(await asyncio.gather(*(one(user_id) for user_id in user_ids)))

    async def replay(
        self, contacts: Sequence[PastContact], rule_sets: Sequence[DiallerRules]
    ) -> list[list[Assessment] | None]:
        """For each contact (in order), the claimant's assessment under each rule set (in
        order) at the contact's time, by the activities' code path, with the facts read
        today and rewound to the contact (`domain.scoring_evaluation.as_at_contact`); None
        for a contact that cannot be rewound. Each claimant's facts are loaded once."""
        assessors = [
            OutreachActivities(self._dialler, self._replica, r, self._ai) for r in rule_sets
        ]
        gate = asyncio.Semaphore(self._in_flight)

        async def load(user_id: int) -> tuple[int, ClaimantFacts]:
            async with gate:
                return user_id, await assessors[0].load_facts(LoadFactsRequest(user_id))

        loaded = await asyncio.gather(*(load(u) for u in sorted({c.user_id for c in contacts})))
        facts_of = dict(loaded)

        async def one(contact: PastContact) -> list[Assessment] | None:
            rewound = as_at_contact(
                facts_of[contact.user_id], contact.queue, contact.at, contact.conversions
            )
            if rewound is None:
                return None
            async with gate:
                return [await a.assess(AssessRequest(rewound, contact.at)) for a in assessors]

        return list(await asyncio.gather(*(one(contact) for contact in contacts)))


def _in_queue(assessment: Assessment, queue: Queue) -> bool:
    """Listed in the queue: its stage's queue, and callable at some time (task_shape)."""
    return assessment.stage.queue is queue and assessment.not_before is not None


def _ranking(assessments: list[Assessment], queue: Queue) -> dict[int, tuple[int, Assessment]]:
    """user id -> (rank from 1, assessment) for the claimants listed in `queue`, best score
    first (ties by user id, so the order is stable)."""
    listed = sorted(
        (a for a in assessments if _in_queue(a, queue)), key=lambda a: (-a.score, a.user_id)
    )
    return {a.user_id: (rank, a) for rank, a in enumerate(listed, start=1)}


def _listed(
    ranking: dict[int, tuple[int, Assessment]],
    other: dict[int, tuple[int, Assessment]],
    other_assessments: list[Assessment],
    top: int,
) -> list[Ranked]:
    elsewhere = {a.user_id: a for a in other_assessments}
    rows = []
    for user_id, (rank, assessment) in ranking.items():
        if rank > top:
            continue
        placed = other.get(user_id)
        note = "" if placed is not None else _where(elsewhere.get(user_id))
        rows.append(
            Ranked(
                user_id=user_id,
                rank=rank,
                score=assessment.score,
                other_rank=placed[0] if placed else None,
                other_score=placed[1].score if placed else None,
                other_note=note,
            )
        )
    return sorted(rows, key=lambda r: r.rank)


def _where(assessment: Assessment | None) -> str:
    """Why a claimant is not in this queue under the other rules."""
    if assessment is None:
        return ""
    if assessment.not_before is None:
        return f"no task: {assessment.not_before_reason}"
    queue = assessment.stage.queue
    return f"in {queue.value}" if queue is not None else "no task"
