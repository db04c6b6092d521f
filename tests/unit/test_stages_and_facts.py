"""The seed's queue definitions as a pure function, every transition between stages, and
how change events and outcomes update a claimant's facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.dispositions import Disposition
from domain.facts import apply_disposition, apply_event, needs_reload, wrong_number_in_force
from domain.stages import derive_stage
from schemas.outreach import (
    ChangeEvent,
    ChangeKind,
    ClaimantFacts,
    ClaimFact,
    RequirementFact,
    Stage,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def facts(stage: Stage) -> ClaimantFacts:
    """A claimant who is in `stage` at NOW."""
    claimant = ClaimantFacts(
        consent_channels=["live_call"],
        user_id=1, is_enabled=True, status="active", signed=stage is not Stage.UNSIGNED,
        age_years=60, is_vulnerable=False, phone_key="k", preferred_call_start=None,
        preferred_call_end=None,
        claims=[ClaimFact(1, "Lloyds", "in_progress", NOW - timedelta(days=30),
                          requirements=[RequirementFact(10, "photo_id", "PENDING")])],
    )  # fmt: skip
    if stage is Stage.CALLBACK:
        claimant.callback_at = NOW - timedelta(minutes=5)
    if stage is Stage.DONE:
        claimant.claims[0].requirements[0].status = "RECEIVED"
    return claimant


def event(kind: ChangeKind, at: datetime = NOW, **fields: object) -> ChangeEvent:
    return ChangeEvent(f"{kind}-{at.timestamp()}", kind, 1, at, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("stage", list(Stage))
def test_each_stage_is_derived(stage: Stage) -> None:
    assert derive_stage(facts(stage), NOW) is stage


def _move(claimant: ClaimantFacts, target: Stage) -> None:
    """Change the facts the way the main app or an agent would to reach `target`."""
    requirement = claimant.claims[0].requirements[0]
    if target is Stage.CALLBACK:
        claimant.callback_at = NOW - timedelta(minutes=1)
        return
    claimant.callback_at = None
    if target is Stage.UNSIGNED:
        apply_event(claimant, event(ChangeKind.SIGNATURE_REMOVED))
    elif target is Stage.OUTSTANDING:
        apply_event(claimant, event(ChangeKind.SIGNATURE_ADDED))
        requirement.status = "PENDING"
    else:
        apply_event(claimant, event(ChangeKind.SIGNATURE_ADDED))
        apply_event(
            claimant,
            event(ChangeKind.REQUIREMENT_CHANGED, claim_id=1, requirement_id=10,
                  requirement_status="RECEIVED"),
        )  # fmt: skip


@pytest.mark.parametrize("source", list(Stage))
@pytest.mark.parametrize("target", list(Stage))
def test_every_transition(source: Stage, target: Stage) -> None:
    claimant = facts(source)
    _move(claimant, target)
    assert derive_stage(claimant, NOW) is target


def test_priority_is_configurable() -> None:
    both = facts(Stage.UNSIGNED)
    both.callback_at = NOW - timedelta(hours=1)
    assert derive_stage(both, NOW) is Stage.CALLBACK
    order = [Stage.UNSIGNED, Stage.OUTSTANDING, Stage.CALLBACK]
    assert derive_stage(both, NOW, order) is Stage.UNSIGNED


def test_seed_definitions_edge_cases() -> None:
    inactive = facts(Stage.UNSIGNED)
    inactive.status = "inactive"
    assert derive_stage(inactive, NOW) is Stage.DONE  # unsigned excludes inactive users
    complete = facts(Stage.UNSIGNED)
    complete.claims[0].status = "complete"
    complete.claims[0].requirements.clear()
    assert derive_stage(complete, NOW) is Stage.DONE  # needs a claim that is not complete
    future = facts(Stage.DONE)
    future.callback_at = NOW + timedelta(hours=1)
    assert derive_stage(future, NOW) is Stage.DONE  # a callback counts once it is due
    disabled = facts(Stage.CALLBACK)
    disabled.is_enabled = False
    assert derive_stage(disabled, NOW) is Stage.DONE


def test_older_events_never_regress_a_fact() -> None:
    claimant = facts(Stage.OUTSTANDING)
    newer = event(ChangeKind.REQUIREMENT_CHANGED, NOW, claim_id=1, requirement_id=10,
                  requirement_status="RECEIVED")  # fmt: skip
    older = event(ChangeKind.REQUIREMENT_CHANGED, NOW - timedelta(seconds=1), claim_id=1,
                  requirement_id=10, requirement_status="PENDING")  # fmt: skip
    assert apply_event(claimant, newer)
    assert not apply_event(claimant, older)
    assert claimant.claims[0].requirements[0].status == "RECEIVED"
    # a different column of the user row is not blocked by the requirement's version
    assert apply_event(claimant, event(ChangeKind.PHONE_CHANGED, NOW - timedelta(hours=1),
                                       phone_key="new"))  # fmt: skip
    assert claimant.phone_key == "new"


def test_new_claims_and_requirements_are_added() -> None:
    claimant = facts(Stage.DONE)
    apply_event(claimant, event(ChangeKind.REQUIREMENT_ADDED, claim_id=2, requirement_id=20,
                                requirement_type="bank_statements", requirement_status="PENDING",
                                lender="Barclays"))  # fmt: skip
    assert [c.claim_id for c in claimant.claims] == [1, 2]
    assert claimant.claims[1].lender == "Barclays"
    assert derive_stage(claimant, NOW) is Stage.OUTSTANDING


def test_an_opt_out_event_asks_for_the_recorded_state() -> None:
    """The dialler DB holds the opt-out state, the latest event per channel (a START after a
    STOP lifts it): an OPTED_OUT event changes no fact itself, it asks for a reload."""
    claimant = facts(Stage.OUTSTANDING)
    opt_out = event(ChangeKind.OPTED_OUT, reason="sms_stop")
    assert apply_event(claimant, opt_out)
    assert not claimant.opted_out
    assert needs_reload([opt_out]) and needs_reload([event(ChangeKind.REFRESH)])
    assert not needs_reload([event(ChangeKind.SIGNATURE_ADDED)])
    claimant.opted_out = True  # what the reload found
    for kind in (ChangeKind.SIGNATURE_ADDED, ChangeKind.ENABLED_CHANGED):
        apply_event(claimant, event(kind, NOW + timedelta(days=1), is_enabled=True))
    assert derive_stage(claimant, NOW) is Stage.DONE


def test_a_wrong_number_holds_until_the_phone_number_changes() -> None:
    claimant = facts(Stage.UNSIGNED)
    assert not wrong_number_in_force(claimant)
    apply_disposition(claimant, Disposition.WRONG_NUMBER, NOW)
    assert wrong_number_in_force(claimant)
    assert derive_stage(claimant, NOW) is Stage.UNSIGNED  # still to chase, on another number
    later = NOW + timedelta(minutes=5)
    apply_event(claimant, event(ChangeKind.PHONE_CHANGED, later, phone_key="new"))
    assert not wrong_number_in_force(claimant)
    # the main app puts the reported number back: it is still the number reported wrong
    apply_event(claimant, event(ChangeKind.PHONE_CHANGED, later + timedelta(1), phone_key="k"))
    assert wrong_number_in_force(claimant)
    apply_event(claimant, event(ChangeKind.PHONE_CHANGED, later + timedelta(2), phone_key=None))
    assert not wrong_number_in_force(claimant)  # no number at all: another reason applies


@pytest.mark.parametrize(
    ("disposition", "check"),
    [
        (Disposition.DO_NOT_CALL, lambda f: f.opted_out),
        (Disposition.DECEASED, lambda f: f.deceased),
        (Disposition.WRONG_NUMBER, lambda f: f.wrong_phone_key == f.phone_key == "k"),
        (Disposition.CALLBACK_REQUESTED, lambda f: f.callback_at == NOW + timedelta(days=1)),
        (Disposition.NO_ANSWER, lambda f: f.callback_at is None),  # honoured the due callback
    ],
)
def test_disposition_effects(disposition: Disposition, check: object) -> None:
    claimant = facts(Stage.CALLBACK)
    apply_disposition(claimant, disposition, NOW, NOW + timedelta(days=1), owner_agent_id=3)
    assert callable(check) and check(claimant)
