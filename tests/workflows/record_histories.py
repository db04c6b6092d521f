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
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from schemas import search_attributes
from schemas.ai import ClaimantTurn
from schemas.dialler_db import agents
from schemas.enums import Queue
from schemas.outreach import ChangeKind, OutcomeRequest, PauseRequest, ResumeRequest
from tests.factories import add_claimant, set_requirements, set_user
from tests.fake_openai import fake_openai
from tests.workflows.ai_stack import AiStack, ai_stack
from tests.workflows.conftest import Harness, running_harness, scratch_databases
from tests.workflows.helpers import claim_task, event, start, task_in
from workflows.ai_contact import AiContactWorkflow
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


async def ai_handoff(s: AiStack) -> dict[str, str]:
    """Routed to the AI by SMS; the claimant asks what is missing, then for a person: the AI
    looks up the claim and hands off; a person claims, records promised documents; the
    documents arrive: done. Keeps the AI's child workflow, its result and the hand-off
    stable in the outreach workflow, and the conversation's steps in the AI contact's."""
    h = s.h
    user_id = await add_claimant(h.replica, signed=True, pending=1, consents=("live_call", "sms"))
    handle = await start(h, user_id)
    conversation = await s.conversation(user_id)
    s.model.reply_tool("claim_context", {})
    s.model.reply_tool(
        "hand_off",
        {"summary": "Asked what is missing, then for a person", "reason": "asked_for_person"},
    )
    await s.contact(conversation.workflow_id).signal(
        AiContactWorkflow.claimant_texted,
        ClaimantTurn("What's missing? Can I talk to someone?", "SMr1"),
    )
    await s.ended(user_id)
    await task_in(h, user_id, "outstanding")
    await claim_task(h, user_id, Queue.OUTSTANDING)
    await h.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=1, disposition="promised_documents")
    )
    await set_requirements(h.replica, user_id, "RECEIVED")
    await handle.signal(
        "change",
        event(ChangeKind.REQUIREMENT_CHANGED, user_id, claim_id=user_id,
              requirement_id=user_id * 10, requirement_status="RECEIVED"),
    )  # fmt: skip
    await handle.result()
    return {"outreach_ai_handoff": handle.id, "ai_contact_sms_handoff": conversation.workflow_id}


# The first release: no running history predates these. From now on a recorded history is
# kept; a change that is meant to be incompatible ships behind `workflow.patched` and its
# scenario is recorded again under a new name (the old file keeps testing the old path).
SCENARIOS = {
    "journey": journey,
    "opt_out": opt_out,
    "supervisor_pause": supervisor_pause,  # issue 12: the supervisor's pause and resume
}
AI_SCENARIOS = {"ai_handoff": ai_handoff}  # issue 13: the AI's contact and hand-off


async def main(names: list[str]) -> None:
    chosen = [(name, SCENARIOS[name]) for name in names or SCENARIOS if name in SCENARIOS]
    chosen_ai = [
        (name, AI_SCENARIOS[name]) for name in names or AI_SCENARIOS if name in AI_SCENARIOS
    ]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        search_attributes=list(search_attributes.ALL),
        ui=False,
    )
    HISTORIES.mkdir(exist_ok=True)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with (
        scratch_databases("record") as (dialler, replica),
        running_harness(env, settings, dialler, replica) as h,
    ):
        await _agents(dialler)
        for name, scenario in chosen:
            await _save(h.client, f"outreach_{name}", await scenario(h))
    async with scratch_databases("record_ai") as (dialler, replica):
        await _agents(dialler)
        with fake_openai() as model:
            async with ai_stack(env, settings, dialler, replica, model) as s:
                for _, ai_scenario in chosen_ai:
                    for stem, workflow_id in (await ai_scenario(s)).items():
                        await _save(s.h.client, stem, workflow_id)
    await env.shutdown()


async def _agents(dialler: AsyncEngine) -> None:
    async with dialler.begin() as conn:
        await conn.execute(
            insert(agents),
            [
                {"id": 1, "email": "a@t", "display_name": "Agent", "role": "agent"},
                {"id": 2, "email": "s@t", "display_name": "Lead", "role": "supervisor"},
            ],
        )


async def _save(client: Client, stem: str, workflow_id: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{stem}.json").write_text(history.to_json())
    print(f"recorded {stem}: {len(history.events)} events")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
    os._exit(0)  # SDK issue 300: WorkflowEnvironment can crash at interpreter exit
