"""The one door to RulesRolloutWorkflow: start the rollout of a saved rules version (the web
app and the CLI), or wait for its result (the CLI); start the re-scoring after a live split
starts or ends (`start_split`).

- `RolloutUnavailable`: Temporal cannot be reached or did not answer in time. The version is
  saved all the same: workflows pick it up at their next change or re-score, and
  `dialler scoring rules-rollout VERSION` starts the rollout again.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from schemas.rules import RulesRolledOut, RulesRollout
from workflows.outreach_client import WorkflowDoor
from workflows.rules_rollout import RulesRolloutWorkflow
from workflows.rules_rollout import rollout_id_for as rollout_id_for  # the Temporal UI links
from workflows.rules_rollout import split_rollout_id_for as split_rollout_id_for

WAIT_SECONDS = 2 * 60 * 60.0  # the activity's own limit


class RolloutUnavailable(Exception):
    """Temporal could not be reached, did not answer in time, or the run failed."""


class RulesRolloutClient(WorkflowDoor):
    async def start(self, version: int) -> str:
        """Start the rollout of `version` (once: starting it again while it runs joins the
        run); its workflow id."""
        try:
            async with asyncio.timeout(self._timeout):
                client = await self._connect()
                handle = await self._start(client, version)
        except (TimeoutError, RPCError, RuntimeError, OSError) as error:
            raise RolloutUnavailable(
                f"Temporal is unavailable ({type(error).__name__}): the re-scoring did not start"
            ) from None
        return handle

    async def start_split(self, split_id: int, version: int, change: str) -> str:
        """Start the re-scoring after live split `split_id` (candidate `version`) started or
        ended (`change`); its workflow id."""
        request = RulesRollout(version, split_id=split_id, split_change=change)
        try:
            async with asyncio.timeout(self._timeout):
                client = await self._connect()
                handle = await client.start_workflow(
                    RulesRolloutWorkflow.run,
                    request,
                    id=split_rollout_id_for(split_id, change),
                    task_queue=self._task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    static_summary=f"Re-score the queues: live split {split_id} {change}",
                )
        except (TimeoutError, RPCError, RuntimeError, OSError) as error:
            raise RolloutUnavailable(
                f"Temporal is unavailable ({type(error).__name__}): the re-scoring did not start"
            ) from None
        return handle.id

    async def run(self, version: int) -> RulesRolledOut:
        """Start the rollout of `version` and wait for its result."""
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                client = await self._connect()
                workflow_id = await self._start(client, version)
                handle = client.get_workflow_handle_for(RulesRolloutWorkflow.run, workflow_id)
                return await handle.result()
        except WorkflowFailureError as error:
            raise RolloutUnavailable(f"The re-scoring failed: {error.cause or error}") from None
        except (TimeoutError, RPCError, RuntimeError, OSError) as error:
            raise RolloutUnavailable(
                f"Temporal is unavailable ({type(error).__name__}): the re-scoring did not finish"
            ) from None

    async def _start(self, client: Client, version: int) -> str:
        handle = await client.start_workflow(
            RulesRolloutWorkflow.run,
            RulesRollout(version),
            id=rollout_id_for(version),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Re-score the queues under rules version {version}",
        )
        return handle.id
