"""Small builders of replica rows for tests that need specific claimants."""

from __future__ import annotations

import itertools
from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import replica

_ids = itertools.count(1_000_000)


def next_id() -> int:
    return next(_ids)


async def ensure_lender(engine: AsyncEngine, name: str = "Santander") -> int:
    async with engine.begin() as conn:
        found = await conn.scalar(
            select(replica.lenders.c.id).where(replica.lenders.c.name == name)
        )
        if found is not None:
            return int(found)
        result = await conn.execute(insert(replica.lenders).values(name=name))
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def add_claimant(
    engine: AsyncEngine,
    *,
    signed: bool = False,
    pending: int = 0,
    claim_status: str = "in_progress",
    is_enabled: bool = True,
    status: str = "active",
    lender: str = "Santander",
    phone: str | None = None,
    born: date = date(1950, 6, 1),
    vulnerable: bool = False,
    claim_created: datetime | None = None,
    consents: Collection[str] = ("live_call",),
) -> int:
    """One claimant with one claim and `pending` PENDING requirements; returns the user id.
    `consents` are the channels they consented to (by default live calls, so that they may
    be offered to agents: PECR 21A)."""
    user_id = next_id()
    lender_id = await ensure_lender(engine, lender)
    async with engine.begin() as conn:
        await conn.execute(
            insert(replica.users).values(
                id=user_id,
                first_name="Test",
                last_name=f"Claimant{user_id}",
                email=f"t{user_id}@example.com",
                phone_number=phone or f"+4477009{user_id % 100000:05d}",
                date_of_birth=born,
                postcode="M1 4AB",
                current_signature_file_id=user_id if signed else None,
                is_enabled=is_enabled,
                status=status,
                is_vulnerable=vulnerable,
            )
        )
        claim_id = user_id
        await conn.execute(
            insert(replica.claims).values(
                id=claim_id,
                user_id=user_id,
                lender_id=lender_id,
                status=claim_status,
                estimated_value=2500,
                created_at=claim_created or datetime(2026, 1, 5, 10, 0),
            )
        )
        for channel in consents:
            await conn.execute(
                insert(replica.consents).values(
                    user_id=user_id, channel=channel, source="web_form",
                    wording=f"test consent to {channel}", given_at=datetime(2025, 1, 1, 9, 0),
                )
            )  # fmt: skip
        for n in range(pending):
            await conn.execute(
                insert(replica.claim_requirements).values(
                    id=claim_id * 10 + n,
                    claim_id=claim_id,
                    type="bank_statements",
                    status="PENDING",
                )
            )
    return user_id


async def set_user(engine: AsyncEngine, user_id: int, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(replica.users).where(replica.users.c.id == user_id).values(**values)
        )


async def set_requirements(engine: AsyncEngine, user_id: int, status: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(replica.claim_requirements)
            .where(replica.claim_requirements.c.claim_id == user_id)
            .values(status=status)
        )


def days(n: float) -> timedelta:
    return timedelta(days=n)


async def add_consent(
    engine: AsyncEngine,
    user_id: int,
    channel: str,
    *,
    given_at: datetime = datetime(2025, 1, 1, 9, 0),
    withdrawn_at: datetime | None = None,
) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(replica.consents).values(
                user_id=user_id, channel=channel, source="web_form",
                wording=f"test consent to {channel}", given_at=given_at,
                withdrawn_at=withdrawn_at,
            )
        )  # fmt: skip
        return int(result.inserted_primary_key[0])  # type: ignore[index]


async def withdraw_consents(engine: AsyncEngine, user_id: int, channel: str, at: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(replica.consents)
            .where(replica.consents.c.user_id == user_id, replica.consents.c.channel == channel)
            .values(withdrawn_at=at)
        )
