"""The replica's one reader (adapters.replica_reader) against a real MariaDB: the reads that
the outreach activities, SMS conversations and the calls page will move onto, and the
local writer's marker change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.replica_reader import (
    ClaimantName,
    ContactDetails,
    LocalReplicaWriter,
    ReplicaReader,
)
from tests.factories import add_claimant, next_id


async def test_a_claimants_facts_rows_in_claim_then_requirement_order(
    replica: AsyncEngine,
) -> None:
    user_id = await add_claimant(replica, signed=True, pending=2)
    rows = await ReplicaReader(replica).claimant_with_claims(user_id)

    assert rows.user is not None and rows.user.id == user_id
    assert [(r.id, r.requirement_id, r.lender) for r in rows.claims] == [
        (user_id, user_id * 10, "Santander"),
        (user_id, user_id * 10 + 1, "Santander"),
    ]
    missing = await ReplicaReader(replica).claimant_with_claims(next_id())
    assert missing.user is None and list(missing.claims) == []


async def test_contact_details_names_and_numbers(replica: AsyncEngine) -> None:
    number = f"+4477009{next_id() % 100000:05d}"
    user_id = await add_claimant(replica, phone=number)
    reader = ReplicaReader(replica)

    assert await reader.phone_number(user_id) == number
    assert await reader.contact_details(user_id) == ContactDetails(
        number, f"t{user_id}@example.com", "Test"
    )
    assert await reader.claimant_names([user_id, user_id]) == {
        user_id: ClaimantName(user_id, "Test", f"Claimant{user_id}", number)
    }
    assert await reader.user_ids_with_number(["07700900000", number]) == [user_id]
    assert await reader.user_ids_with_number([]) == []
    unknown = next_id()
    assert await reader.phone_number(unknown) is None
    assert await reader.contact_details(unknown) is None
    assert await reader.claimant_names([]) == {}


async def test_the_local_writer_changes_a_signature_the_reader_sees(replica: AsyncEngine) -> None:
    user_id = await add_claimant(replica, signed=False)
    reader = ReplicaReader(replica)
    assert await reader.signature_files([user_id]) == {user_id: None}

    await LocalReplicaWriter(replica).set_signature_file(user_id, 900_000_000 + user_id)
    assert await reader.signature_files([user_id]) == {user_id: 900_000_000 + user_id}
    owners = await reader.claim_owners([user_id, next_id()])
    assert owners == {user_id: user_id}  # factories give the claim the claimant's id
