"""Links from the supervisor pages into the Temporal Web UI (`TEMPORAL_UI_URL`).

A claimant's outreach is one workflow (`outreach-<user id>`); a list of claimants is a
visibility query over the outreach search attributes (`schemas.search_attributes`), which
carry no personal data, so a query string in a URL is safe to log.
"""

from __future__ import annotations

from urllib.parse import quote

from config.settings import Settings
from schemas import search_attributes as sa
from workflows.outreach_client import workflow_id_for

WORKFLOW_TYPE = "Outreach"  # @workflow.defn(name=...)


def _base(settings: Settings) -> str:
    ui = str(settings.temporal_ui_url).rstrip("/")
    return f"{ui}/namespaces/{quote(settings.temporal_namespace, safe='')}"


def workflow_url(settings: Settings, user_id: int) -> str:
    """The claimant's outreach workflow: its history, pending activities and timers."""
    return workflow_id_url(settings, workflow_id_for(user_id))


def workflow_id_url(settings: Settings, workflow_id: str) -> str:
    """Any workflow by its id, e.g. an AI contact's (each model and tool call an event)."""
    return f"{_base(settings)}/workflows/{quote(workflow_id, safe='')}"


def _quoted(value: str) -> str:
    """A visibility-query string literal (our values are enum members: no quotes inside)."""
    if "'" in value or "\\" in value:
        raise ValueError("visibility query values may not contain quotes")
    return f"'{value}'"


def outreach_query(*, queue: str | None = None, stage: str | None = None) -> str:
    """Running outreach workflows, narrowed to one queue or stage."""
    clauses = [f"WorkflowType = {_quoted(WORKFLOW_TYPE)}", "ExecutionStatus = 'Running'"]
    if queue is not None:
        clauses.append(f"{sa.OUTREACH_QUEUE.name} = {_quoted(queue)}")
    if stage is not None:
        clauses.append(f"{sa.OUTREACH_STAGE.name} = {_quoted(stage)}")
    return " AND ".join(clauses)


def visibility_url(settings: Settings, query: str) -> str:
    """The Temporal UI's workflow list filtered by `query`."""
    return f"{_base(settings)}/workflows?query={quote(query, safe='')}"
