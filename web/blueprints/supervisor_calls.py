"""The calls list and the audit viewer, with filters and CSV export (issue 12).

- `GET /supervisor/calls`: calls filtered by agent, outcome, queue, UK days and "AI calls
  only", newest first, paged by keyset; each recording plays in an `<audio>` element from
  the audited route `GET /calls/<id>/recording`; an AI call shows its conversation's outcome
  and hand-off. "AI SMS conversations" (`ai=sms`) lists the AI's text conversations and
  inbound-text triage instead. Each AI conversation links to its transcript on the claimant
  page (where reading it is audited).
- `GET /supervisor/calls/<call_id>`: one call with its transcript and notes; claimant-
  scoped, so every view is audited (`viewed_personal_data`) before it is shown.
- `GET /supervisor/audit`: the audit log filtered by actor, claimant, action and UK days.
- `GET /supervisor/audit.csv`: the same, as CSV streamed from a server-side cursor; the
  export is audited.

A filter that cannot be used re-renders the page with a message for each bad field (422);
NUL bytes and other control characters were refused before the view (`web.input_guard`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, render_template, request
from quart.typing import ResponseReturnValue

from domain.attribution import UK
from domain.dispositions import EFFECTS
from domain.review_filters import (
    NO_OUTCOME,
    InvalidFilters,
    Keyset,
    parse_audit_filters,
    parse_call_filters,
)
from schemas.enums import Queue
from services import ai_review
from services.audit_review import AuditPage, AuditReview
from services.call_review import CallReview, CallsPage
from web.actions.console import client_ip
from web.auth.access import supervisor
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.errors import APIError
from web.services import services

blueprint = Blueprint("supervisor_calls", __name__)

OUTCOME_CHOICES = [(d.value, effect.label) for d, effect in EFFECTS.items()] + [
    (NO_OUTCOME, "No outcome recorded")
]
QUEUE_CHOICES = [q.value for q in Queue]
STYLESHEET = "css/supervisor-calls.css"


def _call_review() -> CallReview:
    deps = services()
    return CallReview(deps.dialler_db, deps.replica_db, UK)


def _audit_review() -> AuditReview:
    return AuditReview(services().dialler_db, UK)


def uk_seconds(at: datetime | None) -> str:
    """ "Tue 3 Mar 2026, 14:05:09" (UK time): audit entries a second apart are told apart."""
    if at is None:
        return ""
    local = at.astimezone(UK)
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M:%S}"


def page_link(path: str, query: dict[str, str], **page: Keyset | None) -> str:
    """`path` with the filters and a page's keyset (`before=` or `after=`)."""
    pairs = dict(query)
    pairs.update({name: key.token() for name, key in page.items() if key is not None})
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _form_values() -> dict[str, str]:
    """The filters as typed, to show them again (Jinja escapes them)."""
    return {name: value[:300] for name, value in request.args.items()}


# --- the calls list ----------------------------------------------------------------------


@blueprint.get("/supervisor/calls")
@supervisor()
async def calls() -> ResponseReturnValue:
    review = _call_review()
    agents = await review.agents()
    errors: dict[str, str] = {}
    listing: CallsPage | None = None
    query: dict[str, str] = {}
    try:
        filters, page = parse_call_filters(request.args)
        query = filters.query()
        listing = await review.page(filters, page, agents)
    except InvalidFilters as invalid:
        errors = invalid.fields
    body = await render_template(
        "supervisor/calls.html",
        section="calls",
        stylesheet=STYLESHEET,
        agents=agents,
        outcomes=OUTCOME_CHOICES,
        outcome_labels=dict(OUTCOME_CHOICES),
        queues=QUEUE_CHOICES,
        form=_form_values(),
        errors=errors,
        listing=listing,
        query=query,
        page_link=page_link,
        ai=ai_review,
    )
    return body, 422 if errors else 200


@blueprint.get("/supervisor/calls/<int:call_id>")
@supervisor()
@claimant_scoped("call_id")
async def call_detail(call_id: int) -> ResponseReturnValue:
    """One call with its transcript: the access hook audited this view before it ran."""
    found = await _call_review().detail(call_id)
    if found is None:
        raise APIError(404, "not_found", "No such call.")
    return await render_template(
        "supervisor/call_detail.html",
        section="calls",
        stylesheet=STYLESHEET,
        detail=found,
        outcome_labels=dict(OUTCOME_CHOICES),
        ai=ai_review,
    )


# --- the audit viewer --------------------------------------------------------------------


@blueprint.get("/supervisor/audit")
@supervisor()
async def audit() -> ResponseReturnValue:
    review = _audit_review()
    agents = await review.agents()
    actions = await review.actions()
    errors: dict[str, str] = {}
    listing: AuditPage | None = None
    query: dict[str, str] = {}
    try:
        filters, page = parse_audit_filters(request.args)
        search = await review.search(filters, agents, actions)
        query = filters.query()
        listing = await review.page(search, page, agents)
    except InvalidFilters as invalid:
        errors = invalid.fields
    body = await render_template(
        "supervisor/audit.html",
        section="audit",
        stylesheet=STYLESHEET,
        agents=agents,
        actions=actions,
        form=_form_values(),
        errors=errors,
        listing=listing,
        query=query,
        page_link=page_link,
        uk_seconds=uk_seconds,
    )
    return body, 422 if errors else 200


@blueprint.get("/supervisor/audit.csv")
@supervisor()
async def audit_csv() -> ResponseReturnValue:
    """The filtered log as CSV, newest first, streamed (the export is audited first)."""
    agent = require_agent()
    review = _audit_review()
    agents = await review.agents()
    try:
        filters, _ = parse_audit_filters(request.args)
        search = await review.search(filters, agents, await review.actions())
    except InvalidFilters as invalid:
        raise APIError(
            422, "invalid_filters", "These filters cannot be used.", fields=invalid.fields
        ) from None
    await review.record_export(agent.id, filters, client_ip())
    name = f"audit-{datetime.now(UTC).astimezone(UK):%Y%m%d-%H%M%S}.csv"
    headers: dict[str, Any] = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(review.csv_chunks(search, agents), mimetype="text/csv", headers=headers)
