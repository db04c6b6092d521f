"""The replay's statistics (`domain.scoring_evaluation`) on a fixed synthetic history: the
converters share a trait one set of scores rewards, so that ordering's top k holds more
converters, with a bootstrap interval above 0; the reverse is "lower"; equal orderings and a
one-day range are "no evidence". And the facts rewound to the contact."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from domain.scoring_evaluation import (
    LaterConversion,
    ReplayedContact,
    as_at_contact,
    evaluate,
    top_k_rate,
)
from schemas.attribution import ConversionKind
from schemas.enums import Queue
from schemas.outreach import ClaimantFacts, ClaimFact, OutreachPause, RequirementFact

CALLED = datetime(2030, 5, 6, 11, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def history(seed: int = 14, contacts: int = 1500, days: int = 10) -> list[ReplayedContact]:
    """A third of claimants have the trait; they convert at 30 %, the others at 5 %. The
    "rewarding" scores add 20 points for the trait; both add the same noise."""
    rng = np.random.default_rng(seed)
    found = []
    for user_id in range(1, contacts + 1):
        trait = bool(rng.random() < 1 / 3)
        converted = bool(rng.random() < (0.30 if trait else 0.05))
        noise = float(rng.integers(0, 10))
        found.append(
            ReplayedContact(
                user_id=user_id,
                queue=Queue.UNSIGNED if user_id % 3 else Queue.OUTSTANDING,
                day=date(2030, 5, 1) + (user_id % days) * DAY,
                current=noise,
                new=noise + (20.0 if trait else 0.0),
                converted=converted,
            )
        )
    return found


def test_top_k_shares_the_places_of_a_tie() -> None:
    scores = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    converted = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    # the 3 is in; one place left among three tied 2s, one of which converted: 1/3 of it
    assert top_k_rate(scores, converted, 2) == pytest.approx((1 + 1 / 3) / 2)
    assert top_k_rate(scores, converted, 1) == 1.0
    assert top_k_rate(scores, converted, 5) == pytest.approx(2 / 5)
    # along the last axis, row by row
    rows = top_k_rate(np.stack([scores, -scores]), np.stack([converted, converted]), 1)
    assert list(rows) == [1.0, 0.0]


def test_the_rules_that_reward_the_converters_trait_rank_them_higher() -> None:
    found = evaluate(history())
    overall = found.overall
    assert overall.contacts == 1500
    assert overall.k == 150  # 1500 contacts over 10 days
    assert overall.lift is not None and overall.low is not None and overall.high is not None
    assert overall.new_rate is not None and overall.current_rate is not None
    assert overall.new_rate > overall.current_rate
    assert 0 < overall.low < overall.lift < overall.high
    assert overall.verdict.startswith("NEW ranks converters higher: lift +")
    unsigned = next(q for q in found.queues if q.name == "unsigned")
    assert unsigned.k == 100 and unsigned.lift is not None and unsigned.lift > 0
    callback = next(q for q in found.queues if q.name == "callback")
    assert callback.contacts == 0 and callback.verdict.startswith("no evidence")
    assert evaluate(history()) == found  # a fixed seed: the same interval every run


def test_the_worse_rules_rank_them_lower() -> None:
    swapped = [replace(c, current=c.new, new=c.current) for c in history()]
    overall = evaluate(swapped).overall
    assert overall.high is not None and overall.high < 0
    assert overall.verdict.startswith("NEW ranks converters lower: lift -")


def test_the_same_order_is_no_evidence_of_a_difference() -> None:
    same = [replace(c, new=c.current + 5) for c in history()]  # shifted, same order
    overall = evaluate(same).overall
    assert overall.lift == 0.0
    assert overall.verdict.startswith("no evidence of a difference: lift +0.0 pp")


def test_a_one_day_range_cannot_tell_the_orders_apart() -> None:
    overall = evaluate(history(days=1)).overall
    assert overall.lift is None
    assert overall.verdict == (
        "no evidence of a difference: k covers every contact (1 day): use a longer range"
    )


def test_no_converter_is_no_evidence() -> None:
    none = [replace(c, converted=False) for c in history(contacts=200)]
    assert evaluate(none).overall.verdict == "no evidence of a difference: no contact converted"


# --- the facts rewound to the contact -----------------------------------------------------------


def facts(**changes: object) -> ClaimantFacts:
    done = [RequirementFact(11, "id", "RECEIVED"), RequirementFact(12, "bank", "APPROVED")]
    base = ClaimantFacts(
        user_id=9,
        is_enabled=True,
        status="active",
        signed=True,
        age_years=60,
        is_vulnerable=False,
        phone_key="k",
        preferred_call_start=None,
        preferred_call_end=None,
        claims=[ClaimFact(1, "Santander", "complete", CALLED - 40 * DAY, None, done)],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_signature_after_the_call_is_undone() -> None:
    signed_later = [LaterConversion(ConversionKind.SIGNED, CALLED + DAY)]
    now = facts(claims=[ClaimFact(1, "Santander", "new", CALLED - 40 * DAY)], opted_out=True)
    rewound = as_at_contact(now, Queue.UNSIGNED, CALLED, signed_later)
    assert rewound is not None
    assert not rewound.signed and not rewound.opted_out
    assert now.signed and now.opted_out  # the facts read today are left as they are


def test_a_document_received_after_the_call_is_pending_again() -> None:
    later = [
        LaterConversion(ConversionKind.DOCUMENTS, CALLED + DAY, requirement_id=11),
        LaterConversion(ConversionKind.DOCUMENTS, CALLED - DAY, requirement_id=12),  # before
    ]
    rewound = as_at_contact(
        facts(paused=OutreachPause(1, "hold", CALLED)), Queue.OUTSTANDING, CALLED, later
    )
    assert rewound is not None
    statuses = {r.requirement_id: r.status for r in rewound.claims[0].requirements}
    assert statuses == {11: "PENDING", 12: "APPROVED"}
    assert rewound.paused is None and rewound.signed


def test_a_contact_that_cannot_be_rewound_is_not_replayed() -> None:
    # outstanding, but nothing the dialler knows of was pending then
    assert as_at_contact(facts(), Queue.OUTSTANDING, CALLED, []) is None
    # unsigned, but every claim is complete
    assert as_at_contact(facts(), Queue.UNSIGNED, CALLED, []) is None
    assert as_at_contact(facts(status="deleted"), Queue.CALLBACK, CALLED, []) is None


def test_a_callback_contact_was_due_when_called() -> None:
    booked_since = facts(callback_at=CALLED + 3 * DAY)
    rewound = as_at_contact(booked_since, Queue.CALLBACK, CALLED, [])
    assert rewound is not None and rewound.callback_at == CALLED
    other = as_at_contact(
        facts(callback_at=CALLED - DAY, claims=[ClaimFact(1, "HSBC", "new", CALLED)]),
        Queue.UNSIGNED,
        CALLED,
        [],
    )
    assert other is not None and other.callback_at is None
