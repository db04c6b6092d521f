"""Queues and claimants for supervisors: task lists, the claimant page with its Temporal
history, and supervisor actions through the workflow's one door.

- `/supervisor/queues/<queue>`: a page of the queue's tasks (score and its breakdown,
  `not_before` and its reason, status, who holds it), filtered by status and sorted; ids
  only, no personal data; each claimant links to their page, the list to the Temporal UI's
  matching visibility query.
- `/supervisor/claimants`: the lookup by id, phone (any UK spelling) or email, posted (so
  no number or address is ever in a URL or an access log) and audited once per lookup.
- `/supervisor/claimants/<id>`: everything about the claimant (`services.claimant_record`),
  an audited view, with a deep link to their workflow in the Temporal UI, and their AI
  conversations with transcripts (each view of those audited too), each linked to its AI
  contact's workflow.
- `POST /supervisor/claimants/<id>/{pause,resume,release,callback,notes}`: the supervisor
  actions (`services.supervisor_actions`), htmx forms answered with the actions panel; a
  refusal re-renders it with the message (422).
"""

from __future__ import annotations

from collections.abc import Awaitable

from quart import Blueprint, redirect, render_template, request
from quart.typing import ResponseReturnValue

from adapters import task_store
from adapters.agent_store import display_name_of
from domain.agent_actions import note_refusal, reason_refusal
from domain.consent import CONSENT_LABELS
from domain.queue_listing import (
    FILTER_LABELS,
    ORDER_LABELS,
    PAGE_SIZE,
    ListingRefused,
    parse_listing,
    parse_queue,
)
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import NoteRequest
from services.claimant_context import Viewer
from services.claimant_record import ActionsPanel, ClaimantRecords, LookupKind
from services.supervisor_actions import ActionDone, SupervisorActions
from web.actions.console import client_ip
from web.auth.access import supervisor
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.converters import parse_id
from web.errors import APIError
from web.services import services
from web.temporal_links import outreach_query, visibility_url, workflow_id_url, workflow_url
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

blueprint = Blueprint("supervisor_claimants", __name__)

PANEL = "supervisor/_claimant_actions.html"
PANEL_PAGE = "supervisor/claimant_action.html"  # the panel alone, for a post without script
ENGINE_DOWN = "The dialler engine is not responding. Try again in a moment."
SHARED = "shared"
LOOKUP_LABELS = {LookupKind.ID: "Claimant id", LookupKind.PHONE: "Phone", LookupKind.EMAIL: "Email"}


def _records() -> ClaimantRecords:
    deps = services()
    return ClaimantRecords(
        deps.dialler_db, deps.replica_db, deps.claimant_context(), deps.consents(), deps.outreach()
    )


def _actions() -> SupervisorActions:
    deps = services()
    return SupervisorActions(
        deps.dialler_db, deps.outreach(), queue_changed=deps.depth_publisher().changed
    )


def _is_htmx() -> bool:
    return "HX-Request" in request.headers


# --- queues ------------------------------------------------------------------------------------


@blueprint.get("/supervisor/queues/<queue>")
@supervisor()
async def queue_list(queue: str) -> ResponseReturnValue:
    chosen = parse_queue(queue)
    if chosen is None:
        raise APIError(404, "not_found", "No such queue.")
    args = request.args
    try:
        listing = parse_listing(chosen, args.get("status"), args.get("sort"), args.get("page"))
    except ListingRefused as problem:
        raise APIError(400, "validation_error", str(problem)) from None
    async with services().dialler_db.connect() as conn:
        rows = await task_store.queue_listing(
            conn, listing, limit=PAGE_SIZE + 1, agent_name=display_name_of
        )
    settings = services().settings
    return await render_template(
        "supervisor/queue.html",
        section="queues",
        listing=listing,
        tasks=rows[:PAGE_SIZE],
        has_next=len(rows) > PAGE_SIZE,
        queues=list(Queue),
        filters=FILTER_LABELS,
        orders=ORDER_LABELS,
        temporal_list=visibility_url(settings, outreach_query(queue=chosen.value)),
    )


# --- the lookup --------------------------------------------------------------------------------


async def _lookup_page(
    kind: LookupKind = LookupKind.ID,
    *,
    error: str | None = None,
    matches: list[int] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    body = await render_template(
        "supervisor/claimants.html",
        section="claimants",
        kinds=LOOKUP_LABELS,
        kind=kind,
        error=error,
        matches=matches,
    )
    return body, status


@blueprint.get("/supervisor/claimants")
@supervisor()
async def claimants() -> ResponseReturnValue:
    return await _lookup_page()


@blueprint.post("/supervisor/claimants/lookup")
@supervisor()
async def lookup() -> ResponseReturnValue:
    """Find a claimant; one match opens their page. The query is posted and never echoed
    back nor logged: it is a phone number or an email address."""
    form = await request.form
    try:
        kind = LookupKind(form.get("by", LookupKind.ID.value))
    except ValueError:
        return await _lookup_page(error="Look up by id, phone or email.", status=422)
    found = await _records().lookup(
        kind, form.get("q", ""), supervisor_id=require_agent().id, ip_address=client_ip()
    )
    if found.problem is not None:
        return await _lookup_page(kind, error=found.problem, status=422)
    if not found.user_ids:
        return await _lookup_page(kind, error="No claimant matches.", status=422)
    if len(found.user_ids) == 1:
        target = f"/supervisor/claimants/{found.user_ids[0]}"
        if _is_htmx():
            return "", 200, {"HX-Redirect": target}
        return redirect(target, 303)
    return await _lookup_page(kind, matches=found.user_ids)


# --- the claimant's page -----------------------------------------------------------------------


@blueprint.get("/supervisor/claimants/<int:user_id>")
@supervisor()
@claimant_scoped("user_id")
async def claimant(user_id: int) -> ResponseReturnValue:
    viewer = Viewer(require_agent().id, client_ip(), purpose="supervisor")
    record = await _records().record(user_id, viewer)
    if record is None:
        raise APIError(404, "not_found", "No such claimant.")
    settings = services().settings
    return await render_template(
        "supervisor/claimant.html",
        section="claimants",
        record=record,
        ctx=record.context,
        panel=record.panel,
        workflow_link=workflow_url(settings, user_id),
        ai_workflow_link=lambda workflow_id: workflow_id_url(settings, workflow_id),
        retention_months=services().rules().compliance.recording_retention_months,
        consent_labels=[(c.value, CONSENT_LABELS[c]) for c in ConsentChannel],
    )


# --- supervisor actions ------------------------------------------------------------------------


async def _panel(
    user_id: int, *, message: str | None = None, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    """The actions panel again, with what happened (htmx swaps 422 as well); a plain form
    post goes back to the page when it worked, or shows the panel with why it did not."""
    if not _is_htmx() and error is None:
        return redirect(f"/supervisor/claimants/{user_id}", 303)
    panel: ActionsPanel = await _records().panel(user_id)
    template = (
        "supervisor/_claimant_actions.html" if _is_htmx() else "supervisor/claimant_action.html"
    )
    body = await render_template(
        template, section="claimants", panel=panel, message=message, error=error
    )
    return body, status


async def _act(user_id: int, action: Awaitable[ActionDone]) -> ResponseReturnValue:
    """Run an action; a refusal, or silence from the engine, is the panel again with why
    (422)."""
    try:
        done = await action
    except OutreachRefused as problem:
        return await _panel(user_id, error=f"Not done: {problem}.", status=422)
    except OutreachUnavailable:
        return await _panel(user_id, error=ENGINE_DOWN, status=422)
    return await _panel(user_id, message=done.message)


async def _reason(what: str) -> tuple[str, str | None]:
    reason = (await request.form).get("reason", "").strip()
    return reason, reason_refusal(reason, what)


@blueprint.post("/supervisor/claimants/<int:user_id>/pause")
@supervisor()
@claimant_scoped("user_id")
async def pause(user_id: int) -> ResponseReturnValue:
    reason, refused = await _reason("a pause")
    if refused is not None:
        return await _panel(user_id, error=f"Not paused: {refused}.", status=422)
    return await _act(user_id, _actions().pause(user_id, require_agent().id, reason))


@blueprint.post("/supervisor/claimants/<int:user_id>/resume")
@supervisor()
@claimant_scoped("user_id")
async def resume(user_id: int) -> ResponseReturnValue:
    reason, refused = await _reason("resuming")
    if refused is not None:
        return await _panel(user_id, error=f"Not resumed: {refused}.", status=422)
    return await _act(user_id, _actions().resume(user_id, require_agent().id, reason))


@blueprint.post("/supervisor/claimants/<int:user_id>/release")
@supervisor()
@claimant_scoped("user_id")
async def release(user_id: int) -> ResponseReturnValue:
    reason, refused = await _reason("a release")
    raw_holder = (await request.form).get("holder", "")
    holder = parse_id(raw_holder) if raw_holder else None
    if refused is None and raw_holder and holder is None:
        refused = "the holder shown is not an agent id; reload the page"
    if refused is not None:
        return await _panel(user_id, error=f"Not released: {refused}.", status=422)
    return await _act(user_id, _actions().release(user_id, require_agent().id, reason, holder))


@blueprint.post("/supervisor/claimants/<int:user_id>/callback")
@supervisor()
@claimant_scoped("user_id")
async def reassign_callback(user_id: int) -> ResponseReturnValue:
    raw = (await request.form).get("owner", "").strip()
    owner = None if raw == SHARED else parse_id(raw)
    if raw != SHARED and owner is None:
        return await _panel(
            user_id, error="Not moved: choose an agent, or share the callback.", status=422
        )
    return await _act(user_id, _actions().reassign_callback(user_id, require_agent().id, owner))


@blueprint.post("/supervisor/claimants/<int:user_id>/notes")
@supervisor()
@claimant_scoped("user_id")
async def add_note(user_id: int) -> ResponseReturnValue:
    text = (await request.form).get("text", "").strip()
    supervisor_id = require_agent().id
    refused = note_refusal(NoteRequest(supervisor_id, text))
    if refused is not None:
        return await _panel(user_id, error=f"Not saved: {refused}.", status=422)
    return await _act(user_id, _actions().add_note(user_id, supervisor_id, text))
