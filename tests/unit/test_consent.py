"""Consent and TPS rules (domain.consent) and their effect on the assessment: who may be
offered to an agent, who may get an AI voice call, who may be texted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from domain.assessment import assess, task_shape
from domain.consent import (
    NO_AUTOMATED_CALL_CONSENT,
    NO_LIVE_CALL_CONSENT,
    NO_SMS_CONSENT,
    TPS_LISTED,
    TPS_UNSCREENED,
    ConsentEvent,
    channel_refusals,
    consented_channels,
    live_call_refusal,
    rescreen_at,
)
from domain.facts import apply_event
from domain.rules import ComplianceRules, DiallerRules, RulesError, parse_rules
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import (
    ChangeEvent,
    ChangeKind,
    ClaimantFacts,
    ClaimFact,
    ContactHistory,
    Stage,
)

NOW = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)  # a Wednesday, inside the calling window
LIVE = ConsentChannel.LIVE_CALL
STRICT = ComplianceRules()
OUTSTANDING_IS_SERVICE = ComplianceRules(service_contact_queues=[Queue.OUTSTANDING])


def _facts(
    *channels: ConsentChannel, listed: bool = False, screened: datetime | None = NOW
) -> ClaimantFacts:
    return ClaimantFacts(
        user_id=1, is_enabled=True, status="active", signed=True, age_years=60,
        is_vulnerable=False, phone_key="k", preferred_call_start=None, preferred_call_end=None,
        claims=[ClaimFact(1, "Lloyds", "in_progress", NOW - timedelta(days=30))],
        consent_channels=[c.value for c in channels], tps_listed=listed,
        tps_screened_at=screened,
    )  # fmt: skip


def _history() -> ContactHistory:
    return ContactHistory()


# --- folding grants and withdrawals ----------------------------------------------------------


def test_the_latest_event_per_channel_wins() -> None:
    day = timedelta(days=1)
    events = [
        ConsentEvent(LIVE, True, NOW - 10 * day),
        ConsentEvent(LIVE, False, NOW - 5 * day),  # withdrawn
        ConsentEvent(ConsentChannel.SMS, True, NOW - 10 * day),
        ConsentEvent(ConsentChannel.SMS, False, NOW - 5 * day),
        ConsentEvent(ConsentChannel.SMS, True, NOW - 1 * day),  # given again on a call
    ]
    assert consented_channels(events, NOW) == {"sms"}


def test_a_grant_from_the_future_does_not_count_yet_and_a_tie_is_a_withdrawal() -> None:
    assert consented_channels([ConsentEvent(LIVE, True, NOW + timedelta(seconds=1))], NOW) == set()
    tie = [ConsentEvent(LIVE, True, NOW), ConsentEvent(LIVE, False, NOW)]
    assert consented_channels(tie, NOW) == set()
    assert consented_channels(list(reversed(tie)), NOW) == set()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(ConsentChannel)),
            st.booleans(),
            st.integers(min_value=0, max_value=10_000),
        ),
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_the_order_records_arrive_in_never_matters(rows, rng) -> None:  # type: ignore[no-untyped-def]
    events = [ConsentEvent(c, g, NOW - timedelta(minutes=m)) for c, g, m in rows]
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert consented_channels(events, NOW) == consented_channels(shuffled, NOW)


# --- live calls: PECR 21A and the TPS --------------------------------------------------------


def test_strict_by_default_no_live_call_consent_means_no_call_in_any_queue() -> None:
    for queue in Queue:
        assert live_call_refusal(_facts(), queue, STRICT, NOW) == NO_LIVE_CALL_CONSENT
        assert live_call_refusal(_facts(LIVE), queue, STRICT, NOW) is None


def test_consent_overrides_a_tps_listing_and_a_stale_screening() -> None:
    facts = _facts(LIVE, listed=True, screened=None)
    assert live_call_refusal(facts, Queue.UNSIGNED, STRICT, NOW) is None
    assert rescreen_at(facts, Queue.UNSIGNED, STRICT) is None


def test_a_strict_refusal_of_a_listed_number_names_both_reasons() -> None:
    refusal = live_call_refusal(_facts(listed=True), Queue.UNSIGNED, STRICT, NOW)
    assert refusal == f"{NO_LIVE_CALL_CONSENT}; {TPS_LISTED}"


def test_service_contact_needs_no_consent_but_a_tps_listed_number_still_does() -> None:
    rules = OUTSTANDING_IS_SERVICE
    assert live_call_refusal(_facts(), Queue.OUTSTANDING, rules, NOW) is None
    assert live_call_refusal(_facts(listed=True), Queue.OUTSTANDING, rules, NOW) == TPS_LISTED
    # only the listed queue is service contact
    assert live_call_refusal(_facts(), Queue.UNSIGNED, rules, NOW) == NO_LIVE_CALL_CONSENT


def test_a_screening_older_than_the_limit_is_redone_before_the_number_is_offered() -> None:
    rules = OUTSTANDING_IS_SERVICE
    fresh = NOW - timedelta(days=27)
    stale = NOW - timedelta(days=28)
    assert live_call_refusal(_facts(screened=fresh), Queue.OUTSTANDING, rules, NOW) is None
    assert live_call_refusal(_facts(screened=stale), Queue.OUTSTANDING, rules, NOW) == (
        TPS_UNSCREENED
    )
    assert live_call_refusal(_facts(screened=None), Queue.OUTSTANDING, rules, NOW) == (
        TPS_UNSCREENED
    )
    assert rescreen_at(_facts(screened=fresh), Queue.OUTSTANDING, rules) == fresh + timedelta(
        days=28
    )


# --- other channels: PECR 19 and 22 -----------------------------------------------------------


def test_without_automated_call_consent_ai_voice_is_refused_and_sms_allowed() -> None:
    refusals = channel_refusals(_facts(LIVE, ConsentChannel.SMS), Queue.UNSIGNED, STRICT, NOW)
    assert refusals == {
        "automated_call": NO_AUTOMATED_CALL_CONSENT,
        "email": "no email consent (PECR 22)",
    }
    assert "sms" not in refusals
    assert channel_refusals(_facts(LIVE), Queue.UNSIGNED, STRICT, NOW)["sms"] == NO_SMS_CONSENT


# --- the assessment -----------------------------------------------------------------------------


def test_no_live_call_consent_means_no_task_with_the_reason() -> None:
    assessment = assess(_facts(), _history(), DiallerRules(), NOW, Stage.OUTSTANDING)
    assert assessment.not_before is None
    assert assessment.not_before_reason == NO_LIVE_CALL_CONSENT
    assert task_shape(assessment, None).queue is None
    offered = assess(_facts(LIVE), _history(), DiallerRules(), NOW, Stage.OUTSTANDING)
    assert offered.not_before == NOW
    assert task_shape(offered, None).queue == "outstanding"


def test_a_tps_listed_service_contact_is_not_offered_and_consent_lifts_it() -> None:
    rules = DiallerRules(compliance=OUTSTANDING_IS_SERVICE)
    listed = assess(_facts(listed=True), _history(), rules, NOW, Stage.OUTSTANDING)
    assert (listed.not_before, listed.not_before_reason) == (None, TPS_LISTED)
    consented = assess(_facts(LIVE, listed=True), _history(), rules, NOW, Stage.OUTSTANDING)
    assert consented.not_before == NOW


def test_the_calling_window_still_binds_a_consented_claimant() -> None:
    night = NOW.replace(hour=22)
    assessment = assess(_facts(LIVE), _history(), DiallerRules(), night, Stage.OUTSTANDING)
    assert assessment.not_before is not None and assessment.not_before > night


# --- the rules file ------------------------------------------------------------------------------


def test_the_compliance_rules_refuse_unsafe_values() -> None:
    for text, key in (
        ("[compliance]\nrecording_retention_months = 11", "recording_retention_months"),
        ('[compliance]\nservice_contact_queues = ["outstanding", "outstanding"]', "service"),
        ('[compliance]\nservice_contact_queues = ["marketing"]', "service_contact_queues"),
        ("[compliance]\ntps_screening_max_age = { days = 0 }", "tps_screening_max_age"),
    ):
        try:
            parse_rules(text)
        except RulesError as error:
            assert key in str(error)
        else:
            raise AssertionError(f"accepted: {text}")
    parsed = parse_rules('[compliance]\nservice_contact_queues = ["callback"]')
    assert parsed.compliance == ComplianceRules(service_contact_queues=[Queue.CALLBACK])


def test_a_new_phone_number_is_screened_before_it_is_offered() -> None:
    facts = _facts(screened=NOW - timedelta(days=1))
    rules = OUTSTANDING_IS_SERVICE
    assert rescreen_at(facts, Queue.OUTSTANDING, rules) == NOW + timedelta(days=27)
    apply_event(facts, ChangeEvent("e1", ChangeKind.PHONE_CHANGED, 1, NOW, phone_key="new"))
    assert facts.tps_screened_at is None
    assert rescreen_at(facts, Queue.OUTSTANDING, rules) is not None
    assert live_call_refusal(facts, Queue.OUTSTANDING, rules, NOW) == TPS_UNSCREENED
