"""Replay recorded histories against today's workflow code: a change that would break a
running claimant's workflow fails here, before it reaches production."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

with workflow.unsafe.imports_passed_through():
    # this module defines a workflow, so the sandbox re-imports it: pass these through
    from adapters.temporal import DATA_CONVERTER
    from schemas.outreach import OutreachInput, OutreachResult
    from workflows.ai_contact import AiContactWorkflow
from workflows.outreach import OutreachWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("outreach_*.json"))
AI_HISTORIES = sorted((Path(__file__).parent / "histories").glob("ai_contact_*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_there_are_histories_to_replay() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[OutreachWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("path", AI_HISTORIES, ids=[p.stem for p in AI_HISTORIES])
async def test_recorded_ai_contact_replays(path: Path) -> None:
    """The AI's conversations in flight survive a change to the AI contact workflow."""
    replayer = Replayer(workflows=[AiContactWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def test_there_is_an_ai_contact_history_to_replay() -> None:
    assert AI_HISTORIES


@workflow.defn(name="Outreach")
class ReorderedOutreach(OutreachWorkflow):
    """A careless edit: a timer before loading the facts changes the command sequence."""

    @workflow.run
    async def run(self, input: OutreachInput) -> OutreachResult:
        await workflow.sleep(1)
        return await super().run(input)


async def test_a_changed_workflow_fails_replay() -> None:
    replayer = Replayer(workflows=[ReorderedOutreach], data_converter=DATA_CONVERTER)
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(HISTORIES[0]))
