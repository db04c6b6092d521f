"""Consent captured on a call: the agent reads the statement, the claimant agrees, the agent
records it (console and API). Only the agent holding the claimant, during a call they placed
in this claim: consent is evidence of what was said on a (recorded) call."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, render_template, request
from quart.typing import ResponseReturnValue
from quart_schema import validate_request, validate_response

from domain.consent import CONSENT_LABELS, CONSENT_STATEMENTS
from schemas import agent_api as body
from schemas.enums import AgentRole, ConsentChannel
from services.consents import ConsentConfirmed, ConsentStanding
from web.actions.console import call_for_claim, client_ip, held_task
from web.auth.access import staff
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.blueprints.api import agent_endpoint
from web.errors import APIError
from web.services import services

blueprint = Blueprint("consent", __name__)
NO_CALL = "Consent is confirmed on a call: call the claimant first."
QUEUE_LATER = "Saved. The queue will reflect it when the dialler engine is back."


def consent_template_values(user_id: int, standing: ConsentStanding | None) -> dict[str, Any]:
    return {
        "uid": user_id,
        "consent": standing,
        "consent_labels": [(c.value, CONSENT_LABELS[c]) for c in ConsentChannel],
        "consent_statements": {c.value: CONSENT_STATEMENTS[c] for c in ConsentChannel},
    }


async def _confirm(user_id: int, raw_channel: str) -> ConsentConfirmed:
    """Refusals are APIErrors: 404 not your claimant, 409 no call, 400 unknown channel."""
    agent = require_agent()
    task = await held_task(agent.id, user_id)
    try:
        channel = ConsentChannel(raw_channel)
    except ValueError:
        raise APIError(
            400, "validation_error", "The request is not valid.",
            fields={"channel": "one of " + ", ".join(c.value for c in ConsentChannel)},
        ) from None  # fmt: skip
    call = await call_for_claim(agent.id, task)
    if call is None:
        raise APIError(409, "no_call", NO_CALL)
    return (
        await services()
        .consents()
        .confirm(user_id, channel, agent_id=agent.id, call_id=call.id, ip_address=client_ip())
    )


@blueprint.post("/console/claimants/<int:user_id>/consent")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def confirm_consent(user_id: int) -> ResponseReturnValue:
    """The console's "consent confirmed on this call"; the section is redrawn in place."""
    channel = (await request.form).get("channel", "")
    try:
        confirmed = await _confirm(user_id, channel)
    except APIError as problem:
        if problem.status == 404:
            raise
        standing = await services().consents().standing(user_id)
        values = consent_template_values(user_id, standing)
        html = await render_template("console/_consent.html", consent_error=problem.message,
                                     **values)  # fmt: skip
        return html, 422
    label = CONSENT_LABELS[ConsentChannel(channel)]
    message = f"Consent recorded: {label.lower()}."
    if not confirmed.workflow_told:
        message += " " + QUEUE_LATER
    values = consent_template_values(user_id, confirmed.standing)
    return await render_template("console/_consent.html", consent_message=message, **values)


@blueprint.post("/api/claimants/<int:user_id>/consents")
@agent_endpoint("Claimants", 403, 404, 409)
@claimant_scoped("user_id")
@validate_request(body.ConsentRequest)
@validate_response(body.ConsentResponse, 201)
async def api_confirm_consent(
    user_id: int, data: body.ConsentRequest
) -> tuple[body.ConsentResponse, int]:
    """Consent the claimant gave on the agent's current call to this claimant (PECR 21A:
    live calls; 19: automated calls; 22: SMS and email). Audited; the claimant's workflow
    re-assesses at once (`workflow_told` false: Temporal was away, the record is kept)."""
    confirmed = await _confirm(user_id, data.channel)
    return body.ConsentResponse(
        user_id=user_id,
        record_id=confirmed.record_id,
        channels=sorted(confirmed.standing.channels),
        workflow_told=confirmed.workflow_told,
    ), 201
