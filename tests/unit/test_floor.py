"""The wallboard's rules (domain/floor.py): why a task waits, read from the reasons the rule
modules really write; where each task stands; the queues, the day's calls, the contact and
abandon rates with Ofcom's 3 % line; the agents by state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.abandoned_calls import abandon_rate
from domain.consent import live_call_refusal
from domain.contact_policy import earliest_contact
from domain.dispositions import Disposition
from domain.facts import WRONG_NUMBER_REASON
from domain.floor import (
    AgentSeen,
    CallGroup,
    Claimant,
    Place,
    Standing,
    TaskGroup,
    WaitReason,
    agents_on_floor,
    calls_today,
    day_start,
    over_the_line,
    place_of,
    queue_floors,
    reason_key,
    share,
    state_counts,
    wait_reason,
)
from domain.rules import DiallerRules
from schemas.enums import AgentState, Queue
from schemas.outreach import ClaimantFacts, ClaimFact, ContactHistory

RULES = DiallerRules()
# Tuesday 14 July 2026, 11:00 BST.
NOW = datetime(2026, 7, 14, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def facts(**changes: object) -> ClaimantFacts:
    base = ClaimantFacts(
        consent_channels=["live_call"],
        user_id=7,
        is_enabled=True,
        status="active",
        signed=False,
        age_years=70,
        is_vulnerable=False,
        phone_key="phone-hash-1",
        preferred_call_start=None,
        preferred_call_end=None,
        claims=[ClaimFact(1, "Santander", "new", NOW - 30 * DAY, 2500.0)],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reason_for(claimant: ClaimantFacts, history: ContactHistory, now: datetime = NOW) -> str:
    return earliest_contact(claimant, history, RULES, now)[1]


# --- why a task waits, from the reasons the rules write ----------------------------------------


@pytest.mark.parametrize(
    ("claimant", "history", "now", "expected"),
    [
        (
            facts(),
            ContactHistory(
                last_disposition=Disposition.NO_ANSWER.value, last_disposition_at=NOW - HOUR
            ),
            NOW,
            WaitReason.COOLDOWN,
        ),
        (
            facts(),
            ContactHistory(consecutive_failed_attempts=6, last_contact_at=NOW - HOUR),
            NOW,
            WaitReason.COOLDOWN,
        ),
        (facts(), ContactHistory(last_abandoned_at=NOW - HOUR), NOW, WaitReason.LOCKED),
        (facts(callback_at=NOW + 2 * HOUR), ContactHistory(), NOW, WaitReason.CALLBACK_SCHEDULED),
        (
            facts(),
            ContactHistory(attempts_today=3, attempts_7d=3, last_contact_at=NOW - HOUR),
            NOW,
            WaitReason.CONTACT_CAP,
        ),
        (
            facts(),
            ContactHistory(attempts_today=0, attempts_7d=10, last_contact_at=NOW - DAY),
            NOW,
            WaitReason.CONTACT_CAP,
        ),
        (
            facts(),
            ContactHistory(number_attempts_today=3, number_attempts_7d=3),
            NOW,
            WaitReason.CONTACT_CAP,
        ),
        # 22:30 BST: the legal window has closed
        (facts(), ContactHistory(), NOW + 11.5 * HOUR, WaitReason.OUTSIDE_WINDOW),
        (
            facts(preferred_call_start=time(18, 0), preferred_call_end=time(20, 0)),
            ContactHistory(),
            NOW,
            WaitReason.OUTSIDE_WINDOW,
        ),
        # a cooldown ending after the window closes: the cooldown is what the task waits for
        (
            facts(),
            ContactHistory(
                last_disposition=Disposition.NO_ANSWER.value,
                last_disposition_at=NOW + 8 * HOUR,
            ),
            NOW + 9 * HOUR,
            WaitReason.COOLDOWN,
        ),
        (facts(phone_key=None), ContactHistory(), NOW, WaitReason.NO_NUMBER),
    ],
)
def test_each_reason_the_contact_policy_writes_is_classified(
    claimant: ClaimantFacts, history: ContactHistory, now: datetime, expected: WaitReason
) -> None:
    reason = reason_for(claimant, history, now)
    assert wait_reason(reason) is expected, reason
    assert wait_reason(reason_key(reason)) is expected, reason  # as the database groups them


def test_reasons_are_compared_without_their_times_and_counts() -> None:
    """The database counts tasks per reason key: one per kind of reason, not per minute."""
    at_noon = ContactHistory(
        last_disposition=Disposition.NO_ANSWER.value, last_disposition_at=NOW - HOUR
    )
    at_one = replace(at_noon, last_disposition_at=NOW)
    first, second = reason_for(facts(), at_noon), reason_for(facts(), at_one)
    assert first != second and reason_key(first) == reason_key(second)
    assert reason_key("6 consecutive failed attempts: paused until 09:00") == (
        "consecutive failed attempts: paused until :"
    )
    assert wait_reason(reason_key(first)) is WaitReason.COOLDOWN


def test_the_compound_reason_is_classified_by_its_first_clause() -> None:
    history = ContactHistory(
        last_disposition=Disposition.NO_ANSWER.value, last_disposition_at=NOW + 8 * HOUR
    )
    reason = reason_for(facts(), history, NOW + 9 * HOUR)
    assert reason.startswith("cooldown after no_answer") and ", then calling window" in reason


def test_consent_and_tps_refusals_are_classified() -> None:
    compliance = RULES.compliance
    no_consent = live_call_refusal(facts(consent_channels=[]), Queue.UNSIGNED, compliance, NOW)
    listed = live_call_refusal(
        facts(consent_channels=[], tps_listed=True), Queue.UNSIGNED, compliance, NOW
    )
    service = compliance.model_copy(update={"service_contact_queues": [Queue.OUTSTANDING]})
    stale = live_call_refusal(facts(consent_channels=[]), Queue.OUTSTANDING, service, NOW)
    screened = facts(consent_channels=[], tps_listed=True, tps_screened_at=NOW - DAY)
    tps_only = live_call_refusal(screened, Queue.OUTSTANDING, service, NOW)
    assert no_consent and listed and stale and tps_only
    for reason in (no_consent, listed, stale, tps_only):
        assert wait_reason(reason_key(reason)) is wait_reason(reason)
    assert wait_reason(no_consent) is WaitReason.NO_CONSENT
    assert wait_reason(listed) is WaitReason.TPS  # no consent, and the number is listed
    assert wait_reason(stale) is WaitReason.TPS  # waiting for a re-screening
    assert wait_reason(tps_only) is WaitReason.TPS


@pytest.mark.parametrize(
    "reason",
    ["", "can call now (calling window open until 21:00)", "in no queue", "six consecutive"],
)
def test_a_reason_not_recognised_is_other(reason: str) -> None:
    assert wait_reason(reason) is WaitReason.OTHER


def test_wrong_number_waits_for_a_new_number() -> None:
    assert wait_reason(WRONG_NUMBER_REASON) is WaitReason.NO_NUMBER


# --- where a task stands ----------------------------------------------------------------------

COOLDOWN = "cooldown after no_answer until 14:30"
WAITING = Standing.WAITING
NO_CONSENT = str(
    live_call_refusal(facts(consent_channels=[]), Queue.UNSIGNED, RULES.compliance, NOW)
)


@pytest.mark.parametrize(
    ("status", "due", "held", "reason", "expected"),
    [
        ("claimed", True, False, "", Place(Standing.CLAIMED)),
        ("claimed", False, True, COOLDOWN, Place(Standing.CLAIMED)),
        ("ready", True, False, "", Place(Standing.CALLABLE)),
        ("ready", True, False, COOLDOWN, Place(Standing.CALLABLE)),  # the cooldown has passed
        ("ready", True, True, "", Place(Standing.WAITING, WaitReason.HELD)),
        ("ready", False, False, COOLDOWN, Place(Standing.WAITING, WaitReason.COOLDOWN)),
        ("ready", False, True, COOLDOWN, Place(Standing.WAITING, WaitReason.COOLDOWN)),
        ("withdrawn", True, False, NO_CONSENT, Place(Standing.WAITING, WaitReason.NO_CONSENT)),
        ("withdrawn", True, False, WRONG_NUMBER_REASON, Place(WAITING, WaitReason.NO_NUMBER)),
        ("withdrawn", True, False, "opted out: outreach stopped for good", Place(Standing.OUT)),
        ("withdrawn", True, False, "nothing left to chase", Place(Standing.OUT)),
        ("withdrawn", True, False, "in no queue", Place(Standing.OUT)),
        ("withdrawn", True, False, COOLDOWN, Place(Standing.OUT)),
        ("completed", True, False, "", Place(Standing.OUT)),
    ],
)  # fmt: skip
def test_place_of_a_task(status: str, due: bool, held: bool, reason: str, expected: Place) -> None:
    assert place_of(status, due=due, held=held, reason=reason) == expected


# --- queues -----------------------------------------------------------------------------------


def test_queue_floors_add_up_each_queue() -> None:
    early, late = NOW - 3 * HOUR, NOW - HOUR
    groups = [
        TaskGroup("unsigned", "ready", True, False, "", 5, oldest_due=late),
        TaskGroup("unsigned", "ready", True, False, "", 2, oldest_due=early),  # (two groups)
        TaskGroup("unsigned", "ready", True, True, "", 1, oldest_due=NOW - 9 * HOUR),
        TaskGroup("unsigned", "ready", False, False, COOLDOWN, 4),
        TaskGroup("unsigned", "ready", False, False, "cooldown after busy until 12:00", 3),
        TaskGroup("unsigned", "ready", False, False, "calling window closed until 08:00", 6),
        TaskGroup("unsigned", "claimed", True, False, "", 2),
        TaskGroup("unsigned", "withdrawn", False, False, NO_CONSENT, 7),
        TaskGroup("unsigned", "withdrawn", False, False, "nothing left to chase", 50),
        TaskGroup("callback", "claimed", True, False, "", 1),
    ]
    floors = queue_floors(groups)
    assert list(floors) == ["unsigned", "outstanding", "callback"]
    unsigned = floors["unsigned"]
    assert (unsigned.callable_now, unsigned.claimed, unsigned.waiting) == (7, 2, 21)
    assert unsigned.waiting_reasons() == [
        (WaitReason.COOLDOWN, 7),
        (WaitReason.OUTSIDE_WINDOW, 6),
        (WaitReason.HELD, 1),
        (WaitReason.NO_CONSENT, 7),
    ]
    # the held task is not callable by everyone: it does not make the oldest callable
    assert unsigned.oldest_callable == early
    assert unsigned.oldest_callable_seconds(NOW) == 3 * 3600
    outstanding = floors["outstanding"]
    assert (outstanding.callable_now, outstanding.claimed, outstanding.waiting) == (0, 0, 0)
    assert outstanding.oldest_callable is None and outstanding.oldest_callable_seconds(NOW) is None
    assert floors["callback"].claimed == 1


# --- the day's calls --------------------------------------------------------------------------


def test_the_uk_day_starts_at_local_midnight_in_summer_and_winter() -> None:
    assert day_start(NOW) == datetime(2026, 7, 13, 23, 0, tzinfo=UTC)
    assert day_start(datetime(2026, 1, 14, 0, 30, tzinfo=UTC)) == datetime(
        2026, 1, 14, 0, 0, tzinfo=UTC
    )
    # 23:30 UTC on 13 July is already 14 July in London
    assert day_start(datetime(2026, 7, 13, 23, 30, tzinfo=UTC)) == datetime(
        2026, 7, 13, 23, 0, tzinfo=UTC
    )
    # the clocks went forward at 01:00 UTC on 29 March 2026: the day began in GMT
    assert day_start(datetime(2026, 3, 29, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 0, 0, tzinfo=UTC
    )
    assert day_start(NOW, ZoneInfo("UTC")) == datetime(2026, 7, 14, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        day_start(datetime(2026, 7, 14, 10, 0))


PERSON, OTHER_PERSON, ROBOT = 1, 2, 9


def test_calls_today_by_outcome_people_and_ai() -> None:
    groups = [
        CallGroup(PERSON, "no_answer", today=4, live_24h=0, abandoned_24h=0),
        CallGroup(PERSON, "promised_to_sign", today=2, live_24h=2, abandoned_24h=0),
        CallGroup(OTHER_PERSON, "no_answer", today=1, live_24h=0, abandoned_24h=0),
        CallGroup(OTHER_PERSON, "callback_requested", today=1, live_24h=1, abandoned_24h=0),
        CallGroup(OTHER_PERSON, None, today=1, live_24h=1, abandoned_24h=1),  # abandoned
        CallGroup(ROBOT, "magic_link_sent", today=3, live_24h=3, abandoned_24h=0),
        CallGroup(ROBOT, "voicemail_left", today=1, live_24h=0, abandoned_24h=0),
        # yesterday evening: in the abandon rate's 24 hours, not in today's calls
        CallGroup(PERSON, "completed", today=0, live_24h=3, abandoned_24h=0),
        CallGroup(None, "busy", today=2, live_24h=0, abandoned_24h=0),  # agent deleted
    ]
    calls = calls_today(groups, frozenset({ROBOT}))
    assert [(o.disposition, o.label, o.people, o.ai) for o in calls.outcomes] == [
        ("no_answer", "No answer", 5, 0),
        ("magic_link_sent", "Magic link sent", 0, 3),
        ("busy", "Busy", 2, 0),
        ("promised_to_sign", "Promised to sign", 2, 0),
        ("callback_requested", "Callback requested", 1, 0),
        ("voicemail_left", "Voicemail left", 0, 1),
        (None, "No outcome yet", 1, 0),
    ]
    assert (calls.calls, calls.people_calls, calls.ai_calls) == (15, 11, 4)
    assert calls.with_outcome == 14
    assert calls.contacts == 6  # promised to sign 2, callback requested 1, magic link sent 3
    assert calls.contact_rate == pytest.approx(6 / 14)
    assert calls.ai_share == pytest.approx(4 / 15)
    assert (calls.abandon.live_calls, calls.abandon.abandoned) == (10, 1)
    assert calls.abandon_over_the_line  # 10 %
    assert calls.per_agent == {PERSON: 6, OTHER_PERSON: 3, ROBOT: 4}


def test_no_calls_yet_has_no_rates() -> None:
    calls = calls_today([], frozenset())
    assert calls.calls == 0 and calls.outcomes == []
    assert calls.contact_rate is None and calls.ai_share is None
    assert calls.abandon.rate == 0.0 and not calls.abandon_over_the_line
    assert share(0, 0) is None and share(0, 4) == 0.0


def test_an_outcome_this_version_does_not_know_keeps_its_name() -> None:
    calls = calls_today([CallGroup(PERSON, "gone_fishing", 1, 0, 0)], frozenset())
    assert calls.outcomes[0].label == "Gone fishing" and calls.contacts == 0


@pytest.mark.parametrize(
    ("live", "abandoned", "red"),
    [
        (0, 0, False),
        (100, 2, False),
        (1000, 29, False),
        (100, 3, True),  # exactly 3 %: on the line is red
        (300, 9, True),
        (1000, 31, True),
        (33, 1, True),
        (34, 1, False),
    ],
)
def test_the_abandon_rate_is_red_at_or_over_three_percent(
    live: int, abandoned: int, red: bool
) -> None:
    assert over_the_line(abandon_rate(live, abandoned)) is red


# --- agents -----------------------------------------------------------------------------------


def test_agents_by_state_with_time_in_state_and_their_claimant() -> None:
    seen = [
        AgentSeen(1, "Ann", False, "unsigned", "paused", "Lunch", NOW - timedelta(minutes=20)),
        AgentSeen(2, "Bob", False, "unsigned", "on_call", "call 5", NOW - timedelta(seconds=90)),
        AgentSeen(3, "Cy", False, "outstanding", "ready", None, NOW - timedelta(seconds=30)),
        AgentSeen(4, "Dee", False, "outstanding", "ready", None, NOW - timedelta(seconds=300)),
        AgentSeen(5, "Eve", False, "callback", None, None, None),  # never signed in
        AgentSeen(9, "Robo", True, "outstanding", "on_call", None, NOW - timedelta(seconds=5)),
        AgentSeen(6, "Fay", False, "callback", "retired_state", None, NOW - HOUR),
    ]
    claimant = Claimant(4242, "unsigned", NOW - timedelta(seconds=95))
    rows = agents_on_floor(seen, {2: claimant}, {2: 7, 9: 3}, NOW)
    assert [(r.name, r.state, r.seconds_in_state) for r in rows] == [
        ("Bob", AgentState.ON_CALL, 90.0),
        ("Robo", AgentState.ON_CALL, 5.0),
        ("Dee", AgentState.READY, 300.0),
        ("Cy", AgentState.READY, 30.0),
        ("Ann", AgentState.PAUSED, 1200.0),
        ("Fay", AgentState.OFFLINE, 3600.0),  # a state this version does not know
        ("Eve", AgentState.OFFLINE, None),
    ]
    assert rows[0].claimant == claimant and rows[0].calls_today == 7
    assert rows[1].is_ai and rows[1].calls_today == 3 and rows[1].claimant is None
    assert rows[4].reason == "Lunch"
    assert [(c.state, c.people, c.ai) for c in state_counts(rows)] == [
        (AgentState.ON_CALL, 1, 1),
        (AgentState.WRAP_UP, 0, 0),
        (AgentState.READY, 2, 0),
        (AgentState.PAUSED, 1, 0),
        (AgentState.OFFLINE, 2, 0),
    ]


def test_a_state_change_stamped_after_now_is_no_time_at_all() -> None:
    seen = [AgentSeen(1, "Ann", False, None, "ready", None, NOW + timedelta(seconds=2))]
    assert agents_on_floor(seen, {}, {}, NOW)[0].seconds_in_state == 0.0
