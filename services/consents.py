"""A claimant's consent as agents see and capture it.

`standing` folds both sources (the main app's `consents` through the replica reader, and
`consent_records`) with `domain.consent`. `confirm` is "consent confirmed on this call": the
record and its audit entry in one transaction, then the claimant's workflow is told (a
CONSENT_CHANGED event through the one door) so the task appears without waiting for
reconcile. With Temporal away the record stays and the answer says the queue catches up
later: nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import consents
from adapters.audit_log import append_audit
from adapters.consents import ConsentCapture, ConsentRecord
from adapters.replica_reader import ReplicaReader
from domain.consent import CONSENT_STATEMENTS
from schemas.enums import ConsentChannel
from schemas.outreach import ChangeEvent, ChangeKind
from workflows.outreach_client import OutreachClient, OutreachRefused, OutreachUnavailable

log = get_logger(__name__)


@dataclass(frozen=True)
class ConsentStanding:
    records: list[ConsentRecord]  # every grant and withdrawal, oldest first
    channels: frozenset[str]  # in force now

    def has(self, channel: ConsentChannel) -> bool:
        return channel.value in self.channels


@dataclass(frozen=True)
class ConsentConfirmed:
    record_id: int
    standing: ConsentStanding
    workflow_told: bool  # False: Temporal was away; the record is kept all the same


class ConsentService:
    def __init__(
        self, dialler: AsyncEngine, replica_db: AsyncEngine, outreach: OutreachClient | None
    ) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica_db)
        self._outreach = outreach

    async def standing(self, user_id: int) -> ConsentStanding:
        from_main_app = (await self._replica.consents([user_id])).get(user_id, [])
        async with self._dialler.connect() as conn:
            records = await consents.records_of(conn, user_id, from_main_app)
        return ConsentStanding(records, consents.in_force(records, datetime.now(UTC)))

    async def confirm(
        self,
        user_id: int,
        channel: ConsentChannel,
        *,
        agent_id: int,
        call_id: int | None,
        ip_address: str | None,
    ) -> ConsentConfirmed:
        """The claimant agreed, on this call, to the statement the agent read out."""
        capture = ConsentCapture(
            user_id=user_id,
            channel=channel,
            given=True,
            agent_id=agent_id,
            call_id=call_id,
            source="console",
            wording=CONSENT_STATEMENTS[channel],
        )
        async with self._dialler.begin() as conn:
            record_id = await consents.capture(conn, capture)
            await append_audit(
                conn,
                actor_type="agent",
                actor_id=str(agent_id),
                action="consent_confirmed",
                subject_type="user",
                subject_id=str(user_id),
                detail={"channel": channel.value, "call_id": call_id, "record_id": record_id},
                ip_address=ip_address,
            )
        told = await self._tell_workflow(user_id, record_id)
        return ConsentConfirmed(record_id, await self.standing(user_id), told)

    async def _tell_workflow(self, user_id: int, record_id: int) -> bool:
        if self._outreach is None:
            return False
        event = ChangeEvent(
            event_id=f"consent-record:{record_id}",
            kind=ChangeKind.CONSENT_CHANGED,
            user_id=user_id,
            occurred_at=datetime.now(UTC),
        )
        try:
            await self._outreach.deliver(event)
        except (OutreachRefused, OutreachUnavailable) as error:
            log.warning("consent saved; workflow not told", user_id=user_id, error=str(error))
            return False
        return True
