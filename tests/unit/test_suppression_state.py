"""The opt-out state is the latest event per channel (`domain.suppressions.status_of`), for
any order of STOPs and STARTs by the claimant or by their number."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.suppressions import SMS_START, SMS_STOP, SuppressionRow, status_of

USER, NUMBER = 7, "+447700900001"
SPELLINGS = {NUMBER, "07700900001"}

# (reason, by the claimant's id?, by the number?): at least one subject per row
events = st.lists(
    st.tuples(
        st.sampled_from([SMS_STOP, SMS_START]),
        st.booleans(),
        st.booleans(),
    ).filter(lambda e: e[1] or e[2]),
    max_size=12,
)


def _rows(sequence: list[tuple[str, bool, bool]]) -> list[SuppressionRow]:
    return [
        SuppressionRow(i, USER if by_user else None, NUMBER if by_number else None, reason)
        for i, (reason, by_user, by_number) in enumerate(sequence, start=1)
    ]


def _latest(sequence: list[tuple[str, bool, bool]], by_user: bool) -> str | None:
    mine = [reason for reason, user, number in sequence if (user if by_user else number)]
    return mine[-1] if mine else None


@given(events)
def test_suppressed_exactly_when_the_latest_sms_event_of_a_subject_is_a_stop(
    sequence: list[tuple[str, bool, bool]],
) -> None:
    status = status_of(_rows(sequence), USER, SPELLINGS)
    stopped = SMS_STOP in (_latest(sequence, True), _latest(sequence, False))
    assert status.suppressed == stopped
    assert status.reasons <= {SMS_STOP}


@given(events, st.sampled_from(["do_not_call", "list", "opted_out"]))
def test_a_final_opt_out_holds_whatever_sms_events_follow(
    sequence: list[tuple[str, bool, bool]], final: str
) -> None:
    rows = [SuppressionRow(0, USER, None, final), *_rows(sequence)]
    status = status_of(rows, USER, SPELLINGS)
    assert status.suppressed and final in status.reasons
