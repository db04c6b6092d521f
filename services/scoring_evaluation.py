"""`dialler scoring evaluate --rules NEW.toml --from --to`: would the new rules have put the
claimants who converted nearer the top of the queues? A replay of the contacts actually made.

1. The contacts: the calls we placed from a queue between --from and --to (UK days, both
   included) with an outcome recorded (`call_log.outcome_contacts`); one claimant called in
   one queue on one day is one contact, at the time of the day's first call.
2. Converted: a conversion (a signature, or a document received or approved) credited to
   one of the contact's calls by the attribution rules (`domain.attribution`: the last
   contact within the attribution window before it). Conversions still to come after the
   range's last call are not seen yet: evaluate a range that ended at least the attribution
   window ago for the full picture.
3. Each contacted claimant is assessed at the contact's time under the rules in force and
   under NEW, by the outreach worker's own code path (`RulesPreview.replay`), with their
   facts read today and rewound to the contact (`domain.scoring_evaluation.as_at_contact`:
   conversions after it undone, the queue they were called from). What the dialler cannot
   rewind is read as it stands today: the contact history (calls after the contact count
   as if made before it) and the learned rates. Both orderings see the same facts, so the
   comparison is fair to both, but a change to a factor that only moves with the contact
   history (days since the last contact, failed attempts) is measured poorly.
4. Per queue, each ordering's top k (k = the queue's contacts per day) and its conversion
   rate; the lift of NEW over the rules in force in percentage points, with a 95 % percentile
   bootstrap interval (scipy, resampling the contacts within each queue, a fixed seed); the
   same overall. `domain.scoring_evaluation` says exactly how.
5. The verdict: "NEW ranks converters higher: lift +x pp [a, b]" when the interval is above
   0, "lower" when below, otherwise "no evidence of a difference".

Only the contacts actually made can be replayed: a claimant the new rules would have called
instead, but who was never called, has no outcome to count. The replay says which rules rank
the called claimants better, not what calling others would have brought.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log, conversions
from adapters.ai_presence import AiPresence
from adapters.databases import for_reports
from domain.attribution import UK, report_period
from domain.rules import DiallerRules
from domain.scoring_evaluation import (
    RESAMPLES,
    SEED,
    Evaluation,
    LaterConversion,
    ReplayedContact,
    evaluate,
)
from schemas.attribution import ContactKind
from schemas.enums import Queue
from schemas.outreach import Stage
from services.rules_preview import ASSESSMENTS_IN_FLIGHT, PastContact, RulesPreview


@dataclass(frozen=True)
class EvaluationReport:
    first_day: date
    last_day: date
    calls: int  # calls with an outcome in the range
    contacts: int  # (claimant, queue, day)
    evaluation: Evaluation


@dataclass
class _Contact:
    user_id: int
    queue: Queue
    day: date
    at: datetime
    call_refs: set[str]


def _contacts(calls: Sequence[call_log.OutcomeContact]) -> list[_Contact]:
    """One per claimant, queue and UK day, at the day's first call (calls come oldest first)."""
    found: dict[tuple[int, str, date], _Contact] = {}
    for call in calls:
        day = call.started_at.astimezone(UK).date()
        key = (call.user_id, call.queue, day)
        contact = found.get(key)
        if contact is None:
            contact = found[key] = _Contact(call.user_id, Queue(call.queue), day,
                                            call.started_at, set())  # fmt: skip
        contact.call_refs.add(str(call.call_id))
    return list(found.values())


class ScoringEvaluation:
    def __init__(
        self,
        dialler: AsyncEngine,
        replica: AsyncEngine,
        *,
        in_flight: int = ASSESSMENTS_IN_FLIGHT,
        ai: AiPresence | None = None,
    ) -> None:
        self._dialler = dialler
        self._preview = RulesPreview(dialler, replica, in_flight=in_flight, ai=ai)

    async def run(
        self,
        current: DiallerRules,
        new: DiallerRules,
        first_day: date,
        last_day: date,
        *,
        resamples: int = RESAMPLES,
        seed: int = SEED,
    ) -> EvaluationReport:
        """Replay the contacts of the days `first_day` to `last_day` (UK, both included)
        under `current` and `new` (the module docstring says how)."""
        start, end = report_period(first_day, last_day)
        async with self._dialler.connect() as conn:
            await for_reports(conn)
            calls = await call_log.outcome_contacts(conn, start, end)
            contacts = _contacts(calls)
            found = await conversions.conversions_since(conn, [c.user_id for c in contacts], start)
        later: dict[int, list[LaterConversion]] = {}
        credited: set[str] = set()
        for conversion in found:
            later.setdefault(conversion.user_id, []).append(
                LaterConversion(conversion.kind, conversion.occurred_at, conversion.requirement_id)
            )
            if conversion.contact_kind is ContactKind.CALL and conversion.contact_ref:
                credited.add(conversion.contact_ref)
        replayed = await self._preview.replay(
            [PastContact(c.user_id, c.queue, c.at, later.get(c.user_id, ())) for c in contacts],
            [current, new],
        )
        scored: list[ReplayedContact] = []
        for contact, assessments in zip(contacts, replayed, strict=True):
            if assessments is None or assessments[0].stage is Stage.DONE:
                continue
            scored.append(
                ReplayedContact(
                    user_id=contact.user_id,
                    queue=contact.queue,
                    day=contact.day,
                    current=assessments[0].score,
                    new=assessments[1].score,
                    converted=bool(contact.call_refs & credited),
                )
            )
        evaluation = evaluate(
            scored, skipped=len(contacts) - len(scored), resamples=resamples, seed=seed
        )
        return EvaluationReport(first_day, last_day, len(calls), len(contacts), evaluation)
