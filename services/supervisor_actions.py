"""What a supervisor does to a claimant's outreach: pause or resume it, take back a stuck
claim, give the pending callback to another agent or to the shared pool, add a note.

Every action goes through the workflow's one door (`OutreachClient`): the workflow validates
it against its own state (the refusals are `domain.agent_actions`'), and audits the changes it
makes (`outreach_paused`, `outreach_resumed`, `claim_released_by_supervisor`,
`callback_reassigned`, with the supervisor as actor). A note is the workflow's `add_note`
with the supervisor as author, audited here (`supervisor_note_added`: the note's id, not its
text). What only the dialler's tables know (is the callback's new owner an active agent?) is
checked here first.

`OutreachRefused` (the workflow said no: the message says why) and `OutreachUnavailable`
come back to the caller, which shows them with the form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log
from adapters.agent_store import display_name_of, staff_record
from adapters.audit_log import append_audit
from schemas.enums import AgentRole, CallbackStatus
from schemas.outreach import (
    CallbackReassignment,
    NoteRequest,
    PauseRequest,
    ResumeRequest,
    SupervisorReleaseRequest,
)
from workflows.outreach_client import OutreachClient, OutreachRefused

NOTE_ADDED = "supervisor_note_added"


@dataclass(frozen=True)
class ActionDone:
    message: str  # what happened, for the supervisor


class SupervisorActions:
    def __init__(
        self,
        dialler: AsyncEngine,
        outreach: OutreachClient,
        *,
        queue_changed: Callable[[], None] | None = None,
    ) -> None:
        self._dialler = dialler
        self._outreach = outreach
        # told after an action that moves the claimant's task (live queue depths)
        self._queue_changed = queue_changed or (lambda: None)

    async def pause(self, user_id: int, supervisor_id: int, reason: str) -> ActionDone:
        await self._outreach.pause(user_id, PauseRequest(supervisor_id, reason))
        self._queue_changed()
        return ActionDone("Outreach paused: the claimant gets no task until it is resumed.")

    async def resume(self, user_id: int, supervisor_id: int, reason: str) -> ActionDone:
        standing = await self._outreach.resume(user_id, ResumeRequest(supervisor_id, reason))
        self._queue_changed()
        if standing.not_before is None:
            return ActionDone(f"Outreach resumed; no task for now: {standing.reason}.")
        return ActionDone(f"Outreach resumed: back in the {standing.stage.value} queue.")

    async def release(
        self, user_id: int, supervisor_id: int, reason: str, seen_agent_id: int | None
    ) -> ActionDone:
        taken = await self._outreach.supervisor_release(
            user_id, SupervisorReleaseRequest(supervisor_id, reason, seen_agent_id)
        )
        self._queue_changed()
        if taken.agent_id is None:
            return ActionDone("The task row was stuck as claimed; it has been written afresh.")
        return ActionDone(f"Claim taken back from agent {taken.agent_id}.")

    async def reassign_callback(
        self, user_id: int, supervisor_id: int, owner_agent_id: int | None
    ) -> ActionDone:
        """To `owner_agent_id` (an active agent, a person), or to the shared pool (None).
        The callback keeps its time and its notes."""
        async with self._dialler.connect() as conn:
            owner = None if owner_agent_id is None else await staff_record(conn, owner_agent_id)
            pending = await call_log.latest_callback(conn, user_id, display_name_of)
        if owner_agent_id is not None and (
            owner is None or not owner.is_active or owner.is_ai or owner.role != AgentRole.AGENT
        ):
            raise OutreachRefused("a callback can only be given to an active agent")
        notes = (
            (pending.notes or "") if pending and pending.status == CallbackStatus.PENDING else ""
        )
        moved = await self._outreach.reassign_callback(
            user_id, CallbackReassignment(supervisor_id, owner_agent_id, notes)
        )
        self._queue_changed()
        if moved.owner_agent_id is None:
            return ActionDone("The callback is shared: any callback agent may take it.")
        return ActionDone(f"The callback is now agent {moved.owner_agent_id}'s.")

    async def add_note(self, user_id: int, supervisor_id: int, text: str) -> ActionDone:
        added = await self._outreach.add_note(user_id, NoteRequest(supervisor_id, text))
        async with self._dialler.begin() as conn:
            await append_audit(
                conn,
                actor_type="agent",
                actor_id=str(supervisor_id),
                action=NOTE_ADDED,
                subject_type="user",
                subject_id=str(user_id),
                detail={"note_id": added.note_id},
            )
        return ActionDone("Note added.")
