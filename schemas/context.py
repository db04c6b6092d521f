"""A claimant's context: what an agent sees about the person they are about to call, combined
from the replica (the main app's rows) and the dialler DB (calls, callbacks, opt-outs).

Cached in Redis per claimant (`adapters.context_cache`); personal data lives here, never in
workflow histories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
class ClaimantContext:
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
    opted_out: bool = False
    next_callback_at: datetime | None = None
    last_call_at: datetime | None = None
    last_disposition: str | None = None
