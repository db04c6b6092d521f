"""Replaying CDC dead letters (`dialler sync dead-letters --replay`).

A dead letter is parsed again from its raw payload (a DMS message, or a binlog row change
kept as JSON) and translated again, so a cause that has gone (a claim that had not reached
the replica yet, a bug fixed since) lets it through. It is delivered as a REFRESH of every
claimant it touches rather than as its original typed events: by the time an operator
replays it, newer changes may have been applied, and a refresh reads the claimant's facts
as they are now, where an old typed event could set an old value in a fresh run. A letter
that still cannot be applied stays pending with its new reason.

Conversions in a letter (a signature added, a requirement completed: `domain.attribution`)
are attributed again through `attribute` when it is given (the CLI gives it): a letter kept
because the claim was unresolved, or because attribution itself failed, is credited on
replay; one already kept is not written twice (idempotent by event id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from adapters.cdc_lookups import ReplicaLookups
from adapters.cdc_sqs import parse_dms
from adapters.cdc_store import CdcStore
from adapters.context_cache import ContextCache
from domain.attribution import Conversion, conversions_in
from domain.change_events import ChangeError, decode_row_change, learned, needs, translate
from schemas.cdc import CdcSourceName, DeadLetter, ReplayOutcome, RowChange
from schemas.outreach import ChangeEvent, ChangeKind
from workflows.outreach_client import is_transient

Deliver = Callable[[ChangeEvent], Awaitable[None]]
Attribute = Callable[[Sequence[Conversion]], Awaitable[int]]


def changes_of(letter: DeadLetter) -> list[RowChange]:
    """The row changes in a dead letter's payload; ChangeError when it cannot be read."""
    if letter.source == CdcSourceName.SQS.value:
        change = parse_dms(letter.raw_payload)
        return [change] if change is not None else []
    return [decode_row_change(letter.raw_payload)]


async def replay(
    letters: Sequence[DeadLetter],
    *,
    store: CdcStore,
    lookups: ReplicaLookups,
    deliver: Deliver,
    cache: ContextCache | None = None,
    attribute: Attribute | None = None,
) -> list[ReplayOutcome]:
    outcomes = []
    for letter in letters:
        try:
            users: list[int] = []
            events: list[ChangeEvent] = []
            for change in changes_of(letter):
                lookups.learn(learned(change))
                translation = translate(change, await lookups.resolve(needs(change)))
                users += [u for u in translation.touched_user_ids if u not in users]
                events += translation.events
            conversions = conversions_in(events)
            if attribute is not None and conversions:
                await attribute(conversions)
            now = datetime.now(UTC)
            attempt = letter.replay_count + 1
            for user_id in users:
                await deliver(
                    ChangeEvent(
                        event_id=f"replay:{letter.id}:{attempt}:{user_id}",
                        kind=ChangeKind.REFRESH,
                        user_id=user_id,
                        occurred_at=now,
                        reason=f"dead letter {letter.id} replayed",
                    )
                )
            if cache is not None:
                await cache.invalidate(users)
        except ChangeError as error:
            await store.record_replay(letter.id, ok=False, reason=error.reason)
            outcomes.append(ReplayOutcome(letter.id, replayed=False, reason=error.reason))
            continue
        except Exception as error:
            reason = f"replay failed: {type(error).__name__}: {error}"
            if not is_transient(error):  # a transient failure leaves the letter as it was
                await store.record_replay(letter.id, ok=False, reason=reason)
            outcomes.append(ReplayOutcome(letter.id, replayed=False, reason=reason))
            continue
        await store.record_replay(letter.id, ok=True)
        outcomes.append(ReplayOutcome(letter.id, replayed=True, signalled=len(users)))
    return outcomes
