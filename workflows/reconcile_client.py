"""The one door to ReconcileWorkflow for callers outside the schedule (`dialler queue
refresh`): run a reconcile now and wait for its result.

The mapping follows `workflows.outreach_client`:

- `ReconcileFailed`: the run ended without a result (it failed, was cancelled or
  terminated, or timed out). The message says why, for an operator.
- `ReconcileUnavailable`: Temporal cannot be reached, or did not answer in time; try again.

A caller's own cancellation (`asyncio.CancelledError`) is never mapped: it propagates.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from schemas.reconcile import ReconcileInput, ReconcileResult
from workflows.outreach_client import WorkflowDoor, is_transient
from workflows.reconcile import ReconcileWorkflow

# A reconcile pages through every claimant: minutes at a few hundred thousand. Longer than
# this is a worker that is down or stuck, not a slow run.
TIMEOUT_SECONDS = 30 * 60.0
RETRY_AFTER_SECONDS = 30


class ReconcileFailed(Exception):
    """The run ended without a result; `str(error)` says why."""


class ReconcileUnavailable(Exception):
    """Temporal could not be reached or did not answer in time; try again later."""

    retry_after_seconds = RETRY_AFTER_SECONDS


class ReconcileClient(WorkflowDoor):
    default_timeout = TIMEOUT_SECONDS

    async def run_now(self, request: ReconcileInput | None = None) -> ReconcileResult:
        """Start a reconcile run (its own id: it never joins a scheduled one) and wait for it."""
        try:
            async with asyncio.timeout(self._timeout):
                client = await self._connect()
                return await client.execute_workflow(
                    ReconcileWorkflow.run,
                    request or ReconcileInput(),
                    id=f"reconcile-manual-{uuid.uuid4().hex[:8]}",
                    task_queue=self._task_queue,
                )
        except WorkflowFailureError as error:
            cause = error.cause
            reason = getattr(cause, "message", None) or cause or error
            raise ReconcileFailed(f"The reconcile run failed: {reason}") from None
        except TimeoutError:
            raise ReconcileUnavailable("The reconcile run did not finish in time.") from None
        except RPCError as error:
            if is_transient(error):
                raise ReconcileUnavailable(
                    f"Temporal is unavailable ({error.status.name})."
                ) from None
            raise ReconcileFailed(f"Temporal refused the run ({error.status.name}).") from None
        except (RuntimeError, OSError) as error:  # the connection broke or never came
            raise ReconcileUnavailable(f"Temporal is unavailable: {type(error).__name__}") from None
