"""Console views that must be true when they are read (issue 17, defect 8): "why now" after
the wait it describes is over, a callback picker whose shown time is the saved time (across
clock changes), and the confirmation of a saved outcome beside the wrap-up timer."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from domain.rules import CallingWindows, parse_rules
from schemas import dialler_db as db
from schemas.outreach import OutcomeRecorded, Stage
from tests.web.console_fixtures import (
    World,
    calls_of,
    claim,
    now,
    ready_claimant,
    signed_in_agent,
    task_of,
    w,
    world,
)
from tests.workflows.conftest import open_rules
from web.views.console import (
    LONDON,
    offered_callback_days,
    outcome_confirmation,
    parse_callback_time,
    uk_datetime,
    uk_time,
    why_now,
)

__all__ = ["w", "world"]  # fixtures, imported for pytest

WINDOWS = parse_rules("").calling_windows  # 08:00-21:00 weekdays, 09:00-21:00 weekends
ALL_DAY = open_rules().calling_windows  # every wall time, so the DST hours are offered too
SPRING_FORWARD = date(2026, 3, 29)  # 01:00 GMT becomes 02:00 BST
FALL_BACK = date(2026, 10, 25)  # 02:00 BST becomes 01:00 GMT
_OPTION = re.compile(r'<option value="(\d{4}-\d\d-\d\dT[^"]+)"')
_WHY = re.compile(r'id="why-reason">(.*?)</p>', re.S)


def _london(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), LONDON).astimezone(UTC)


# --- "why now" at render time -----------------------------------------------------------------


def test_a_wait_that_is_over_is_not_reported_as_still_closed() -> None:
    assessed_reason = "calling window closed until 08:00"
    opened = _london(date(2026, 12, 3), 8)
    at_ten = _london(date(2026, 12, 3), 10)
    text = why_now(opened, assessed_reason, at_ten, WINDOWS)
    assert "closed" not in text
    assert text == "callable since 08:00; calling window open until 21:00"


def test_a_wait_still_ahead_is_shown_as_assessed() -> None:
    opens = _london(date(2026, 12, 3), 8)
    reason = "calling window closed until 08:00"
    assert why_now(opens, reason, opens - timedelta(minutes=1), WINDOWS) == reason
    assert why_now(None, "opted out: outreach stopped for good", opens, WINDOWS) == (
        "opted out: outreach stopped for good"
    )


def test_a_wait_over_since_yesterday_names_its_day_and_the_window_now() -> None:
    opened = _london(date(2026, 12, 2), 8)  # a Wednesday
    late = _london(date(2026, 12, 3), 21, 30)  # Thursday, after the window closed
    text = why_now(opened, "calling window closed until 08:00", late, WINDOWS)
    assert text == "callable since 08:00 Wed 2 Dec; calling window closed until 08:00 Fri 4 Dec"


def test_the_claimants_preferred_hours_are_judged_at_render_time() -> None:
    opened = _london(date(2026, 12, 3), 10)
    after_lunch = _london(date(2026, 12, 3), 13)
    text = why_now(opened, "can call now", after_lunch, WINDOWS, time(10), time(12))
    assert text.startswith("callable since 10:00; outside the claimant's preferred hours")


async def test_the_console_shows_why_now_as_it_is_when_viewed(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    # assessed before the window opened; the window has opened since (an hour ago)
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id == user_id)
            .values(
                not_before=now() - timedelta(hours=1),
                not_before_reason="calling window closed until 08:00",
            )
        )
    page = await agent.text(await agent.get(f"/console/claimants/{user_id}"))
    found = _WHY.search(page)
    assert found, page
    shown = found.group(1)
    assert "closed until 08:00" not in shown
    assert "callable since" in shown and "calling window open" in shown


# --- the callback picker: shown is saved --------------------------------------------------------


def _dst_weeks() -> st.SearchStrategy[datetime]:
    """An instant in the week before (or the day of) a clock change, at any minute."""
    return st.builds(
        lambda change, days_before, minute: datetime.combine(
            change - timedelta(days=days_before), time(minute // 60, minute % 60), LONDON
        ).astimezone(UTC),
        st.sampled_from([SPRING_FORWARD, FALL_BACK]),
        st.integers(0, 8),
        st.integers(0, 24 * 60 - 1),
    )


@settings(max_examples=150, deadline=None)
@given(at=_dst_weeks(), windows=st.sampled_from([WINDOWS, ALL_DAY]))
@example(at=_london(FALL_BACK - timedelta(days=6), 0, 10), windows=ALL_DAY)
def test_every_offered_slot_saves_the_instant_it_shows(
    at: datetime, windows: CallingWindows
) -> None:
    for day in offered_callback_days(at, windows):
        for slot in day.slots:
            # what the form submits (the option's value and the day select's value)
            saved, error = parse_callback_time(slot.isoformat(), day.day.isoformat(), at, windows)
            assert error is None, (day.day, uk_time(slot), error)
            assert saved == slot
            # what the option shows: its UK wall time, on the day it is listed under
            local = saved.astimezone(LONDON)
            assert (local.date(), f"{local:%H:%M}") == (day.day, uk_time(slot))


def test_the_clock_change_days_offer_wall_times_as_they_happen() -> None:
    spring = offered_callback_days(_london(SPRING_FORWARD, 0), ALL_DAY)[0]
    assert spring.day == SPRING_FORWARD
    labels = [uk_time(s) for s in spring.slots]
    assert "01:30" not in labels and labels[labels.index("00:45") + 1] == "02:00"
    autumn = offered_callback_days(_london(FALL_BACK, 0), ALL_DAY)[0]
    labels = [uk_time(s) for s in autumn.slots]
    assert labels.count("01:30") == 1  # the repeated hour is offered once


def test_a_london_local_time_and_its_utc_option_are_the_same_instant() -> None:
    before = _london(SPRING_FORWARD - timedelta(days=1), 12)  # Saturday, GMT
    [sunday] = [d for d in offered_callback_days(before, WINDOWS) if d.day == SPRING_FORWARD]
    nine = next(s for s in sunday.slots if uk_time(s) == "09:00")
    assert nine == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 09:00 BST
    day = SPRING_FORWARD.isoformat()
    assert parse_callback_time(nine.isoformat(), day, before, WINDOWS) == (nine, None)
    local = "2026-03-29T09:00:00+01:00"
    assert parse_callback_time(local, day, before, WINDOWS) == (nine, None)
    naive = parse_callback_time("2026-03-29T09:00:00", day, before, WINDOWS)
    assert naive[0] is None and "could not be read" in str(naive[1])


@pytest.mark.parametrize("raw", ["0001-01-01T00:30:00+05:00", "9999-12-31T23:30:00-05:00"])
def test_a_time_off_the_calendar_is_unreadable_not_an_overflow(raw: str) -> None:
    """Year 1 east of UTC and year 9999 west cannot be converted: the form says it could not
    read the time instead of the page failing with a 500."""
    at = _london(date(2026, 12, 3), 10)
    saved, error = parse_callback_time(raw, "", at, WINDOWS)
    assert saved is None and error is not None and "could not be read" in error


def test_a_time_from_another_day_than_the_one_shown_is_refused() -> None:
    at = _london(date(2026, 12, 3), 10)
    thursday, friday, *_ = offered_callback_days(at, WINDOWS)
    slot = friday.slots[0]
    saved, error = parse_callback_time(slot.isoformat(), thursday.day.isoformat(), at, WINDOWS)
    assert saved is None
    assert error == (
        "The time chosen (08:00 on Fri 4 Dec) is not on the day shown; choose the time again."
    )


async def test_a_stale_time_list_does_not_save_a_day_the_agent_did_not_see(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    page = await claim(w, agent, user_id)
    days = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', page)
    shown_day, other_day = days[1], days[2]
    other_times = _OPTION.findall(
        await agent.text(await agent.get(f"/console/callback-slots?callback_day={other_day}"))
    )
    # the day select says one day, the time list is still another day's (a lost refresh)
    response = await agent.post(
        f"/console/claimants/{user_id}/outcome",
        {"disposition": "callback_requested", "callback_day": shown_day,
         "callback_at": other_times[0]},
    )  # fmt: skip
    body = await agent.text(response)
    assert response.status_code == 422, body
    assert "is not on the day shown" in body
    # re-rendered with the times of the day shown, and nothing saved
    assert set(_OPTION.findall(body)) == set(
        _OPTION.findall(
            await agent.text(await agent.get(f"/console/callback-slots?callback_day={shown_day}"))
        )
    )
    assert await calls_of(w, user_id) == []
    async with w.dialler.connect() as conn:
        booked = (
            await conn.execute(select(db.callbacks).where(db.callbacks.c.user_id == user_id))
        ).all()
    assert booked == []
    assert (await task_of(w, user_id)).claimed_by == agent.staff.id


# --- the confirmation of a saved outcome, beside the context --------------------------------


_CONFIRMATION = re.compile(r'id="outcome-confirmation"[^>]*>(.*?)</p>', re.S)


async def test_a_saved_outcome_is_confirmed_with_where_the_claimant_stands(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    response = await agent.post(f"/console/claimants/{user_id}/outcome",
                                {"disposition": "no_answer"})  # fmt: skip
    page = await agent.text(response)
    assert response.status_code == 200, page
    found = _CONFIRMATION.search(page)
    assert found, page
    confirmation = found.group(1)
    task = await task_of(w, user_id)
    assert confirmation == (
        f"Outcome saved: No answer; in the Unsigned queue from {uk_datetime(task.not_before)} "
        f"UK time ({task.not_before_reason})."
    )
    assert 'role="timer"' in page and 'id="end-wrap-up"' in page  # the wrap-up state
    # the claimant's context stays, with the confirmation in the call column beside it
    main, aside = page.index('class="claim-main"'), page.index('class="claim-actions"')
    assert main < page.index('id="why-this-call"') < aside < found.start()


async def test_a_saved_callback_is_confirmed_at_the_time_shown(w: World) -> None:
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    page = await claim(w, agent, user_id)
    tomorrow = re.findall(r'<option value="(\d{4}-\d\d-\d\d)"', page)[1]
    chosen = _OPTION.findall(
        await agent.text(await agent.get(f"/console/callback-slots?callback_day={tomorrow}"))
    )[0]
    response = await agent.post(
        f"/console/claimants/{user_id}/outcome",
        {"disposition": "callback_requested", "callback_day": tomorrow, "callback_at": chosen},
    )
    found = _CONFIRMATION.search(await agent.text(response))
    assert found and found.group(1).startswith("Outcome saved: Callback requested; ")
    shown = datetime.fromisoformat(chosen)
    assert f"from {uk_datetime(shown)} UK time (callback scheduled for " in found.group(1)
    async with w.dialler.connect() as conn:
        booked = (
            await conn.execute(select(db.callbacks).where(db.callbacks.c.user_id == user_id))
        ).one()
    assert booked.scheduled_for == shown


def test_an_outcome_that_stops_calls_says_so() -> None:
    stopped = OutcomeRecorded(1, Stage.DONE, None, "opted out: outreach stopped for good")
    assert outcome_confirmation("Do not call", stopped, now()) == (
        "Outcome saved: Do not call; no further calls (opted out: outreach stopped for good)."
    )
    assert outcome_confirmation("Busy", None, now()) == "Outcome saved: Busy."
