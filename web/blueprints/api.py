"""The agent JSON API: claim the next call, record outcomes, release, claimant context, SMS,
magic links, queue depths and agent state. Documented at /openapi.json and /docs.

Every route is `@api(...)`: a bearer token (JWT from `POST /api/auth/token`) or a signed-in
session, which must then send `X-CSRF-Token` on POST and PUT. Errors are JSON
(`{"error": {"code", "message", ...}}`): 400 with `fields` for invalid input, 403 for a role
that may not do it, 404 for a claimant that is not yours (agents act on the claimants they
have claimed; supervisors and admins on any), 409 when the claimant's workflow refuses (the
reason says why), 503 with `Retry-After` when the outreach service does not answer.

Each agent also has limits of their own (`AGENT_LIMITS`), on top of the app-wide limits per
client address, so one busy integration cannot starve the others behind the same proxy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from quart import Blueprint, request
from quart_rate_limiter import QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, RateLimit
from quart_schema import (
    RequestSchemaValidationError,
    document_request,
    document_response,
    security_scheme,
    tag,
    validate_request,
    validate_response,
)
from structlog import get_logger

from adapters import task_store
from adapters.messaging import DeliveryRejected
from adapters.sms_outbox import OptedOut
from domain.callback_booking import refuse_callback
from domain.dispositions import Disposition
from schemas import agent_api as body
from schemas.enums import AgentRole, AgentState
from schemas.outreach import CallbackRequest, NoteRequest, OutcomeRequest, ReleaseRequest
from services.agent_states import CHOOSABLE, AgentStateError, AgentStatus
from services.claimant_context import Viewer
from services.live_updates import queue_depths
from services.sms_conversations import ClaimantNotFound, InvalidMessage, NoPhoneNumber
from web.actions.sms import conversations, send_magic_link
from web.auth.access import api
from web.auth.claimants import claimant_scoped
from web.auth.identity import CurrentAgent, require_agent
from web.errors import APIError
from web.ratelimit import requester_key
from web.services import services
from web.views.console import CALLBACK_DAYS

log = get_logger(__name__)

blueprint = Blueprint("api", __name__)

View = TypeVar("View", bound=Callable[..., Any])
SUPERVISING = (AgentRole.SUPERVISOR, AgentRole.ADMIN)
SECURITY: list[dict[str, list[str]]] = [
    {"bearerAuth": []},
    {"sessionCookie": [], "csrfHeader": []},
]
OPTED_OUT = "The claimant has opted out of contact (SMS STOP, do-not-call or a suppression list)."


def errors(*statuses: int) -> Callable[[View], View]:
    """Document the JSON error bodies a route can answer with (besides 401 and 429,
    which every route can)."""

    def decorate(view: View) -> View:
        for status in (400, 401, 429, *statuses):
            view = document_response(body.ErrorResponse, status)(view)
        return view

    return decorate


# Per agent and route: enough for a person or an AI agent working flat out, not for a
# runaway loop. (quart-rate-limiter keys every limit by route as well.)
AGENT_PER_SECOND_LIMIT = RateLimit(10, timedelta(seconds=1), key_function=requester_key)
AGENT_PER_MINUTE_LIMIT = RateLimit(300, timedelta(minutes=1), key_function=requester_key)


def _limited(limit: RateLimit) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        limits = getattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, [])
        setattr(view, QUART_RATE_LIMITER_LIMITS_ATTRIBUTE, [*limits, limit])
        return view

    return decorate


def agent_endpoint(tag_name: str, *statuses: int) -> Callable[[View], View]:
    """What every agent-facing API route declares: signed-in staff only, the per-agent
    limits, its OpenAPI tag, security schemes and error bodies."""

    def decorate(view: View) -> View:
        view = errors(*statuses)(view)
        view = security_scheme(SECURITY)(view)
        view = tag([tag_name])(view)
        view = _limited(AGENT_PER_MINUTE_LIMIT)(view)
        view = _limited(AGENT_PER_SECOND_LIMIT)(view)
        decorated: View = api()(view)
        return decorated

    return decorate


def _invalid(field: str, message: str) -> APIError:
    return APIError(400, "validation_error", "The request is not valid.", fields={field: message})


async def _holds_claim(user_id: int, agent_id: int) -> bool:
    return await task_store.holds_claim(services().dialler_db, user_id, agent_id)


async def _require_claim(user_id: int, agent: CurrentAgent) -> None:
    """The caller holds the claimant's claim; anything else is "not found" (a claimant who
    is not yours is not shown to exist)."""
    if not await _holds_claim(user_id, agent.id):
        raise APIError(404, "not_found", "You have not claimed this claimant.")


# --- the queue ----------------------------------------------------------------------------


@blueprint.post("/api/queue/next")
@agent_endpoint("Queue", 403, 409, 503)
@document_request(body.NextCallRequest)
@validate_response(body.NextCallResponse)
async def next_call() -> body.NextCallResponse:
    """Claim the best claimant the caller may call now (agents: their own queue; AI agents
    never get people-only claimants). The claim is a lease: record an outcome or release
    before `lease_expires_at`. The body may be empty. With `wait` (seconds, up to 25), a
    request that finds nothing is held until a task in the queue is ready, then claims it;
    the agent who has waited longest gets it. At the end of the wait the answer is the same
    as without one: no task."""
    raw = await request.get_json(silent=True)
    try:
        data = body.NextCallRequest.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        raise RequestSchemaValidationError(error) from None
    agent = require_agent()
    if agent.role in SUPERVISING:
        queue = data.queue or agent.queue
        if queue is None:
            raise _invalid("queue", "Choose a queue: unsigned, outstanding or callback.")
    else:
        if agent.queue is None:
            raise APIError(409, "no_queue", "No queue is assigned to you; ask a supervisor.")
        if data.queue is not None and data.queue != agent.queue:
            raise APIError(403, "forbidden", "Agents take calls from their own queue only.")
        queue = agent.queue
    claims = services().claim_service()
    if data.wait == 0:
        task = await claims.claim_next(agent.id, queue, is_ai=agent.is_ai)
    else:
        # Long-poll: wait in line (the longest waiter claims first) for a task to be ready.
        chosen = queue
        waiters = services().work_waiters()
        task = await waiters.wait_for(
            queue,
            agent.is_ai,
            lambda: claims.claim_next(agent.id, chosen, is_ai=agent.is_ai),
            data.wait,
        )
    if task is None:
        return body.NextCallResponse(
            task=None, message=f"No claimant in the {queue.value} queue can be called now."
        )
    view = body.ClaimedTaskView.model_validate(
        {
            "task_id": task.task_id,
            "user_id": task.user_id,
            "queue": task.queue,
            "score": task.score,
            "score_breakdown": task.score_breakdown,
            "reason": task.reason,
            "lease_expires_at": task.lease_expires_at,
        }
    )
    return body.NextCallResponse(task=view, message="Claimed.")


@blueprint.get("/api/queues")
@agent_endpoint("Queue")
@validate_response(body.QueuesResponse)
async def queues() -> body.QueuesResponse:
    """Depth of every queue: callable now, waiting (not callable yet) and claimed."""
    depths = await queue_depths(services().dialler_db)
    return body.QueuesResponse(
        queues=[body.QueueDepthView.model_validate(d, from_attributes=True)
                for d in depths.values()]
    )  # fmt: skip


# --- agent actions on a claimant ----------------------------------------------------------


@blueprint.post("/api/claimants/<int:user_id>/outcome")
@agent_endpoint("Claimants", 403, 404, 409, 503)
@claimant_scoped("user_id")
@validate_request(body.OutcomeRequest)
@validate_response(body.OutcomeResponse)
async def record_outcome(user_id: int, data: body.OutcomeRequest) -> body.OutcomeResponse:
    """Record what happened on the call to a claimant you have claimed; the claim ends."""
    agent = require_agent()
    try:
        Disposition(data.disposition)
    except ValueError:
        choices = ", ".join(d.value for d in Disposition)
        raise _invalid("disposition", f"One of: {choices}") from None
    await _require_claim(user_id, agent)
    claims = services().claim_service()
    result = await claims.record_outcome(
        user_id,
        OutcomeRequest(
            agent_id=agent.id,
            disposition=data.disposition,
            notes=data.notes,
            callback_at=data.callback_at,
            call_id=data.call_id,
            abandoned=data.abandoned,
        ),
    )
    return body.OutcomeResponse(
        user_id=result.user_id,
        stage=result.stage.value,
        not_before=result.not_before,
        reason=result.reason,
    )


@blueprint.post("/api/claimants/<int:user_id>/release")
@agent_endpoint("Claimants", 403, 404, 409, 503)
@claimant_scoped("user_id")
@validate_request(body.ReleaseRequest)
@validate_response(body.ReleaseResponse)
async def release(user_id: int, data: body.ReleaseRequest) -> body.ReleaseResponse:
    """Give a claimant you have claimed back to the queue without an outcome."""
    agent = require_agent()
    await _require_claim(user_id, agent)
    claims = services().claim_service()
    result = await claims.release(user_id, ReleaseRequest(agent.id, data.reason))
    return body.ReleaseResponse(user_id=result.user_id, task_version=result.task_version)


@blueprint.get("/api/claimants/<int:user_id>")
@agent_endpoint("Claimants", 403, 404)
@claimant_scoped("user_id")
@validate_response(body.ClaimantContextResponse)
async def claimant_context(user_id: int) -> body.ClaimantContextResponse:
    """Everything an agent sees before dialling: who, why this call and why now (stage,
    score breakdown, `not_before` reason), claims and outstanding requirements, previous
    calls, the SMS thread, callback and notes. The view is written to the audit log."""
    agent = require_agent()
    viewer = Viewer(agent.id, request.remote_addr, purpose="api")
    context = await services().claimant_context().view(user_id, viewer)
    if context is None:
        raise APIError(404, "not_found", "No such claimant.")
    # the opt-out and the callback are read fresh by the loader (a STOP shows at once)
    return body.ClaimantContextResponse.model_validate(context, from_attributes=True)


@blueprint.post("/api/claimants/<int:user_id>/sms")
@agent_endpoint("Claimants", 403, 404, 409, 502)
@claimant_scoped("user_id")
@validate_request(body.SmsRequest)
@validate_response(body.SmsResponse, 201)
async def send_sms(user_id: int, data: body.SmsRequest) -> tuple[body.SmsResponse, int]:
    """Text the claimant at their number on file (kept in their SMS thread)."""
    agent = require_agent()
    try:
        sent = await conversations().reply(user_id, agent_id=agent.id, body=data.body)
    except ClaimantNotFound:
        raise APIError(404, "not_found", "No such claimant.") from None
    except NoPhoneNumber as error:
        raise APIError(409, "no_phone_number", str(error)) from None
    except InvalidMessage as error:
        raise _invalid("body", str(error)) from None
    except OptedOut:
        raise APIError(409, "opted_out", OPTED_OUT) from None
    except DeliveryRejected as error:
        raise APIError(502, "delivery_rejected", str(error)) from None
    except Exception as error:
        log.warning("sms via api failed", user_id=user_id, error=str(error))
        message = "The SMS provider could not be reached."
        raise APIError(502, "provider_unavailable", message) from None
    response = body.SmsResponse(
        message_id=sent.message_id, provider_sid=sent.provider_sid, status=sent.status
    )
    return response, 201


@blueprint.post("/api/claimants/<int:user_id>/magic-link")
@agent_endpoint("Claimants", 403, 404, 409, 503)
@claimant_scoped("user_id")
@validate_request(body.MagicLinkRequestBody)
@validate_response(body.MagicLinkResponse, 201)
async def magic_link(
    user_id: int, data: body.MagicLinkRequestBody
) -> tuple[body.MagicLinkResponse, int]:
    """Send the claimant a single-use link to the main app by SMS or email (sent by their
    workflow; the token never passes through here)."""
    agent = require_agent()
    claimant = await conversations().claimant(user_id)
    if claimant is None:
        raise APIError(404, "not_found", "No such claimant.")
    status = await services().sms_outbox().status(user_id, claimant.phone_number)
    if status.suppressed:
        raise APIError(409, "opted_out", OPTED_OUT)
    created = await send_magic_link(user_id, agent.id, data.channel, data.purpose)
    response = body.MagicLinkResponse(
        link_id=created.link_id,
        expires_at=created.expires_at,
        delivered_via=created.delivered_via,
        provider_id=created.provider_id,
    )
    return response, 201


@blueprint.post("/api/claimants/<int:user_id>/callbacks")
@agent_endpoint("Claimants", 403, 404, 503)
@claimant_scoped("user_id")
@document_response(body.CallbackRefusedResponse, 409)
@validate_request(body.CallbackRequestBody)
@validate_response(body.CallbackResponse, 201)
async def schedule_callback(
    user_id: int, data: body.CallbackRequestBody
) -> tuple[body.CallbackResponse, int]:
    """Book a callback (no call or outcome needed): personal (offered to you) or shared.
    It replaces the claimant's pending callback. Outside the calling windows it is refused
    (409 `outside_calling_window`) with the reason and the next allowed times."""
    agent = require_agent()
    windows = services().rules().calling_windows
    refused = refuse_callback(data.at, datetime.now(UTC), windows, days_ahead=CALLBACK_DAYS)
    if refused is not None:
        raise APIError(
            409,
            "outside_calling_window",
            refused.reason,
            next_allowed=[t.isoformat() for t in refused.next_allowed],
        )
    owner = agent.id if data.personal else None
    claims = services().claim_service()
    booked = await claims.schedule_callback(
        user_id, CallbackRequest(agent.id, data.at.astimezone(UTC), data.notes, owner)
    )
    return body.CallbackResponse(user_id=user_id, at=booked.at, owner_agent_id=owner), 201


@blueprint.post("/api/claimants/<int:user_id>/notes")
@agent_endpoint("Claimants", 403, 404, 409, 503)
@claimant_scoped("user_id")
@validate_request(body.NoteRequestBody)
@validate_response(body.NoteResponse, 201)
async def add_note(user_id: int, data: body.NoteRequestBody) -> tuple[body.NoteResponse, int]:
    """Add a note to the claimant's record (no call or outcome needed)."""
    agent = require_agent()
    added = await services().claim_service().add_note(user_id, NoteRequest(agent.id, data.text))
    return body.NoteResponse(user_id=user_id, note_id=added.note_id), 201


# --- agent state ----------------------------------------------------------------------------


def _state_view(status: AgentStatus) -> body.AgentStateResponse:
    return body.AgentStateResponse(
        agent_id=status.agent_id,
        state=status.state,
        label=status.label,
        reason=status.reason,
        since=status.since,
    )


@blueprint.get("/api/agents/me/state")
@agent_endpoint("Agents")
@validate_response(body.AgentStateResponse)
async def my_state() -> body.AgentStateResponse:
    """The caller's current state (Offline if none was ever recorded) and since when."""
    agent = require_agent()
    return _state_view(await services().agent_states().current(agent.id))


@blueprint.put("/api/agents/me/state")
@agent_endpoint("Agents")
@validate_request(body.AgentStateRequest)
@validate_response(body.AgentStateResponse)
async def set_my_state(data: body.AgentStateRequest) -> body.AgentStateResponse:
    """Set the caller's state: Ready, Paused (a reason is required), On call, Wrap-up or
    Offline. Each change is kept with its time."""
    agent = require_agent()
    states = services().agent_states()
    if data.state in CHOOSABLE:
        try:
            status = await states.choose(agent.id, data.state.value, data.reason)
        except AgentStateError as error:
            field = "reason" if data.state is AgentState.PAUSED else "state"
            raise _invalid(field, str(error)) from None
    else:
        status = await states.record(agent.id, data.state, data.reason)
    return _state_view(status)
