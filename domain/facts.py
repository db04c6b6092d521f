"""Applying change events and call outcomes to a claimant's facts.

Pure functions over `ClaimantFacts`. Events are idempotent (the caller skips seen ids) and
ordered per entity by `occurred_at`: an event older than the last one applied to the same
user, claim or requirement is ignored, so out-of-order delivery never regresses a fact.

Two facts are the dialler's own record rather than the main app's, and are re-read from the
dialler DB whenever the facts are reloaded:

- the opt-out state, the latest event per channel (`domain.suppressions`): an OPTED_OUT event
  says "an opt-out was recorded, read the state again" (`needs_reload`), because a START
  recorded after the STOP must win however the signals arrive;
- a wrong number: the phone key the latest `wrong_number` outcome was recorded against. That
  number is not called for this claimant while it is their number; a phone change (the main
  app's CDC phone-hash event) to another number makes them callable again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.dispositions import Disposition, effect_of
from schemas.outreach import (
    ChangeEvent,
    ChangeKind,
    ClaimantFacts,
    ClaimFact,
    RequirementFact,
)

_USER_KINDS = {
    ChangeKind.SIGNATURE_ADDED,
    ChangeKind.SIGNATURE_REMOVED,
    ChangeKind.PHONE_CHANGED,
    ChangeKind.ENABLED_CHANGED,
    ChangeKind.USER_STATUS_CHANGED,
    ChangeKind.VULNERABILITY_CHANGED,
}


def entity_key(event: ChangeEvent) -> str:
    if event.kind in (ChangeKind.REQUIREMENT_ADDED, ChangeKind.REQUIREMENT_CHANGED):
        return f"requirement:{event.requirement_id}"
    if event.kind in (ChangeKind.CLAIM_ADDED, ChangeKind.CLAIM_STATUS_CHANGED):
        return f"claim:{event.claim_id}"
    # Field-level keys for the user row, so a late phone change cannot undo a newer
    # signature change (they are different columns of the same row).
    return f"user:{event.kind.value}"


def _claim(facts: ClaimantFacts, event: ChangeEvent) -> ClaimFact:
    for claim in facts.claims:
        if claim.claim_id == event.claim_id:
            return claim
    claim = ClaimFact(
        claim_id=event.claim_id or 0,
        lender=event.lender or "unknown",
        status=event.claim_status or "new",
        created_at=event.claim_created_at or event.occurred_at,
        estimated_value=event.claim_estimated_value,
    )
    facts.claims.append(claim)
    return claim


WRONG_NUMBER_REASON = "wrong number reported; waiting for a new phone number"
# Events that say "read the databases again" rather than carry a fact. RULES_CHANGED too:
# the reload reads the rules version in force (activities.outreach.load_facts), so the
# re-assessment after it uses the version just saved.
_RELOADS = {
    ChangeKind.REFRESH,
    ChangeKind.OPTED_OUT,
    ChangeKind.CONSENT_CHANGED,
    ChangeKind.RULES_CHANGED,
}


def needs_reload(events: Iterable[ChangeEvent]) -> bool:
    return any(event.kind in _RELOADS for event in events)


def wrong_number_in_force(facts: ClaimantFacts) -> bool:
    """The claimant's current number is the one last reported wrong for them."""
    return facts.phone_key is not None and facts.phone_key == facts.wrong_phone_key


def apply_event(facts: ClaimantFacts, event: ChangeEvent) -> bool:
    """Apply one event in place; False when it was older than what is already known."""
    if event.kind in _RELOADS:
        return True  # handled by the workflow: reload from the databases
    key = entity_key(event)
    last = facts.entity_versions.get(key)
    if last is not None and event.occurred_at < last:
        return False
    facts.entity_versions[key] = event.occurred_at

    match event.kind:
        case ChangeKind.SIGNATURE_ADDED:
            facts.signed = True
        case ChangeKind.SIGNATURE_REMOVED:
            facts.signed = False
        case ChangeKind.PHONE_CHANGED:
            if event.phone_key != facts.phone_key:
                # the screening was of the old number: the new one is screened on demand
                # (domain.consent.rescreen_at), before it can be offered
                facts.tps_listed, facts.tps_screened_at = False, None
            facts.phone_key = event.phone_key
        case ChangeKind.ENABLED_CHANGED:
            facts.is_enabled = bool(event.is_enabled)
        case ChangeKind.USER_STATUS_CHANGED:
            facts.status = event.user_status or facts.status
        case ChangeKind.VULNERABILITY_CHANGED:
            facts.is_vulnerable = bool(event.is_vulnerable)
        case ChangeKind.CLAIM_ADDED | ChangeKind.CLAIM_STATUS_CHANGED:
            claim = _claim(facts, event)
            claim.status = event.claim_status or claim.status
            claim.lender = event.lender or claim.lender
            if event.claim_estimated_value is not None:
                claim.estimated_value = event.claim_estimated_value
        case ChangeKind.REQUIREMENT_ADDED | ChangeKind.REQUIREMENT_CHANGED:
            claim = _claim(facts, event)
            _upsert_requirement(claim, event)
    return True


def _upsert_requirement(claim: ClaimFact, event: ChangeEvent) -> None:
    for requirement in claim.requirements:
        if requirement.requirement_id == event.requirement_id:
            requirement.status = event.requirement_status or requirement.status
            requirement.type = event.requirement_type or requirement.type
            return
    claim.requirements.append(
        RequirementFact(
            requirement_id=event.requirement_id or 0,
            type=event.requirement_type or "unknown",
            status=event.requirement_status or "PENDING",
        )
    )


def apply_disposition(
    facts: ClaimantFacts,
    disposition: Disposition,
    now: datetime,
    callback_at: datetime | None = None,
    owner_agent_id: int | None = None,
) -> None:
    """The outcome's effect on the facts (cooldowns come from the contact history)."""
    effect = effect_of(disposition)
    if effect.opt_out:
        facts.opted_out = True
    if disposition is Disposition.DECEASED:
        facts.deceased = True
    if effect.invalidates_phone:
        facts.wrong_phone_key = facts.phone_key  # until the phone number changes
    if effect.needs_callback_time:
        facts.callback_at = callback_at
        facts.callback_owner_agent_id = owner_agent_id
    elif facts.callback_at is not None and facts.callback_at <= now:
        # this call honoured the callback that was due
        facts.callback_at = None
        facts.callback_owner_agent_id = None
