"""The abandoned-call rule over the two legs' callbacks, the daily rate, and how waiting
tasks group by reason in `dialler queue depth`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.abandoned_calls import (
    DIALLER_HUNG_UP,
    NO_AGENT,
    CallLegs,
    abandon_rate,
    abandon_reason,
)
from domain.queue_view import reason_kind, waiting_by_reason

T = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _s(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def legs(**changes: object) -> CallLegs:
    base: dict[str, object] = {
        "answered_at": T,
        "answered_by": None,
        "claimant_left_at": None,
        "agent_left_at": None,
        "agent_seconds": None,
    }
    return CallLegs(**(base | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (legs(agent_left_at=_s(1), agent_seconds=0), NO_AGENT),
        (legs(agent_left_at=_s(6), agent_seconds=0), DIALLER_HUNG_UP),
        (legs(agent_left_at=_s(6), agent_seconds=0, claimant_left_at=_s(7)), DIALLER_HUNG_UP),
        # the claimant hung up first (during the notice): not abandoned
        (legs(agent_left_at=_s(6), agent_seconds=0, claimant_left_at=_s(6)), None),
        (legs(agent_left_at=_s(6), agent_seconds=0, claimant_left_at=_s(4)), None),
        # an agent was bridged: a conversation, however short
        (legs(agent_left_at=_s(1), agent_seconds=1), None),
        (legs(agent_left_at=_s(90), agent_seconds=80, claimant_left_at=_s(90)), None),
        # the agent's leg is still up
        (legs(claimant_left_at=_s(3)), None),
        # never answered, or answered by a machine: not a live call
        (legs(answered_at=None, agent_left_at=_s(30), agent_seconds=0), None),
        (legs(answered_by="machine_start", agent_left_at=_s(1), agent_seconds=0), None),
        (legs(answered_by="fax", agent_left_at=_s(1), agent_seconds=0), None),
        (legs(answered_by="human", agent_left_at=_s(1), agent_seconds=0), NO_AGENT),
        (legs(answered_by="unknown", agent_left_at=_s(5), agent_seconds=0), DIALLER_HUNG_UP),
    ],
)
def test_which_calls_are_abandoned(call: CallLegs, expected: str | None) -> None:
    assert abandon_reason(call) == expected


def test_the_rate_is_abandoned_over_live_calls_and_three_percent_is_the_limit() -> None:
    assert abandon_rate(100, 3).within_limit
    over = abandon_rate(100, 4)
    assert over.rate == pytest.approx(0.04) and not over.within_limit
    assert "OVER the 3% limit" in over.describe() and "4 of 100 live calls" in over.describe()
    assert abandon_rate(0, 0).rate == 0.0 and abandon_rate(0, 0).within_limit
    assert abandon_rate(0, 2).live_calls == 2  # an abandoned call was a live call
    with pytest.raises(ValueError, match="negative"):
        abandon_rate(-1, 0)


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("cooldown after no_answer until 14:00 Thu 3 Dec", "cooldown after no_answer"),
        ("abandoned call: 72-hour lock until 09:00 Sun 6 Dec", "abandoned call: 72-hour lock"),
        ("callback scheduled for 14:00", "callback scheduled"),
        ("calling window closed until 08:00 (bank holiday Fri 25 Dec)", "calling window closed"),
        ("daily cap of 3 calls reached; next day", "daily cap of 3 calls reached"),
        ("cooldown after busy until 11:00, then calling window closed until 08:00",
         "cooldown after busy"),
        ("", "no reason recorded"),
    ],
)  # fmt: skip
def test_waiting_reasons_group_without_their_times(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind


def test_waiting_by_reason_folds_and_orders_by_count() -> None:
    rows = [
        ("cooldown after no_answer until 14:00", 2),
        ("cooldown after no_answer until 15:00", 3),
        ("abandoned call: 72-hour lock until 09:00 Sun 6 Dec", 1),
    ]
    assert waiting_by_reason(rows) == [
        ("cooldown after no_answer", 5),
        ("abandoned call: 72-hour lock", 1),
    ]
