"""Who may take a personal callback, and the rules file's grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.callback_routing import callback_hold, claim_refusal
from domain.rules import RulesError, parse_rules
from schemas.outreach import ClaimantFacts, Stage

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
OWNER, OTHER = 7, 8


def _facts(owner: int | None) -> ClaimantFacts:
    return ClaimantFacts(
        consent_channels=["live_call"],
        user_id=1, is_enabled=True, status="active", signed=True, age_years=60,
        is_vulnerable=False, phone_key="k", preferred_call_start=None, preferred_call_end=None,
        callback_at=NOW, callback_owner_agent_id=owner,
    )  # fmt: skip


def test_a_personal_callback_is_held_for_the_grace_period_after_it_is_due() -> None:
    hold = callback_hold(_facts(OWNER), Stage.CALLBACK, timedelta(minutes=15))
    assert hold is not None
    assert (hold.owner_agent_id, hold.held_until) == (OWNER, NOW + timedelta(minutes=15))


@pytest.mark.parametrize("stage", [Stage.UNSIGNED, Stage.OUTSTANDING, Stage.DONE])
def test_only_a_callback_task_is_held(stage: Stage) -> None:
    assert callback_hold(_facts(OWNER), stage, timedelta(minutes=15)) is None


def test_a_shared_callback_is_not_held() -> None:
    assert callback_hold(_facts(None), Stage.CALLBACK, timedelta(minutes=15)) is None


def test_another_agent_is_refused_while_held_and_the_owner_is_not() -> None:
    until = NOW + timedelta(minutes=5)
    assert claim_refusal(OWNER, until, OTHER, NOW) is not None
    assert claim_refusal(OWNER, until, OWNER, NOW) is None
    assert claim_refusal(OWNER, until, OTHER, until) is None  # the hold has ended
    assert claim_refusal(OWNER, until, OTHER, NOW, owner_away=True) is None
    assert claim_refusal(None, None, OTHER, NOW) is None


def test_the_grace_period_is_read_from_the_rules_file_and_bounded() -> None:
    assert parse_rules("").contact.personal_callback_grace == timedelta(minutes=15)
    rules = parse_rules("[contact]\npersonal_callback_grace = { minutes = 5 }\n")
    assert rules.contact.personal_callback_grace == timedelta(minutes=5)
    with pytest.raises(RulesError, match=r"contact\.personal_callback_grace"):
        parse_rules("[contact]\npersonal_callback_grace = { days = 2 }\n")
    with pytest.raises(RulesError, match=r"contact\.personal_callback_grace"):
        parse_rules('[contact]\npersonal_callback_grace = "soon"\n')
