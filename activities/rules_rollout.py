"""The activity of the rules rollout: a RULES_CHANGED event to every claimant with a task."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from adapters import task_store
from schemas.outreach import ChangeEvent, ChangeKind
from schemas.rules import RulesRolledOut, RulesRollout
from workflows.outreach_client import OutreachClient

log = get_logger(__name__)

PAGE = 1000  # claimants told between heartbeats (a retry resumes at the last page told)
IN_FLIGHT = 20


def rules_changed_event(version: int, user_id: int, now: datetime) -> ChangeEvent:
    """The same id on a retry, so a workflow applies it once."""
    return ChangeEvent(
        event_id=f"rules-{version}-{user_id}",
        kind=ChangeKind.RULES_CHANGED,
        user_id=user_id,
        occurred_at=now,
        reason=f"rules version {version} saved",
    )


def split_changed_event(split_id: int, change: str, user_id: int, now: datetime) -> ChangeEvent:
    """A live split started or ended: re-assess (the arm, and its rules). Its own id per
    split and change, so neither a rules save nor the other change swallows it."""
    return ChangeEvent(
        event_id=f"split-{split_id}-{change}-{user_id}",
        kind=ChangeKind.RULES_CHANGED,
        user_id=user_id,
        occurred_at=now,
        reason=f"live split {split_id} {change}",
    )


def _event(request: RulesRollout, user_id: int, now: datetime) -> ChangeEvent:
    if request.split_id is not None:
        return split_changed_event(request.split_id, request.split_change, user_id, now)
    return rules_changed_event(request.version, user_id, now)


class RulesRolloutActivities:
    def __init__(self, dialler: AsyncEngine, client: Client, task_queue: str) -> None:
        self._dialler = dialler
        self._outreach = OutreachClient.over(client, task_queue)

    @activity.defn
    async def tell_claimants(self, request: RulesRollout) -> RulesRolledOut:
        """Running workflows only (a signal, no start): a claimant without one has nothing
        to re-assess, and any run that starts later reads the rules in force. Pages of
        `PAGE`, heartbeating the count done; a retry resumes from the last heartbeat."""
        user_ids = await task_store.task_user_ids(self._dialler)
        done, told, refused = _resumed(activity.info().heartbeat_details)
        now = datetime.now(UTC)
        while done < len(user_ids):
            page = user_ids[done : done + PAGE]
            events = [_event(request, user_id, now) for user_id in page]
            result = await self._outreach.tell_many(events, start=False, in_flight=IN_FLIGHT)
            if result.unavailable is not None:
                # nothing is lost: the retry starts again from the last page heartbeated
                raise ApplicationError(f"Temporal unavailable: {result.unavailable}")
            if result.refused:
                log.warning(
                    "rules rollout refused",
                    version=request.version,
                    claimants=sorted(result.refused),
                )
            done += len(page)
            told += len(result.reached)
            refused += len(result.refused)
            activity.heartbeat(done, told, refused)
        return RulesRolledOut(
            version=request.version,
            claimants=len(user_ids),
            told=told,
            not_running=len(user_ids) - told - refused,
            refused=refused,
        )


def _resumed(details: object) -> tuple[int, int, int]:
    """(claimants done, told, refused) from the last heartbeat of an earlier attempt."""
    values = list(details) if isinstance(details, list | tuple) else []
    if len(values) == 3 and all(isinstance(v, int) for v in values):
        return values[0], values[1], values[2]
    return 0, 0, 0
