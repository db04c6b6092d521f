"""The demo-data generator: deterministic, realistic, consistent, in the product's proportions."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from demo.data import DEMO_CALLBACK_MARKER, OUTWARD_CODES, DemoData, generate
from schemas.enums import CallbackStatus, ClaimStatus, RequirementStatus, UserStatus

NOW = datetime(2026, 3, 2, 10, 30, 15, tzinfo=UTC)
USERS = 3_000


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(USERS, seed=2026, now=NOW)


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _seed_queues(data: DemoData) -> dict[str, set[int]]:
    """The seed's three queue queries (and their denominator), over the rows in memory."""
    owner = {c["id"]: c["user_id"] for c in data.claims}
    open_claims = {c["user_id"] for c in data.claims if c["status"] != ClaimStatus.COMPLETE}
    pending = {
        owner[r["claim_id"]]
        for r in data.claim_requirements
        if r["status"] == RequirementStatus.PENDING
    }
    active = {
        u["id"]
        for u in data.users
        if u["is_enabled"] and u["status"] != UserStatus.INACTIVE and u["id"] in open_claims
    }
    return {
        "active": active,
        "unsigned": {u["id"] for u in data.users if u["current_signature_file_id"] is None}
        & active,
        "outstanding": {
            u["id"]
            for u in data.users
            if u["current_signature_file_id"] is not None and u["is_enabled"] and u["id"] in pending
        },
    }


def test_same_seed_gives_identical_data(data: DemoData) -> None:
    assert generate(USERS, seed=2026, now=NOW) == data


def test_different_seeds_differ(data: DemoData) -> None:
    other = generate(USERS, seed=2027, now=NOW)
    assert other.users != data.users
    assert other.claims != data.claims


def test_sizes_scale_with_users(data: DemoData) -> None:
    counts = data.counts()
    assert counts["users"] == USERS
    assert 2.8 <= counts["claims"] / USERS <= 3.2
    assert 3.7 <= counts["claim_requirements"] / USERS <= 4.3
    assert 0.01 * USERS <= counts["callbacks"] <= 0.02 * USERS


def test_ids_are_explicit_and_contiguous(data: DemoData) -> None:
    for rows in (data.lenders, data.users, data.claims, data.claim_requirements):
        assert [row["id"] for row in rows] == list(range(1, len(rows) + 1))


def test_referential_integrity(data: DemoData) -> None:
    users = {u["id"]: u for u in data.users}
    lenders = {lender["id"] for lender in data.lenders}
    claims = {c["id"]: c for c in data.claims}
    assert all(c["user_id"] in users and c["lender_id"] in lenders for c in data.claims)
    assert all(r["claim_id"] in claims for r in data.claim_requirements)
    for callback in data.callbacks:
        user = users[callback["user_id"]]
        assert user["is_enabled"] and user["status"] != UserStatus.INACTIVE


def test_requirement_types_are_distinct_per_claim(data: DemoData) -> None:
    per_claim = Counter((r["claim_id"], r["type"]) for r in data.claim_requirements)
    assert max(per_claim.values()) == 1


def test_ages_are_18_to_90_and_mostly_35_to_75(data: DemoData) -> None:
    ages = [_age(u["date_of_birth"], NOW.date()) for u in data.users]
    assert min(ages) >= 18
    assert max(ages) <= 90
    assert sum(35 <= age <= 75 for age in ages) / len(ages) > 0.7


def test_phone_numbers_are_unique_uk_mobiles(data: DemoData) -> None:
    phones = [u["phone_number"] for u in data.users]
    assert all(re.fullmatch(r"\+447\d{9}", phone) for phone in phones)
    assert len(set(phones)) == len(phones)
    assert not any(phone.startswith("+447700900") for phone in phones)  # Ofcom drama range


def test_emails_and_postcodes_look_british(data: DemoData) -> None:
    emails = [u["email"] for u in data.users if u["email"] is not None]
    assert len(emails) > 0.95 * USERS
    assert len(set(emails)) == len(emails)
    assert all(re.fullmatch(r"[a-z0-9._]+@[a-z.]+\.(com|net|co\.uk)", e) for e in emails)
    for user in data.users:
        outward, inward = user["postcode"].split(" ")
        assert outward in OUTWARD_CODES
        assert re.fullmatch(r"\d[ABD-HJLNP-UW-Z]{2}", inward)


def test_statuses_come_from_the_enums(data: DemoData) -> None:
    assert {u["status"] for u in data.users} == {s.value for s in UserStatus}
    assert {c["status"] for c in data.claims} == {s.value for s in ClaimStatus}
    assert {r["status"] for r in data.claim_requirements} == {s.value for s in RequirementStatus}


def test_lenders_are_real_uk_lenders(data: DemoData) -> None:
    names = {lender["name"] for lender in data.lenders}
    assert {"Santander", "Lloyds", "Barclays", "Black Horse", "MotoNovo", "Vanquis"} <= names
    used = Counter(c["lender_id"] for c in data.claims)
    assert len(used) == len(data.lenders)


def test_queue_proportions_match_the_seed(data: DemoData) -> None:
    queues = _seed_queues(data)
    active = len(queues["active"])
    assert 0.15 <= len(queues["unsigned"]) / active <= 0.20
    assert 0.60 <= len(queues["outstanding"]) / active <= 0.70


def test_some_users_are_disabled_inactive_or_vulnerable(data: DemoData) -> None:
    disabled = sum(not u["is_enabled"] for u in data.users) / USERS
    inactive = sum(u["status"] == UserStatus.INACTIVE for u in data.users) / USERS
    vulnerable = sum(u["is_vulnerable"] for u in data.users) / USERS
    assert 0.01 <= disabled <= 0.06
    assert 0.02 <= inactive <= 0.08
    assert 0.015 <= vulnerable <= 0.05


def test_preferred_windows_are_rare_and_ordered(data: DemoData) -> None:
    windows = [
        (u["preferred_call_start"], u["preferred_call_end"])
        for u in data.users
        if u["preferred_call_start"] is not None
    ]
    assert 0.06 * USERS <= len(windows) <= 0.14 * USERS
    assert all(start < end for start, end in windows)


def test_timestamps_span_about_18_months_and_are_ordered(data: DemoData) -> None:
    clock = NOW.replace(tzinfo=None)
    earliest = clock - timedelta(days=550)
    users = {u["id"]: u for u in data.users}
    claims = {c["id"]: c for c in data.claims}
    for row in (*data.users, *data.claims, *data.claim_requirements):
        assert earliest <= row["created_at"] <= row["updated_at"] <= clock
    assert all(c["created_at"] >= users[c["user_id"]]["created_at"] for c in data.claims)
    assert all(
        r["created_at"] >= claims[r["claim_id"]]["created_at"] for r in data.claim_requirements
    )
    assert min(u["created_at"] for u in data.users) < clock - timedelta(days=500)


def test_callbacks_are_pending_some_due_some_future(data: DemoData) -> None:
    due = [cb for cb in data.callbacks if cb["scheduled_for"] <= NOW]
    assert 0 < len(due) < len(data.callbacks)
    for callback in data.callbacks:
        assert callback["status"] == CallbackStatus.PENDING
        assert callback["scheduled_for"].tzinfo is not None
        assert callback["created_at"] <= min(callback["scheduled_for"], NOW)
        assert callback["notes"].startswith(DEMO_CALLBACK_MARKER)
    assert len({cb["user_id"] for cb in data.callbacks}) == len(data.callbacks)


@pytest.mark.parametrize("users", [1, 2, 10, 57])
def test_tiny_sizes_work(users: int) -> None:
    small = generate(users, now=NOW)
    assert len(small.users) == users
    assert len(small.callbacks) >= 1


def test_rejects_naive_now_and_no_users() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, now=NOW)
