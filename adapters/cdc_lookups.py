"""Lookups the CDC translation needs and rows do not carry: the claimant of a claim (for
requirement rows) and a lender's name (for new claims).

Both are cached: claim owners in a bounded LRU fed by the stream itself (every claims row
names its owner, so a claim created in the same transaction as its requirements needs no
query) and by the replica on a miss; lender names are reference data, read all at once and
re-read at most once a minute when an unknown id appears.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.replica_reader import ReplicaReader
from domain.change_events import Lookups, Needs

LENDERS_RELOAD_SECONDS = 60.0


class ReplicaLookups:
    def __init__(self, replica_db: AsyncEngine, max_claims: int = 200_000) -> None:
        self._replica = ReplicaReader(replica_db)
        self._max = max_claims
        self._owners: OrderedDict[int, int] = OrderedDict()
        self._lenders: dict[int, str] = {}
        self._lenders_read_at = float("-inf")
        self.queries = 0  # replica round trips, for tests and metrics

    def learn(self, lookups: Lookups) -> None:
        for claim_id, user_id in lookups.claim_owners.items():
            self._remember(claim_id, user_id)
        self._lenders.update(lookups.lender_names)

    def _remember(self, claim_id: int, user_id: int) -> None:
        self._owners[claim_id] = user_id
        self._owners.move_to_end(claim_id)
        while len(self._owners) > self._max:
            self._owners.popitem(last=False)

    async def resolve(self, needs: Needs) -> Lookups:
        """What is known or can be read; ids the replica does not have stay unresolved."""
        owners: dict[int, int] = {}
        missing = []
        for claim_id in needs.claim_ids:
            if claim_id in self._owners:
                self._owners.move_to_end(claim_id)
                owners[claim_id] = self._owners[claim_id]
            else:
                missing.append(claim_id)
        if missing:
            self.queries += 1
            for claim_id, user_id in (await self._replica.claim_owners(missing)).items():
                self._remember(claim_id, user_id)
                owners[claim_id] = user_id
        unknown = needs.lender_ids - self._lenders.keys()
        if unknown and time.monotonic() - self._lenders_read_at > LENDERS_RELOAD_SECONDS:
            self.queries += 1
            self._lenders.update(await self._replica.lender_names())
            self._lenders_read_at = time.monotonic()
        names = {i: self._lenders[i] for i in needs.lender_ids if i in self._lenders}
        return Lookups(claim_owners=owners, lender_names=names)
