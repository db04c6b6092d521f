"""The routing of a claimant's call to us (domain.inbound_calls): pure, time passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.inbound_calls import (
    CALLBACK_LEAD,
    UNKNOWN_CALLER_MESSAGE,
    FloorAgent,
    InboundCall,
    InboundDecision,
    InboundRoute,
    after_missed_ring,
    callback_message,
    callback_note,
    caller_keys,
    route_inbound,
)
from domain.phones import phone_key
from domain.rules import CallingWindows, parse_rules

LONDON = ZoneInfo("Europe/London")
# Tue 3 Mar 2026, 10:00 London (GMT): the default windows (Mon-Fri 08:00-21:00) are open
OPEN = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
SINCE = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def _windows(**update: object) -> CallingWindows:
    windows = parse_rules("").calling_windows
    return windows.model_copy(update=update) if update else windows


def _agent(agent_id: int, queue: str = "unsigned", **changes: object) -> FloorAgent:
    agent = FloorAgent(
        agent_id=agent_id,
        role="agent",
        queue=queue,
        is_ai=False,
        is_active=True,
        state="ready",
        since=SINCE + timedelta(minutes=agent_id),  # a lower id has been Ready longer
    )
    return replace(agent, **changes)  # type: ignore[arg-type]


def _call(
    *agents: FloorAgent, at: datetime = OPEN, last: int | None = 7, **kw: object
) -> InboundCall:
    base = InboundCall(
        at=at, windows=_windows(), known=True, last_agent_id=last, queue="unsigned", agents=agents
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_the_agent_who_last_called_them_when_free() -> None:
    decision = route_inbound(_call(_agent(3), _agent(7), _agent(9)))
    assert (decision.route, decision.agent_id) == (InboundRoute.LAST_AGENT, 7)
    assert decision.in_hours and decision.callback_at is None


def test_the_last_agent_is_preferred_whatever_their_queue() -> None:
    decision = route_inbound(_call(_agent(3), _agent(7, queue="outstanding")))
    assert decision.agent_id == 7


@pytest.mark.parametrize(
    "change",
    [
        {"state": "paused"},
        {"state": "on_call"},
        {"state": "wrap_up"},
        {"state": None},  # never recorded: Offline
        {"busy": True},  # holds a claimant, or is being rung
        {"is_active": False},
        {"is_ai": True},
        {"role": "supervisor"},
    ],
)
def test_otherwise_the_queues_agent_ready_the_longest(change: dict[str, object]) -> None:
    last = replace(_agent(7), **change)  # type: ignore[arg-type]
    other_queue = _agent(1, queue="outstanding")
    decision = route_inbound(_call(last, other_queue, _agent(5), _agent(4)))
    assert (decision.route, decision.agent_id) == (InboundRoute.QUEUE_AGENT, 4)


def test_no_one_free_in_hours_books_a_callback_shortly() -> None:
    agents = (_agent(7, state="paused"), _agent(2, queue="callback"), _agent(3, busy=True))
    decision = route_inbound(_call(*agents))
    assert decision.route is InboundRoute.CALLBACK and decision.agent_id is None
    assert decision.in_hours and decision.callback_at == OPEN + CALLBACK_LEAD
    assert decision.reason == "no one free"


def test_a_claimant_with_no_task_has_no_queue_to_fall_back_on() -> None:
    decision = route_inbound(_call(_agent(3), last=None, queue=None))
    assert decision.route is InboundRoute.CALLBACK


def test_out_of_hours_the_next_windows_start_whoever_is_free() -> None:
    late = datetime(2026, 3, 3, 21, 30, tzinfo=UTC)  # Tue 21:30 GMT
    decision = route_inbound(_call(_agent(7), at=late))
    assert decision.route is InboundRoute.CALLBACK and not decision.in_hours
    assert decision.callback_at == datetime(2026, 3, 4, 8, 0, tzinfo=UTC)  # Wed 08:00
    assert decision.reason == "lines closed"


def test_out_of_hours_across_a_weekend_a_bank_holiday_and_the_clocks_going_forward() -> None:
    # Fri 27 Mar 2026 22:00 GMT; Sat-Sun open 09:00 (BST from Sun 29 Mar); Mon a holiday
    windows = _windows(bank_holidays=[date(2026, 3, 30)])
    friday_night = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)
    decision = route_inbound(_call(_agent(7), at=friday_night, windows=windows))
    assert decision.callback_at == datetime(2026, 3, 28, 9, 0, tzinfo=UTC)  # Sat 09:00 GMT
    saturday_night = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    sunday = route_inbound(_call(at=saturday_night, windows=windows)).callback_at
    assert sunday == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # Sun 09:00 BST
    sunday_night = datetime(2026, 3, 29, 20, 30, tzinfo=UTC)  # 21:30 BST
    tuesday = route_inbound(_call(at=sunday_night, windows=windows)).callback_at
    assert tuesday == datetime(2026, 3, 31, 7, 0, tzinfo=UTC)  # Tue 08:00 BST: Mon a holiday


def test_a_callback_near_closing_goes_to_the_next_window() -> None:
    nearly_closed = datetime(2026, 3, 3, 20, 50, tzinfo=UTC)  # 10 minutes before 21:00
    decision = route_inbound(_call(at=nearly_closed))
    assert decision.in_hours and decision.callback_at == datetime(2026, 3, 4, 8, 0, tzinfo=UTC)


def test_an_unknown_caller_is_never_routed() -> None:
    decision = route_inbound(_call(_agent(7), known=False))
    assert decision == InboundDecision(InboundRoute.UNKNOWN, reason="unknown caller")
    assert "Resolve My Claim" in UNKNOWN_CALLER_MESSAGE


def test_the_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        route_inbound(_call(at=datetime(2026, 3, 3, 10, 0)))


def test_a_missed_ring_books_a_callback_like_no_one_free() -> None:
    decision = after_missed_ring(OPEN, _windows())
    assert decision.route is InboundRoute.CALLBACK and decision.in_hours
    assert decision.callback_at == OPEN + CALLBACK_LEAD


# --- the caller's number ------------------------------------------------------------------------


def test_the_keys_cover_the_spellings_a_uk_number_was_called_under() -> None:
    keys = set(caller_keys("+447700900123"))
    for spelling in ("+447700900123", "07700900123", "447700900123", "07700 900123"):
        assert phone_key(spelling) in keys
    assert phone_key("+447700900124") not in keys


@pytest.mark.parametrize("number", ["", None, "Anonymous", "+266696687"[:4], "client:agent-7"])
def test_no_keys_for_what_is_no_phone_number(number: str | None) -> None:
    assert caller_keys(number) == []


def test_an_international_number_is_matched_as_sent() -> None:
    assert phone_key("+33612345678") in caller_keys("+33612345678")


# --- what the caller hears ----------------------------------------------------------------------


def test_the_messages_say_when_we_will_call_and_never_a_name() -> None:
    busy = InboundDecision(InboundRoute.CALLBACK, callback_at=OPEN + CALLBACK_LEAD, in_hours=True)
    said = callback_message(busy, OPEN, LONDON, booked=True)
    assert said == (
        "Thank you for calling Resolve My Claim. All our advisers are busy at the moment. "
        "We will call you back from 10:15 today. Goodbye."
    )
    closed = InboundDecision(
        InboundRoute.CALLBACK, callback_at=datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    )
    late = datetime(2026, 3, 3, 21, 30, tzinfo=UTC)
    assert "Our lines are closed at the moment. We will call you back from 08:00 tomorrow." in (
        callback_message(closed, late, LONDON, booked=True)
    )
    weekend = replace(closed, callback_at=datetime(2026, 3, 28, 9, 0, tzinfo=UTC))
    friday = datetime(2026, 3, 26, 22, 0, tzinfo=UTC)
    assert "from 09:00 on Saturday 28 March." in callback_message(weekend, friday, LONDON, True)


def test_without_a_booking_the_caller_is_asked_to_ring_again() -> None:
    closed = InboundDecision(InboundRoute.CALLBACK, callback_at=OPEN)
    said = callback_message(closed, OPEN, LONDON, booked=False)
    assert "Please call again when our lines are open." in said and "call you back" not in said
    busy = replace(closed, in_hours=True)
    assert "Please try again shortly." in callback_message(busy, OPEN, LONDON, booked=False)


def test_the_callbacks_note_says_when_and_why() -> None:
    decision = route_inbound(_call(at=datetime(2026, 7, 1, 21, 10, tzinfo=UTC)))  # 22:10 BST
    assert callback_note(decision, datetime(2026, 7, 1, 21, 10, tzinfo=UTC), LONDON) == (
        "The claimant rang us back at 22:10 (lines closed)."
    )


def test_open_all_day_windows_route_at_midnight() -> None:
    windows = _windows(
        weekday_open=time(0, 0), weekday_close=time(23, 59, 59),
        weekend_open=time(0, 0), weekend_close=time(23, 59, 59),
    )  # fmt: skip
    midnight = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert route_inbound(_call(_agent(7), at=midnight, windows=windows)).agent_id == 7
