"""When a claimant may next be called: each constraint binding in turn, the reason naming it,
and opt-out final whatever else is true. Also `assess`, which combines policy and score."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.assessment import assess
from domain.calling_windows import is_open
from domain.contact_policy import earliest_contact
from domain.dispositions import Disposition
from domain.rules import DiallerRules
from schemas.outreach import ClaimantFacts, ClaimFact, ContactHistory, Stage

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


def at_local(day: int, hour: int, minute: int = 0) -> datetime:
    """A July 2026 London wall time (BST), as UTC."""
    return datetime(2026, 7, day, hour, minute, tzinfo=UTC) - HOUR


def test_nothing_in_the_way_means_now() -> None:
    assert earliest_contact(facts(), ContactHistory(), RULES, NOW) == (
        NOW,
        "can call now (calling window open until 21:00)",
    )


# --- never ---------------------------------------------------------------------------------


def test_opt_out_is_final_whatever_else() -> None:
    everything = facts(opted_out=True, callback_at=NOW - HOUR, deceased=False)
    history = ContactHistory(last_contact_at=NOW - 30 * DAY)
    assert earliest_contact(everything, history, RULES, NOW) == (
        None,
        "opted out: outreach stopped for good",
    )
    # ... years later too
    assert earliest_contact(everything, history, RULES, NOW + 1000 * DAY)[0] is None


def test_do_not_call_outcome_is_an_opt_out() -> None:
    history = ContactHistory(
        last_disposition=Disposition.DO_NOT_CALL.value, last_disposition_at=NOW - 400 * DAY
    )
    assert earliest_contact(facts(), history, RULES, NOW)[0] is None


def test_deceased_stops_outreach() -> None:
    assert earliest_contact(facts(deceased=True), ContactHistory(), RULES, NOW) == (
        None,
        "recorded as deceased: outreach stopped",
    )
    history = ContactHistory(last_disposition="deceased", last_disposition_at=NOW - DAY)
    assert earliest_contact(facts(), history, RULES, NOW)[0] is None


def test_no_phone_number_means_never() -> None:
    assert earliest_contact(facts(phone_key=None), ContactHistory(), RULES, NOW) == (
        None,
        "no phone number to call",
    )


# --- each constraint binding -----------------------------------------------------------------


def test_future_callback_binds() -> None:
    callback_at = at_local(14, 15, 30)
    assert earliest_contact(facts(callback_at=callback_at), ContactHistory(), RULES, NOW) == (
        callback_at,
        "callback scheduled for 15:30",
    )


def test_callback_replaces_the_preferred_window() -> None:
    agreed = facts(
        callback_at=at_local(15, 10),
        preferred_call_start=time(18),
        preferred_call_end=time(20),
    )
    assert earliest_contact(agreed, ContactHistory(), RULES, NOW) == (
        at_local(15, 10),
        "callback scheduled for 10:00 Wed 15 Jul",
    )
    due = replace(agreed, callback_at=NOW - HOUR)
    assert earliest_contact(due, ContactHistory(), RULES, NOW)[0] == NOW


def test_cooldown_after_no_answer() -> None:
    history = ContactHistory(
        last_contact_at=NOW - HOUR,
        last_disposition=Disposition.NO_ANSWER.value,
        last_disposition_at=NOW - HOUR,
        consecutive_failed_attempts=1,
        attempts_today=1,
        attempts_7d=1,
    )
    assert earliest_contact(facts(), history, RULES, NOW) == (
        NOW + 3 * HOUR,
        "cooldown after no_answer until 14:00",
    )


def test_cooldown_running_into_the_evening_waits_for_the_morning() -> None:
    evening = at_local(14, 19)
    history = ContactHistory(
        last_contact_at=evening - HOUR,
        last_disposition=Disposition.NO_ANSWER.value,
        last_disposition_at=evening - HOUR,
    )
    assert earliest_contact(facts(), history, RULES, evening) == (
        at_local(15, 8),
        "cooldown after no_answer until 22:00, then calling window closed until 08:00 Wed 15 Jul",
    )


def test_long_cooldown_after_not_interested() -> None:
    history = ContactHistory(
        last_contact_at=NOW - DAY,
        last_disposition=Disposition.NOT_INTERESTED.value,
        last_disposition_at=NOW - DAY,
    )
    assert earliest_contact(facts(), history, RULES, NOW) == (
        NOW + 13 * DAY,
        "cooldown after not_interested until 11:00 Mon 27 Jul",
    )


def test_cooldown_falls_back_to_last_contact_time() -> None:
    history = ContactHistory(last_contact_at=NOW - HOUR, last_disposition="busy")
    assert earliest_contact(facts(), history, RULES, NOW)[0] == NOW


def test_no_cooldown_for_wrong_number_or_unknown_outcomes() -> None:
    for outcome in ("wrong_number", "retired_outcome"):
        history = ContactHistory(last_disposition=outcome, last_disposition_at=NOW - HOUR)
        assert earliest_contact(facts(), history, RULES, NOW)[0] == NOW


def test_abandoned_call_lock_is_72_hours() -> None:
    history = ContactHistory(last_abandoned_at=NOW - HOUR, last_contact_at=NOW - HOUR)
    assert earliest_contact(facts(), history, RULES, NOW) == (
        NOW + 71 * HOUR,
        "abandoned call: 72-hour lock until 10:00 Fri 17 Jul",
    )
    assert earliest_contact(facts(), history, RULES, NOW + 71 * HOUR - timedelta(seconds=1))[0] == (
        NOW + 71 * HOUR
    )
    assert earliest_contact(facts(), history, RULES, NOW + 72 * HOUR)[0] == NOW + 72 * HOUR


def test_the_latest_constraint_wins() -> None:
    history = ContactHistory(
        last_contact_at=NOW - HOUR,
        last_disposition="no_answer",
        last_disposition_at=NOW - HOUR,
        last_abandoned_at=NOW - 2 * HOUR,
    )
    not_before, reason = earliest_contact(facts(), history, RULES, NOW)
    assert not_before == NOW + 70 * HOUR
    assert reason.startswith("abandoned call")


def test_daily_cap_waits_for_the_next_day() -> None:
    history = ContactHistory(attempts_today=3, attempts_7d=3, last_contact_at=NOW - 3 * HOUR)
    assert earliest_contact(facts(), history, RULES, NOW) == (
        at_local(15, 8),
        "daily cap of 3 calls reached; next day, then calling window closed until 08:00 Wed 15 Jul",
    )


def test_daily_cap_resets_at_london_midnight_not_utc() -> None:
    # 23:30 UTC on Tue 14 Jul is 00:30 BST Wed 15 Jul: the cap has already reset.
    late = datetime(2026, 7, 14, 23, 30, tzinfo=UTC)
    history = ContactHistory(attempts_today=3, attempts_7d=3)
    assert earliest_contact(facts(), history, RULES, late)[0] == at_local(16, 8)


def test_number_daily_cap() -> None:
    history = ContactHistory(number_attempts_today=3, number_attempts_7d=3)
    not_before, reason = earliest_contact(facts(), history, RULES, NOW)
    assert not_before == at_local(15, 8)
    assert reason.startswith("daily cap of 3 calls to this number reached; next day")


def test_rolling_seven_day_cap_uses_last_contact_plus_seven_days() -> None:
    history = ContactHistory(attempts_today=0, attempts_7d=10, last_contact_at=NOW - 2 * DAY)
    assert earliest_contact(facts(), history, RULES, NOW) == (
        NOW + 5 * DAY,
        "rolling 7-day cap of 10 calls reached until 11:00 Sun 19 Jul",
    )


def test_number_rolling_cap() -> None:
    history = ContactHistory(number_attempts_7d=10, last_contact_at=NOW - 6 * DAY)
    not_before, reason = earliest_contact(facts(), history, RULES, NOW)
    assert not_before == NOW + DAY
    assert reason == "rolling 7-day cap of 10 calls to this number reached until 11:00 Wed 15 Jul"


def test_rolling_cap_with_stale_last_contact_waits_for_fresh_counts() -> None:
    history = ContactHistory(attempts_7d=10, last_contact_at=NOW - 8 * DAY)
    assert earliest_contact(facts(), history, RULES, NOW)[0] == at_local(15, 8)


def test_too_many_failed_attempts_pause_outreach() -> None:
    history = ContactHistory(
        consecutive_failed_attempts=6,
        last_contact_at=NOW - DAY,
        last_disposition="no_answer",
        last_disposition_at=NOW - DAY,
    )
    assert earliest_contact(facts(), history, RULES, NOW) == (
        NOW + 6 * DAY,
        "6 consecutive failed attempts: paused until 11:00 Mon 20 Jul",
    )
    fewer = replace(history, consecutive_failed_attempts=5)
    assert earliest_contact(facts(), fewer, RULES, NOW)[0] == NOW


def test_preferred_window_binds() -> None:
    evening = facts(preferred_call_start=time(18), preferred_call_end=time(20))
    assert earliest_contact(evening, ContactHistory(), RULES, NOW) == (
        at_local(14, 18),
        "outside the claimant's preferred hours 18:00-20:00 until 18:00",
    )


def test_impossible_preferred_window_is_ignored_and_said() -> None:
    night = facts(preferred_call_start=time(22), preferred_call_end=time(7))
    history = ContactHistory(last_disposition="busy", last_disposition_at=NOW - HOUR / 2)
    not_before, reason = earliest_contact(night, history, RULES, NOW)
    assert not_before == NOW + HOUR / 2
    assert reason.startswith("cooldown after busy until 11:30; the claimant's preferred hours")
    assert reason.endswith("so they are ignored")


def test_calling_window_binds_on_a_bank_holiday() -> None:
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)
    assert earliest_contact(facts(), ContactHistory(), RULES, christmas) == (
        datetime(2026, 12, 26, 9, 0, tzinfo=UTC),
        "calling window closed until 09:00 Sat 26 Dec (bank holiday Fri 25 Dec)",
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_contact(facts(), ContactHistory(), RULES, NOW.replace(tzinfo=None))


# --- property: the answer honours every constraint ---------------------------------------------

moments = st.integers(min_value=-20 * 24 * 60, max_value=0).map(
    lambda minutes: NOW + timedelta(minutes=minutes)
)
maybe_moment = st.none() | moments
histories = st.builds(
    ContactHistory,
    attempts_today=st.integers(0, 5),
    attempts_7d=st.integers(0, 12),
    number_attempts_today=st.integers(0, 5),
    number_attempts_7d=st.integers(0, 12),
    last_contact_at=maybe_moment,
    last_disposition=st.none() | st.sampled_from([d.value for d in Disposition]),
    last_disposition_at=maybe_moment,
    last_abandoned_at=maybe_moment,
    consecutive_failed_attempts=st.integers(0, 8),
)
hours = st.none() | st.integers(0, 23).map(lambda h: time(h))
claimants = st.builds(
    facts,
    opted_out=st.booleans(),
    deceased=st.booleans(),
    phone_key=st.none() | st.just("phone"),
    callback_at=st.none()
    | st.integers(-3 * 24 * 60, 10 * 24 * 60).map(lambda m: NOW + timedelta(minutes=m)),
    preferred_call_start=hours,
    preferred_call_end=hours,
)


@settings(max_examples=400, deadline=None)
@given(claimant=claimants, history=histories)
def test_earliest_contact_honours_every_constraint(
    claimant: ClaimantFacts, history: ContactHistory
) -> None:
    not_before, reason = earliest_contact(claimant, history, RULES, NOW)
    assert reason
    never = claimant.opted_out or claimant.deceased or claimant.phone_key is None
    never = never or history.last_disposition in ("do_not_call", "deceased")
    if never:
        assert not_before is None
        return
    assert not_before is not None
    assert not_before >= NOW
    if claimant.callback_at is not None:
        assert not_before >= claimant.callback_at
        assert is_open(not_before, RULES.calling_windows)
    else:
        start, end = claimant.preferred_call_start, claimant.preferred_call_end
        assert is_open(not_before, RULES.calling_windows, start, end)
    if history.last_abandoned_at is not None:
        assert not_before >= history.last_abandoned_at + 72 * HOUR
    since = history.last_disposition_at or history.last_contact_at
    if history.last_disposition is not None and since is not None:
        cooldown = RULES.contact.cooldown(Disposition(history.last_disposition))
        if cooldown is not None:
            assert not_before >= since + cooldown
    capped = history.attempts_today >= 3 or history.number_attempts_today >= 3
    if capped:
        assert not_before.astimezone(RULES.calling_windows.zone).date() > NOW.date()


# --- assess ---------------------------------------------------------------------------------


def test_assess_combines_score_and_policy() -> None:
    history = ContactHistory(last_disposition="no_answer", last_disposition_at=NOW - HOUR)
    assessment = assess(facts(), history, RULES, NOW, Stage.UNSIGNED)
    assert assessment.user_id == 7
    assert assessment.stage is Stage.UNSIGNED
    assert assessment.not_before == NOW + 3 * HOUR
    assert assessment.not_before_reason == "cooldown after no_answer until 14:00"
    assert assessment.score == pytest.approx(sum(f.contribution for f in assessment.factors))
    assert assessment.score > 0
    assert not assessment.people_only


def test_assess_done_scores_zero_and_never() -> None:
    assessment = assess(facts(), ContactHistory(), RULES, NOW, Stage.DONE)
    assert (assessment.score, assessment.not_before, assessment.factors) == (0.0, None, [])
    assert assessment.not_before_reason == "nothing left to chase"
    opted = assess(facts(opted_out=True), ContactHistory(), RULES, NOW, Stage.DONE)
    assert opted.not_before_reason == "opted out: outreach stopped for good"


def test_assess_vulnerable_is_people_only() -> None:
    assert assess(
        facts(is_vulnerable=True), ContactHistory(), RULES, NOW, Stage.OUTSTANDING
    ).people_only
