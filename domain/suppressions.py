"""Opt-outs: when is a claimant (or a phone number) suppressed, and may a START lift it?

The `suppressions` table is append-only (a trigger refuses UPDATE and DELETE), so an opt-out
is never edited away. Re-subscription by SMS is modelled as another appended row:

- `sms_stop`: the claimant (or the number) replied STOP, UNSUBSCRIBE, ...
- `sms_start`: the same claimant (or number) later replied START or UNSTOP.

For the two SMS reasons only the latest row counts, separately for the claimant (rows with
their `user_id`) and for the number (rows with that `phone_number`): a START lifts the STOP
it follows. Every other reason (`do_not_call`, `list`, an opt-out from the main app, ...)
is final: no row ever lifts it, so a START from a claimant who is also on do-not-call
changes nothing. Pure functions; the queries are in `adapters.suppressions`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

SMS_STOP = "sms_stop"
SMS_START = "sms_start"
SMS_REASONS = frozenset({SMS_STOP, SMS_START})


@dataclass(frozen=True)
class SuppressionRow:
    id: int  # identity: a later row has a larger id
    user_id: int | None
    phone_number: str | None
    reason: str


@dataclass(frozen=True)
class SuppressionStatus:
    """The reasons in force for one claimant and number (empty: they may be contacted)."""

    reasons: frozenset[str]

    @property
    def suppressed(self) -> bool:
        return bool(self.reasons)

    @property
    def only_sms_stop(self) -> bool:
        """Suppressed by an SMS STOP and nothing else: the claimant's own START may lift it."""
        return self.reasons == {SMS_STOP}


def _latest_sms_reason(rows: Iterable[SuppressionRow]) -> str | None:
    latest = max((r for r in rows if r.reason in SMS_REASONS), key=lambda r: r.id, default=None)
    return latest.reason if latest is not None else None


def status_of(
    rows: Iterable[SuppressionRow], user_id: int | None, numbers: Collection[str]
) -> SuppressionStatus:
    """What `rows` (every row naming `user_id` or one of `numbers`) say about contacting
    this claimant at this number. `numbers` are spellings of one number (+44..., 0...)."""
    rows = list(rows)
    mine = [r for r in rows if user_id is not None and r.user_id == user_id]
    by_number = [r for r in rows if r.phone_number is not None and r.phone_number in numbers]
    reasons = {r.reason for r in mine + by_number if r.reason not in SMS_REASONS}
    if _latest_sms_reason(mine) == SMS_STOP or _latest_sms_reason(by_number) == SMS_STOP:
        reasons.add(SMS_STOP)
    return SuppressionStatus(frozenset(reasons))


def start_refusal(status: SuppressionStatus) -> str | None:
    """Why a START from the claimant cannot re-subscribe them (None: it can)."""
    if not status.suppressed:
        return "not opted out"
    if not status.only_sms_stop:
        others = sorted(status.reasons - {SMS_STOP})
        return "suppressed for a reason an SMS cannot lift: " + ", ".join(others)
    return None
