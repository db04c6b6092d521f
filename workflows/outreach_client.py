"""The one door to a claimant's OutreachWorkflow (`outreach-<user_id>`).

Web pages, the JSON API, the CLI and the workers reach the workflow only through
`OutreachClient`, so there is one timeout policy and one mapping of what can go wrong:

- `OutreachRefused`: the workflow answered no (an Update's validator or handler refused, or
  no run is going for the claimant). Nothing was done; the message says why, for a person.
  The web maps it to 409.
- `OutreachUnavailable`: Temporal (or the outreach worker) did not answer in time or cannot
  be reached. Nothing is known to have been done; try again. The web maps it to 503 with
  `Retry-After`.

A caller's own cancellation (`asyncio.CancelledError`) is never mapped: it propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from schemas.messaging import MagicLinkCreated
from schemas.outreach import (
    Assessment,
    CallbackReassigned,
    CallbackReassignment,
    CallbackRequest,
    CallbackScheduled,
    ChangeEvent,
    Claim,
    ClaimGranted,
    ClaimRequest,
    ClaimTakenBack,
    MagicLinkRequest,
    NoteAdded,
    NoteRequest,
    OutcomeRecorded,
    OutcomeRequest,
    OutreachInput,
    OutreachState,
    PauseRequest,
    Released,
    ReleaseRequest,
    ResumeRequest,
    SupervisorReleaseRequest,
)
from workflows.outreach import OutreachWorkflow
from workflows.outreach import workflow_id_for as workflow_id_for  # the Temporal UI links

Request = TypeVar("Request")
Response = TypeVar("Response")

# One policy for every call: an agent is waiting on most of them, and an Update that has not
# answered in this long is stuck behind a worker that is down or overloaded.
TIMEOUT_SECONDS = 15.0
RETRY_AFTER_SECONDS = 5

# Failures that pass by themselves (Temporal away or overloaded): worth trying again.
TRANSIENT_STATUSES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
    }
)
NOT_RUNNING = "There is no outreach running for this claimant (nothing left to chase)."


@dataclass
class Told:
    """What `OutreachClient.tell_many` achieved, by claimant (user id)."""

    reached: list[int] = field(default_factory=list)  # delivered (or running, when nudged)
    refused: dict[int, str] = field(default_factory=dict)  # the workflow said no: why
    not_told: list[int] = field(default_factory=list)  # Temporal away: send again later
    unavailable: str | None = None  # the first sign of it


class OutreachRefused(Exception):
    """The workflow refused; nothing was done. `str(error)` is the reason, for a person."""


class OutreachNotRunning(OutreachRefused):
    """No run of the claimant's workflow is going (never started, or ended at DONE)."""

    def __init__(self) -> None:
        super().__init__(NOT_RUNNING)


class OutreachUnavailable(Exception):
    """Temporal did not answer in time or cannot be reached; try again later."""

    retry_after_seconds = RETRY_AFTER_SECONDS


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying (Temporal away or overloaded); False for errors the
    same request will always meet (a rejected payload, a bad argument, a refusal)."""
    if isinstance(error, OutreachUnavailable):
        return True
    if isinstance(error, RPCError):
        return error.status in TRANSIENT_STATUSES
    return isinstance(error, ConnectionError | TimeoutError | OSError)


def refusal_reason(error: WorkflowUpdateFailedError) -> str:
    cause = error.cause
    return str(getattr(cause, "message", None) or cause or error)


ClientSource = Callable[[], Awaitable[Client]]


def connected_to(client: Client) -> ClientSource:
    """The source for a process that connects at start (workers, the CLI)."""

    async def connected() -> Client:
        return client

    return connected


class WorkflowDoor:
    """What every workflow client is built with: the way its process gets the Temporal
    client (connecting lazily lets the web app start, and recover, while Temporal is down),
    the task queue, and its one timeout."""

    default_timeout: ClassVar[float] = TIMEOUT_SECONDS

    def __init__(
        self, connect: ClientSource, task_queue: str, *, timeout: float | None = None
    ) -> None:
        self._connect = connect
        self._task_queue = task_queue
        self._timeout = self.default_timeout if timeout is None else timeout

    @classmethod
    def over(cls, client: Client, task_queue: str) -> Self:
        """For processes that connect at start (workers, the CLI)."""
        return cls(connected_to(client), task_queue)


class OutreachClient(WorkflowDoor):
    """Built by a process (web app, worker, CLI); see `WorkflowDoor`."""

    # --- agent actions (Updates) -------------------------------------------------------

    async def claim(self, user_id: int, request: ClaimRequest) -> ClaimGranted:
        return await self._update(user_id, OutreachWorkflow.claim, request)

    async def record_outcome(self, user_id: int, request: OutcomeRequest) -> OutcomeRecorded:
        return await self._update(user_id, OutreachWorkflow.record_outcome, request)

    async def release(self, user_id: int, request: ReleaseRequest) -> Released:
        return await self._update(user_id, OutreachWorkflow.release, request)

    async def schedule_callback(self, user_id: int, request: CallbackRequest) -> CallbackScheduled:
        return await self._update(user_id, OutreachWorkflow.schedule_callback, request)

    async def add_note(self, user_id: int, request: NoteRequest) -> NoteAdded:
        return await self._update(user_id, OutreachWorkflow.add_note, request)

    async def send_magic_link(self, user_id: int, request: MagicLinkRequest) -> MagicLinkCreated:
        return await self._update(user_id, OutreachWorkflow.send_magic_link, request)

    # --- supervisor actions (Updates) ----------------------------------------------------

    async def pause(self, user_id: int, request: PauseRequest) -> OutcomeRecorded:
        return await self._update(user_id, OutreachWorkflow.pause, request)

    async def resume(self, user_id: int, request: ResumeRequest) -> OutcomeRecorded:
        return await self._update(user_id, OutreachWorkflow.resume, request)

    async def supervisor_release(
        self, user_id: int, request: SupervisorReleaseRequest
    ) -> ClaimTakenBack:
        return await self._update(user_id, OutreachWorkflow.supervisor_release, request)

    async def reassign_callback(
        self, user_id: int, request: CallbackReassignment
    ) -> CallbackReassigned:
        return await self._update(user_id, OutreachWorkflow.reassign_callback, request)

    # --- changes (signals) and reads (queries) -------------------------------------------

    async def deliver(self, event: ChangeEvent) -> None:
        """Signal-with-start: a running workflow gets the event through its `change` signal;
        when none is running, one is started with the event as its first signal."""
        client = await self._client()
        await self._mapped(
            client.start_workflow(
                OutreachWorkflow.run,
                OutreachInput(event.user_id),
                id=workflow_id_for(event.user_id),
                task_queue=self._task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="change",
                start_signal_args=[event],
                # ids only: summaries are shown in the Temporal UI
                static_summary=f"Outreach for claimant {event.user_id}",
            )
        )

    async def nudge(self, event: ChangeEvent) -> bool:
        """The event to a running workflow only; False when none is running."""
        handle = await self._handle(event.user_id)
        try:
            await self._mapped(handle.signal(OutreachWorkflow.change, event))
        except OutreachNotRunning:
            return False
        return True

    async def tell_many(
        self, events: Sequence[ChangeEvent], *, start: bool, in_flight: int = 20
    ) -> Told:
        """Each event to its claimant's workflow, `in_flight` at a time: by signal-with-start
        (`start`), or to running workflows only. Stops at the first sign that Temporal is
        away: the events not sent then are listed in `not_told`, to be sent again later."""
        gate = asyncio.Semaphore(in_flight)
        told = Told()

        async def tell(event: ChangeEvent) -> None:
            async with gate:
                if told.unavailable is not None:
                    told.not_told.append(event.user_id)
                    return
                try:
                    if start:
                        await self.deliver(event)
                        told.reached.append(event.user_id)
                    elif await self.nudge(event):
                        told.reached.append(event.user_id)
                except OutreachUnavailable as error:
                    told.unavailable = told.unavailable or str(error)
                    told.not_told.append(event.user_id)
                except OutreachRefused as error:
                    told.refused[event.user_id] = str(error)

        await asyncio.gather(*(tell(event) for event in events))
        return told

    async def assessment(self, user_id: int) -> Assessment | None:
        """Where the running workflow says the claimant stands; None when none is running."""
        handle = await self._handle(user_id)
        try:
            return await self._mapped(handle.query(OutreachWorkflow.assessment))
        except OutreachNotRunning:
            return None

    async def state(self, user_id: int) -> OutreachState | None:
        """What the running workflow holds (facts with any pause, claim); None when no run
        is going."""
        handle = await self._handle(user_id)
        try:
            return await self._mapped(handle.query(OutreachWorkflow.state))
        except OutreachNotRunning:
            return None

    async def current_claim(self, user_id: int) -> Claim | None:
        """The claim the running workflow holds for the claimant (whose, until when); None
        when it holds none or no run is going."""
        handle = await self._handle(user_id)
        try:
            state = await self._mapped(handle.query(OutreachWorkflow.state))
        except OutreachNotRunning:
            return None
        return state.claim if state is not None else None

    # --- the one mapping -----------------------------------------------------------------

    async def _client(self) -> Client:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._connect()
        except (RuntimeError, OSError, TimeoutError, RPCError) as error:
            raise OutreachUnavailable(
                f"The outreach service is unavailable: {type(error).__name__}"
            ) from None

    async def _handle(self, user_id: int) -> WorkflowHandle[OutreachWorkflow, object]:
        client = await self._client()
        return client.get_workflow_handle_for(OutreachWorkflow.run, workflow_id_for(user_id))

    async def _update(
        self,
        user_id: int,
        update: UpdateMethodMultiParam[[OutreachWorkflow, Request], Response],
        request: Request,
    ) -> Response:
        handle = await self._handle(user_id)
        return await self._mapped(handle.execute_update(update, request))

    async def _mapped(self, call: Awaitable[Response]) -> Response:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except WorkflowUpdateFailedError as error:
            raise OutreachRefused(refusal_reason(error)) from None
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise OutreachUnavailable("The outreach service did not answer in time.") from None
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise OutreachNotRunning() from None
            if error.status in TRANSIENT_STATUSES:
                raise OutreachUnavailable(
                    f"The outreach service is unavailable ({error.status.name})."
                ) from None
            # The same request will always meet this (a payload too large, a bad argument).
            raise OutreachRefused(f"Temporal refused the request ({error.status.name}).") from None
        except (RuntimeError, OSError) as error:  # the connection broke or never came
            raise OutreachUnavailable(
                f"The outreach service is unavailable: {type(error).__name__}"
            ) from None
