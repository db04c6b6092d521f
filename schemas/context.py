"""A claimant as an agent sees them: the main app's rows (`ReplicaClaimant`) and the dialler's
own state about them (`ClaimantContext` adds the opt-out and the next callback).

Only the replica part is cached in Redis (`adapters.context_cache`, dropped by CDC when the
main app changes it); the dialler part changes by the dialler's own actions (a STOP, an
outcome, a booked callback), so `services.claimant_loader` reads it fresh on every view.
Personal data lives here, never in workflow histories.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, time


@dataclass
class RequirementView:
    requirement_id: int
    type: str
    status: str


@dataclass
class ClaimView:
    claim_id: int
    lender: str
    status: str
    created_at: datetime
    estimated_value: float | None = None
    requirements: list[RequirementView] = field(default_factory=list)


@dataclass
class ReplicaClaimant:
    """The main app's view of the claimant: what the context cache holds."""

    user_id: int
    first_name: str
    last_name: str
    email: str | None
    phone_number: str | None
    postcode: str | None
    date_of_birth: date | None
    is_enabled: bool
    status: str
    is_vulnerable: bool
    signed: bool
    preferred_call_start: time | None
    preferred_call_end: time | None
    loaded_at: datetime
    claims: list[ClaimView] = field(default_factory=list)


@dataclass
class ClaimantContext(ReplicaClaimant):
    """The replica part plus the dialler's state, read fresh (never cached)."""

    opted_out: bool = False  # the latest suppression event per channel (`domain.suppressions`)
    next_callback_at: datetime | None = None  # the earliest pending callback

    @classmethod
    def of(
        cls, replica: ReplicaClaimant, *, opted_out: bool, next_callback_at: datetime | None
    ) -> ClaimantContext:
        shared = {f.name: getattr(replica, f.name) for f in fields(ReplicaClaimant)}
        return cls(**shared, opted_out=opted_out, next_callback_at=next_callback_at)
