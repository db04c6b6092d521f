"""bench/ai_turns.py's pure parts: a turn found in a workflow history (the workflow tasks,
the activities' dispatch and execution), and its time split into parts that add up to what
the benchmark reports (overhead = turn - the fake model's own time)."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

import pytest
from temporalio.api.common.v1 import ActivityType
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowExecutionSignaledEventAttributes,
)

from bench.ai_turns import Parts, Turn, history_spans, mean_parts, parts_of

T = EventType


class History:
    """Events in order, each at a time in milliseconds."""

    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []

    def add(self, kind: Any, at_ms: int, **attributes: Any) -> int:
        event = HistoryEvent(event_id=len(self.events) + 1, event_type=kind, **attributes)
        event.event_time.FromMilliseconds(at_ms)
        self.events.append(event)
        return event.event_id

    def task(self, scheduled: int, completed: int) -> None:
        self.add(T.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, scheduled)
        self.add(T.EVENT_TYPE_WORKFLOW_TASK_STARTED, scheduled + 1)
        self.add(T.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, completed)

    def activity(self, name: str, scheduled: int, started: int, completed: int) -> None:
        ref = self.add(
            T.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            scheduled,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                activity_type=ActivityType(name=name)
            ),
        )
        self.add(
            T.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            started,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                scheduled_event_id=ref
            ),
        )
        self.add(
            T.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            completed,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                scheduled_event_id=ref
            ),
        )


def voice_history() -> History:
    """The contact's start (not a turn), then one voice turn with a tool call."""
    h = History()
    h.task(0, 5)
    h.activity("ai_place_call", 5, 6, 40)  # before any turn: not counted
    h.task(40, 50)
    # the turn: the Update's task, model, tool check, model, the task that answers
    h.task(1_000, 1_010)
    h.add(T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, 1_010)
    h.activity("ai_model_turn", 1_010, 1_012, 1_042)
    h.task(1_042, 1_050)
    h.activity("ai_check_tool", 1_050, 1_051, 1_061)
    h.task(1_061, 1_070)
    h.activity("ai_model_turn", 1_070, 1_071, 1_101)
    h.task(1_101, 1_110)
    h.add(T.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, 1_110)
    return h


def test_a_voice_turn_runs_from_the_task_that_delivered_its_update_to_its_completion() -> None:
    [span] = history_spans(voice_history().events, sms=False)
    assert span.start == pytest.approx(1.000) and span.end == pytest.approx(1.110)
    assert span.workflow_tasks == pytest.approx(0.010 + 0.008 + 0.009 + 0.009)
    assert span.workflow_code == pytest.approx(0.009 + 0.007 + 0.008 + 0.008)  # the worker's
    assert span.dispatch == pytest.approx(0.002 + 0.001 + 0.001)
    assert span.execution == pytest.approx({"ai_model_turn": 0.060, "ai_check_tool": 0.010})
    assert span.activities == {"ai_model_turn": 2, "ai_check_tool": 1}


def test_an_sms_turn_runs_from_the_signal_to_the_reply_sent() -> None:
    h = History()
    h.task(0, 5)
    h.activity("ai_send_sms", 5, 6, 20)  # the opening text: before any turn
    h.task(20, 25)
    h.add(
        T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        500,
        workflow_execution_signaled_event_attributes=WorkflowExecutionSignaledEventAttributes(
            signal_name="claimant_texted"
        ),
    )
    h.task(501, 510)
    h.activity("ai_model_turn", 510, 511, 541)
    h.task(541, 550)
    h.activity("ai_send_sms", 550, 551, 580)
    [span] = history_spans(h.events, sms=True)
    assert span.start == pytest.approx(0.500) and span.end == pytest.approx(0.580)
    assert span.workflow_tasks == pytest.approx(0.009 + 0.009)
    assert span.execution == pytest.approx({"ai_model_turn": 0.030, "ai_send_sms": 0.029})
    assert span.started["ai_send_sms"] == pytest.approx(0.551)
    # the voice reading of the same history finds no Update, so no turn
    assert history_spans(h.events, sms=False) == []


def test_a_turns_parts_add_up_to_what_was_measured() -> None:
    [span] = history_spans(voice_history().events, sms=False)
    # measured from outside: 125 ms; the fake model served its two calls in 1 ms each, and
    # the worker timed them at 3 ms each
    turn = Turn("webhook", "tool", 1, 0.125, 0.002, 2, 6, model_worker=0.006, span=span)
    parts = parts_of(turn)
    assert parts is not None
    assert parts.total == pytest.approx(turn.total)
    assert parts.overhead == pytest.approx(turn.overhead) == pytest.approx(0.123)
    assert parts.model_client == pytest.approx(0.004)
    assert parts.activity_rest == pytest.approx(0.070 - 0.006)
    assert parts.dispatch == pytest.approx(0.004)
    assert parts.workflow_tasks == pytest.approx(0.036)
    assert parts.workflow_code == pytest.approx(0.032)  # a part of the tasks, not added again
    assert parts.other == pytest.approx(0.125 - 0.070 - 0.004 - 0.036)
    # no history or no worker timing: no split
    assert parts_of(Turn("webhook", "tool", 1, 0.125, 0.002, 2, 6)) is None


def test_an_sms_turn_ends_at_its_reply_row_part_way_through_the_send() -> None:
    h = History()
    h.add(
        T.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        500,
        workflow_execution_signaled_event_attributes=WorkflowExecutionSignaledEventAttributes(
            signal_name="claimant_texted"
        ),
    )
    h.task(501, 510)
    h.activity("ai_model_turn", 510, 511, 541)
    h.task(541, 550)
    h.activity("ai_send_sms", 550, 551, 580)
    [span] = history_spans(h.events, sms=True)
    # the row was written 10 ms into the send; signalled 2 ms before the server noted it
    turn = Turn("sms", "text", 0, 0.063, 0.001, 1, 5, done_at=0.561, model_worker=0.003)
    turn.span = span
    parts = parts_of(turn)
    assert parts is not None
    assert parts.activity_rest == pytest.approx(0.030 + 0.010 - 0.003)
    assert parts.other == pytest.approx(0.063 - 0.040 - 0.002 - 0.018)
    assert parts.total == pytest.approx(0.063)


def test_mean_parts_averages_each_part() -> None:
    a = Parts(0.001, 0.002, 0.010, 0.0, 0.020, 0.005)
    b = Parts(0.003, 0.004, 0.030, 0.002, 0.040, 0.015)
    mean = mean_parts([a, b])
    expected = Parts(0.002, 0.003, 0.020, 0.001, 0.030, 0.010)
    assert astuple(mean) == pytest.approx(astuple(expected))
    assert mean.total == pytest.approx((a.total + b.total) / 2)
