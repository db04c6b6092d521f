"""The seed's three queue queries (rmc-dialler-readme.md, "Queue Population Logic").

The reconcile workflow and the demo-data checks use these to decide who belongs in which
queue. The SQL is kept as the seed writes it, with three deliberate differences: only
`users.id` is selected (callers need ids, not rows); "now" is a parameter rather than
NOW(), so the caller's clock (a workflow's deterministic time, a test's fixed instant) decides
what is due; and a range of user ids (all of them unless given), so reconcile can plan a
page at a time.

Only the replica's SQL is here: the dialler's half of the callback query is the call log's
(`adapters.call_log`), and the queue projection's counts are the task store's.

Quirks of the seed's SQL, kept on purpose so behaviour matches the product description:
the outstanding query does not exclude `status = 'inactive'` users nor require an open
claim, unlike the unsigned query.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log

_UNSIGNED = text(
    """
    SELECT users.id FROM users
    WHERE current_signature_file_id IS NULL
      AND is_enabled = true
      AND status != 'inactive'
      AND EXISTS (SELECT 1 FROM claims WHERE user_id = users.id AND status != 'complete')
      AND users.id >= :from_id AND users.id < :to_id
    """
)

_OUTSTANDING = text(
    """
    SELECT users.id FROM users
    WHERE current_signature_file_id IS NOT NULL
      AND is_enabled = true
      AND EXISTS (
        SELECT 1 FROM claims c
        JOIN claim_requirements cr ON c.id = cr.claim_id
        WHERE c.user_id = users.id AND cr.status = 'PENDING'
      )
      AND users.id >= :from_id AND users.id < :to_id
    """
)

# The denominator of the seed's "% of active claims" figures: enabled, not inactive, with at
# least one claim still open. The unsigned query is this plus "no signature".
_ACTIVE_CLAIMANTS = text(
    """
    SELECT users.id FROM users
    WHERE is_enabled = true
      AND status != 'inactive'
      AND EXISTS (SELECT 1 FROM claims WHERE user_id = users.id AND status != 'complete')
    """
)

_ENABLED_AMONG = text(
    "SELECT users.id FROM users WHERE users.is_enabled = true AND users.id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_IDS_PER_QUERY = 5_000  # keeps the IN list well under max_allowed_packet
_PAGE_END = text("SELECT id FROM users WHERE id >= :from_id ORDER BY id LIMIT 1 OFFSET :size")
ALL_IDS = (0, 2**63 - 1)  # a range of user ids: from the first, up to (not including) the second


async def _ids(engine: AsyncEngine, query: TextClause, **params: Any) -> set[int]:
    async with engine.connect() as conn:
        result = await conn.execute(query, params)
        return {int(row[0]) for row in result}


async def unsigned_user_ids(replica: AsyncEngine, ids: tuple[int, int] = ALL_IDS) -> set[int]:
    """Queue 1: enabled, not inactive, an open claim, and no signature on file."""
    return await _ids(replica, _UNSIGNED, from_id=ids[0], to_id=ids[1])


async def outstanding_user_ids(replica: AsyncEngine, ids: tuple[int, int] = ALL_IDS) -> set[int]:
    """Queue 2: enabled, signed, and at least one PENDING requirement."""
    return await _ids(replica, _OUTSTANDING, from_id=ids[0], to_id=ids[1])


async def page_end(replica: AsyncEngine, from_id: int, size: int) -> int | None:
    """The user id that starts the page after the `size` users from `from_id` (None: those
    are the last users)."""
    async with replica.connect() as conn:
        end = await conn.scalar(_PAGE_END, {"from_id": from_id, "size": size})
    return None if end is None else int(end)


async def active_claimant_ids(replica: AsyncEngine) -> set[int]:
    """Enabled, not inactive, with at least one claim that is not complete."""
    return await _ids(replica, _ACTIVE_CLAIMANTS)


async def enabled_user_ids_among(replica: AsyncEngine, user_ids: Iterable[int]) -> set[int]:
    """The subset of `user_ids` whose replica user exists and is enabled."""
    ordered = sorted(set(user_ids))
    enabled: set[int] = set()
    for start in range(0, len(ordered), _IDS_PER_QUERY):
        chunk = ordered[start : start + _IDS_PER_QUERY]
        enabled |= await _ids(replica, _ENABLED_AMONG, ids=chunk)
    return enabled


async def due_callback_user_ids(
    dialler: AsyncEngine, replica: AsyncEngine, now: datetime, ids: tuple[int, int] = ALL_IDS
) -> set[int]:
    """Queue 3: a pending callback scheduled at or before `now`, for an enabled user."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (callbacks.scheduled_for is timestamptz)")
    # The seed's callback query joins callbacks to users in one database. Here callbacks live
    # in the dialler's PostgreSQL and users in the MySQL replica, so it runs in two halves:
    # the callback conditions on PostgreSQL (the call log's), then `users.is_enabled = true`
    # on the replica for just those ids. The intersection is the seed's result.
    due = await call_log.due_callback_user_ids(dialler, now, ids)
    return await enabled_user_ids_among(replica, due) if due else set()
