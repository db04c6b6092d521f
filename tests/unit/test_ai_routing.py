"""The routing policy (domain.ai_routing): who makes the next contact, a person or the AI,
by which channel, and why; and its place in the assessment and the task's shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ai_routing import VULNERABLE, ai_share_draw, route_contact
from domain.assessment import assess, task_shape
from domain.consent import NO_AUTOMATED_CALL_CONSENT, NO_SMS_CONSENT, channel_refusals
from domain.rules import AiQueuePolicy, AiRules, DiallerRules, RulesError, parse_rules
from schemas.ai import AiAvailability, AiChannel, AiHandoff, HandoffReason
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import ClaimantFacts, ClaimFact, ContactHistory, RequirementFact, Stage

NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)  # a Wednesday, inside the calling window
ON_DUTY = AiAvailability(agent_id=7, voice_possible=True, sms_possible=True)
ALL = (ConsentChannel.LIVE_CALL, ConsentChannel.AUTOMATED_CALL, ConsentChannel.SMS)


def _facts(*channels: ConsentChannel, vulnerable: bool = False) -> ClaimantFacts:
    return ClaimantFacts(
        user_id=41, is_enabled=True, status="active", signed=True, age_years=60,
        is_vulnerable=vulnerable, phone_key="k", preferred_call_start=None,
        preferred_call_end=None,
        claims=[
            ClaimFact(1, "Lloyds", "in_progress", NOW - timedelta(days=30),
                      requirements=[RequirementFact(9, "ID_DOCUMENT", "PENDING")])
        ],
        consent_channels=[c.value for c in channels], tps_screened_at=NOW,
    )  # fmt: skip


def _route(
    facts: ClaimantFacts,
    *,
    rules: AiRules | None = None,
    available: AiAvailability = ON_DUTY,
    queue: Queue = Queue.OUTSTANDING,
    owner: int | None = None,
    attempts: int = 0,
) -> tuple[bool, AiChannel | None, str]:
    refusals = channel_refusals(facts, queue, DiallerRules().compliance, NOW)
    routing = route_contact(
        facts, queue, refusals, owner, attempts, rules or AiRules(), available, NOW
    )
    return routing.to_ai, routing.channel, routing.reason


def test_a_consenting_claimant_gets_an_automated_call_from_the_agent_on_duty() -> None:
    to_ai, channel, reason = _route(_facts(*ALL))
    assert (to_ai, channel) == (True, AiChannel.VOICE)
    assert reason == "AI agent by an automated call"


def test_no_automated_call_consent_means_sms_only_and_says_why() -> None:
    to_ai, channel, reason = _route(_facts(ConsentChannel.LIVE_CALL, ConsentChannel.SMS))
    assert (to_ai, channel) == (True, AiChannel.SMS)
    assert NO_AUTOMATED_CALL_CONSENT in reason


def test_neither_automated_call_nor_sms_consent_means_a_person() -> None:
    to_ai, channel, reason = _route(_facts(ConsentChannel.LIVE_CALL))
    assert (to_ai, channel) == (False, None)
    assert NO_AUTOMATED_CALL_CONSENT in reason and NO_SMS_CONSENT in reason


def test_a_vulnerable_claimant_is_never_the_ais_whatever_the_rules() -> None:
    greedy = AiRules(
        queues={q: AiQueuePolicy(enabled=True, share=1.0, cap_per_hour=10_000) for q in Queue}
    )
    assert _route(_facts(*ALL, vulnerable=True), rules=greedy) == (False, None, VULNERABLE)


def test_a_complaint_or_bereavement_raised_with_the_ai_keeps_it_away_for_good() -> None:
    facts = _facts(*ALL)
    facts.ai_excluded = "a complaint, bereavement or vulnerability raised with the AI"
    to_ai, _, reason = _route(facts)
    assert not to_ai and reason.startswith("people only: a complaint")


def test_a_hand_off_routes_the_next_attempt_to_a_person_with_the_summary() -> None:
    facts = _facts(*ALL)
    facts.ai_handoff = AiHandoff("asked for a person", HandoffReason.ASKED_FOR_PERSON, NOW, 7)
    to_ai, _, reason = _route(facts)
    assert not to_ai and "asked for a person" in reason


def test_a_personal_callback_held_for_its_agent_is_a_persons() -> None:
    assert _route(_facts(*ALL), owner=3)[0] is False


def test_no_agent_on_duty_or_a_disabled_queue_means_people() -> None:
    nobody = AiAvailability(unavailable_reason="no AI agent on duty")
    assert _route(_facts(*ALL), available=nobody) == (False, None, "no AI agent on duty")
    callback = _route(_facts(*ALL), queue=Queue.CALLBACK)  # off by default: a person's promise
    assert callback == (False, None, "AI not enabled for the callback queue")


def test_the_hourly_cap_sends_the_rest_to_people() -> None:
    rules = AiRules(queues={Queue.OUTSTANDING: AiQueuePolicy(enabled=True, cap_per_hour=5)})
    under = AiAvailability(agent_id=7, voice_possible=True, started_last_hour={"outstanding": 4})
    at_cap = AiAvailability(agent_id=7, voice_possible=True, started_last_hour={"outstanding": 5})
    assert _route(_facts(*ALL), rules=rules, available=under)[0] is True
    to_ai, _, reason = _route(_facts(*ALL), rules=rules, available=at_cap)
    assert not to_ai and reason == "AI cap reached: 5 of 5 outstanding contacts this hour"


def test_switched_off_voice_falls_back_to_sms() -> None:
    texts_only = AiAvailability(agent_id=7, voice_possible=False, sms_possible=True)
    to_ai, channel, reason = _route(_facts(*ALL), available=texts_only)
    assert (to_ai, channel) == (True, AiChannel.SMS)
    assert "switched off" in reason


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10_000))
def test_the_share_draw_is_stable_and_in_range(user_id: int, attempts: int) -> None:
    draw = ai_share_draw(user_id, attempts)
    assert 0 <= draw < 1 and draw == ai_share_draw(user_id, attempts)


def test_the_share_splits_claimants_close_to_the_rule() -> None:
    rules = AiRules(queues={Queue.OUTSTANDING: AiQueuePolicy(enabled=True, share=0.3)})
    taken = sum(
        route_contact(_facts(*ALL), Queue.OUTSTANDING, {}, None, attempt, rules, ON_DUTY, NOW).to_ai
        for attempt in range(2_000)
    )
    assert 540 <= taken <= 660  # 30 % of 2,000 within about 3 standard deviations


def test_the_assessment_explains_the_routing_and_marks_the_task() -> None:
    facts = _facts(*ALL)
    assessment = assess(facts, ContactHistory(), DiallerRules(), NOW, Stage.OUTSTANDING, ON_DUTY)
    assert assessment.routing is not None and assessment.routing.to_ai
    assert task_shape(assessment, None).ai_routed is True
    people = assess(facts, ContactHistory(), DiallerRules(), NOW, Stage.OUTSTANDING)
    assert people.routing is not None and not people.routing.to_ai
    assert task_shape(people, None).ai_routed is False


def test_a_hand_off_raises_the_priority_by_the_rules_boost() -> None:
    facts = _facts(*ALL)
    before = assess(facts, ContactHistory(), DiallerRules(), NOW, Stage.OUTSTANDING)
    facts.ai_handoff = AiHandoff("wants a person", HandoffReason.ASKED_FOR_PERSON, NOW, 7)
    after = assess(facts, ContactHistory(), DiallerRules(), NOW, Stage.OUTSTANDING)
    assert after.score == pytest.approx(before.score + DiallerRules().ai.handoff_boost)
    assert any(f.name == "ai_handoff" for f in after.factors)


def test_the_rules_file_refuses_a_bad_ai_section() -> None:
    with pytest.raises(RulesError, match=r"ai\.queues\.outstanding\.share"):
        parse_rules("[ai.queues.outstanding]\nshare = 1.5\n")
    with pytest.raises(RulesError, match=r"ai\.queues\.unsigned\.channels"):
        parse_rules('[ai.queues.unsigned]\nchannels = ["fax"]\n')
    with pytest.raises(RulesError, match="each channel at most once"):
        parse_rules('[ai.queues.unsigned]\nchannels = ["sms", "sms"]\n')
    with pytest.raises(RulesError, match=r"ai\.answering_machine"):
        parse_rules('[ai]\nanswering_machine = "shout"\n')


def test_the_routing_names_the_ai_task_queue_of_the_agent_on_duty() -> None:
    available = AiAvailability(agent_id=7, voice_possible=True, task_queue="ai-elsewhere")
    refusals: dict[str, str] = {}
    routing = route_contact(
        _facts(*ALL), Queue.OUTSTANDING, refusals, None, 0, AiRules(), available, NOW
    )
    assert (routing.ai_agent_id, routing.task_queue) == (7, "ai-elsewhere")
