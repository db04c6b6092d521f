"""The one door to the AI agent's workflows: a running AI contact (`AiContact`, its id kept in
`ai_conversations.workflow_id`) and the triage of an inbound SMS (`SmsTriage`).

The Twilio webhooks and the SMS webhook reach them only through `AiContactClient`, so there
is one timeout and one mapping of what can go wrong:

- `AiContactRefused`: the workflow answered no (an Update's validator or handler refused, or
  the contact has ended: `AiContactNotRunning`). Nothing was done.
- `AiContactUnavailable`: Temporal (or the AI worker) did not answer in time or cannot be
  reached. Nothing is known to have been done. A voice turn then apologises and hands the
  claimant to a person (the workflow's own time limit ends the contact as a hand-off); the
  web maps it to 503 with `Retry-After` elsewhere.

The workflows are named by string and their messages are the `schemas.ai` dataclasses, so
neither the web app nor this module imports workflow code (the AI worker runs it).

A caller's own cancellation (`asyncio.CancelledError`) is never mapped: it propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.ai import AiContactProgress, AiReply, CallProgress, ClaimantTurn, TriageInput
from workflows.outreach_client import TRANSIENT_STATUSES, WorkflowDoor, refusal_reason

Response = TypeVar("Response")

AI_CONTACT_WORKFLOW = "AiContact"
SMS_TRIAGE_WORKFLOW = "SmsTriage"
# the AI contact's interface (workflows/ai_contact.py)
CLAIMANT_SAID = "claimant_said"  # Update: a voice turn, answered with what to say
CLAIMANT_TEXTED = "claimant_texted"  # signal: an inbound SMS in an AI SMS conversation
CALL_PROGRESS = "call_progress"  # signal: answered, machine, no answer, ended...
PROGRESS = "progress"  # query

# Twilio waits 15 s for the TwiML of a speech turn; a model call is a few seconds. A turn not
# answered in this long is apologised for while Twilio still listens.
TIMEOUT_SECONDS = 8.0
RETRY_AFTER_SECONDS = 5
NOT_RUNNING = "This AI conversation has ended."


def triage_workflow_id(message_id: int) -> str:
    """One triage per inbound message: a webhook Twilio repeats starts it once."""
    return f"sms-triage-{message_id}"


class AiContactRefused(Exception):
    """The workflow refused; nothing was done. `str(error)` says why."""


class AiContactNotRunning(AiContactRefused):
    """No run with that workflow id is going (it ended, or never started)."""

    def __init__(self) -> None:
        super().__init__(NOT_RUNNING)


class AiContactUnavailable(Exception):
    """Temporal did not answer in time or cannot be reached; try again later."""

    retry_after_seconds = RETRY_AFTER_SECONDS


class AiContactClient(WorkflowDoor):
    """Built by a process (the web app) with the AI task queue (`settings.ai_task_queue`);
    see `WorkflowDoor`."""

    default_timeout = TIMEOUT_SECONDS

    async def claimant_said(self, workflow_id: str, turn: ClaimantTurn) -> AiReply:
        """What the claimant just said on the AI's call; what the AI says back."""
        handle = await self._handle(workflow_id)
        return await self._mapped(handle.execute_update(CLAIMANT_SAID, turn, result_type=AiReply))

    async def claimant_texted(self, workflow_id: str, turn: ClaimantTurn) -> None:
        """An inbound SMS in the claimant's AI SMS conversation (the reply goes out by SMS
        from the workflow; the turn id is the MessageSid, so a repeat is ignored)."""
        handle = await self._handle(workflow_id)
        await self._mapped(handle.signal(CLAIMANT_TEXTED, turn))

    async def call_progress(self, workflow_id: str, progress: CallProgress) -> None:
        handle = await self._handle(workflow_id)
        await self._mapped(handle.signal(CALL_PROGRESS, progress))

    async def progress(self, workflow_id: str) -> AiContactProgress | None:
        """Where the contact stands; None when no run is going."""
        handle = await self._handle(workflow_id)
        try:
            return await self._mapped(handle.query(PROGRESS, result_type=AiContactProgress))
        except AiContactNotRunning:
            return None

    async def start_triage(self, request: TriageInput) -> bool:
        """Start the triage of an inbound message on the AI task queue; False when it was
        started before (a repeated webhook: the id is never reused, even after it ended)."""
        client = await self._client()
        try:
            await self._mapped(
                client.start_workflow(
                    SMS_TRIAGE_WORKFLOW,
                    request,
                    id=triage_workflow_id(request.message_id),
                    task_queue=self._task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    # ids only: summaries are shown in the Temporal UI
                    static_summary=f"Triage of SMS {request.message_id}",
                )
            )
        except WorkflowAlreadyStartedError:
            return False
        return True

    # --- the one mapping -----------------------------------------------------------------

    async def _client(self) -> Client:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._connect()
        except (RuntimeError, OSError, TimeoutError, RPCError) as error:
            raise AiContactUnavailable(
                f"The AI agent service is unavailable: {type(error).__name__}"
            ) from None

    async def _handle(self, workflow_id: str) -> WorkflowHandle[object, object]:
        client = await self._client()
        return client.get_workflow_handle(workflow_id)

    async def _mapped(self, call: Awaitable[Response]) -> Response:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except WorkflowAlreadyStartedError:
            raise
        except WorkflowUpdateFailedError as error:
            raise AiContactRefused(refusal_reason(error)) from None
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise AiContactUnavailable("The AI agent service did not answer in time.") from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise AiContactNotRunning() from None
            if error.status in TRANSIENT_STATUSES:
                raise AiContactUnavailable(
                    f"The AI agent service is unavailable ({error.status.name})."
                ) from None
            # The same request will always meet this (a payload too large, a bad argument).
            raise AiContactRefused(f"Temporal refused the request ({error.status.name}).") from None
        except (RuntimeError, OSError) as error:  # the connection broke or never came
            raise AiContactUnavailable(
                f"The AI agent service is unavailable: {type(error).__name__}"
            ) from None
