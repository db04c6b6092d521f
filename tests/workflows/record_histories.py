"""Record OutreachWorkflow histories for the replay tests.

    .venv/bin/python -m tests.workflows.record_histories [SCENARIO ...]

Run it when a workflow change is *meant* to be incompatible (and ship it behind
`workflow.patched`), never to make a failing replay test pass. Each scenario runs against a
fresh dev server and scratch databases; the histories land in tests/workflows/histories/.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import insert
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import search_attributes
from schemas.dialler_db import agents
from schemas.enums import Queue
from schemas.outreach import ChangeKind, OutcomeRequest, PauseRequest, ResumeRequest
from tests.factories import add_claimant, set_requirements, set_user
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import claim_task, event, start, task_in
from workflows.outreach_client import OutreachClient

HISTORIES = Path(__file__).parent / "histories"


async def journey(h: Harness) -> str:
    """Unsigned, claimed, no answer, signs, documents arrive: done."""
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    handle = await start(h, user_id)
    await claim_task(h, user_id, Queue.UNSIGNED)
    await h.claims.record_outcome(user_id, OutcomeRequest(agent_id=1, disposition="no_answer"))
    await set_user(h.replica, user_id, current_signature_file_id=5)
    await handle.signal("change", event(ChangeKind.SIGNATURE_ADDED, user_id))
    await task_in(h, user_id, "outstanding")
    await set_requirements(h.replica, user_id, "RECEIVED")
    await handle.signal(
        "change",
        event(ChangeKind.REQUIREMENT_CHANGED, user_id, claim_id=user_id,
              requirement_id=user_id * 10, requirement_status="RECEIVED"),
    )  # fmt: skip
    await handle.result()
    return handle.id


async def opt_out(h: Harness) -> str:
    user_id = await add_claimant(h.replica, signed=True, pending=2)
    handle = await start(h, user_id)
    await task_in(h, user_id, "outstanding")
    await handle.signal("change", event(ChangeKind.OPTED_OUT, user_id, reason="sms_stop"))
    await handle.result()
    return handle.id


async def supervisor_pause(h: Harness) -> str:
    """Unsigned; a supervisor pauses; the claimant signs while paused (no task); resumed into
    outstanding; documents arrive: done. Keeps the pause, resume and reload paths stable."""
    door = OutreachClient.over(h.client, h.task_queue)
    user_id = await add_claimant(h.replica, signed=False, pending=1)
    handle = await start(h, user_id)
    await task_in(h, user_id, "unsigned")
    await door.pause(user_id, PauseRequest(supervisor_id=2, reason="complaint under review"))
    await task_in(h, user_id, None)
    await set_user(h.replica, user_id, current_signature_file_id=5)
    await handle.signal("change", event(ChangeKind.SIGNATURE_ADDED, user_id))
    await door.resume(user_id, ResumeRequest(supervisor_id=2, reason="complaint closed"))
    await task_in(h, user_id, "outstanding")
    await set_requirements(h.replica, user_id, "RECEIVED")
    await handle.signal(
        "change",
        event(ChangeKind.REQUIREMENT_CHANGED, user_id, claim_id=user_id,
              requirement_id=user_id * 10, requirement_status="RECEIVED"),
    )  # fmt: skip
    await handle.result()
    return handle.id


# The first release: no running history predates these. From now on a recorded history is
# kept; a change that is meant to be incompatible ships behind `workflow.patched` and its
# scenario is recorded again under a new name (the old file keeps testing the old path).
SCENARIOS = {
    "journey": journey,
    "opt_out": opt_out,
    "supervisor_pause": supervisor_pause,  # issue 12: the supervisor's pause and resume
}


async def main(names: list[str]) -> None:
    chosen = [(name, SCENARIOS[name]) for name in names or SCENARIOS]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=list(search_attributes.ALL),
        ui=False,
    )
    HISTORIES.mkdir(exist_ok=True)
    async with (
        scratch_databases("record") as (dialler, replica),
        running_harness(env, Settings(_env_file=None), dialler, replica) as h,  # type: ignore[call-arg]
    ):
        async with dialler.begin() as conn:
            await conn.execute(
                insert(agents),
                [
                    {"id": 1, "email": "a@t", "display_name": "Agent", "role": "agent"},
                    {"id": 2, "email": "s@t", "display_name": "Lead", "role": "supervisor"},
                ],
            )
        for name, scenario in chosen:
            workflow_id = await scenario(h)
            history = await h.client.get_workflow_handle(workflow_id).fetch_history()
            (HISTORIES / f"outreach_{name}.json").write_text(history.to_json())
            print(f"recorded {name}: {len(history.events)} events")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    os._exit(0)  # SDK issue 300: WorkflowEnvironment can crash at interpreter exit
