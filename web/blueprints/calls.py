"""Browser calling: placing a call from the console, the Voice SDK access token, and the
Twilio voice webhooks (TwiML, recording notice, call status, recording). See `web.voice`.

A call is written to `calls` before anything is dialled (provider, number, phone key, task,
agent, queue). The number always comes from the server: the claimant's phone in the replica,
stored on that row; the browser only names the row. Webhooks are verified with
`verified_form()` (403 when unsigned or forged) and idempotent: the agent leg's SID is
recorded once, call statuses only move forward (a repeated or late callback changes
nothing), and a recording is stored once per call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Blueprint, Response, current_app, jsonify, render_template, request
from quart.typing import ResponseReturnValue
from structlog import get_logger

from adapters import call_log
from adapters.audit_log import append_audit
from adapters.call_log import Call
from adapters.live import CALL_STATUS, LiveEvent, channel_for_agent
from adapters.recording_store import local_key_for
from adapters.replica_reader import ReplicaReader
from domain.abandoned_calls import CallLegs, abandon_reason
from domain.calling_windows import explain, is_open
from schemas.enums import AgentRole, AgentState, RecordingStore
from schemas.outreach import ChangeEvent, ChangeKind
from web.actions.console import agents_call, held_task, per_session
from web.auth.access import staff, webhook
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.converters import parse_count, parse_id
from web.errors import APIError
from web.services import services
from web.twilio_signature import verified_form
from web.voice import (
    AGENT_LEG,
    ENDED,
    STATUS_LABELS,
    STATUS_RANK,
    SimulatedVoice,
    SimulationError,
    access_token,
    dial_twiml,
    identity_for,
    leg_of,
    notice_twiml,
    parse_twilio_time,
    refuse_twiml,
)
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

log = get_logger(__name__)

blueprint = Blueprint("calls", __name__)

CALL_LIMIT = per_session(20, timedelta(minutes=1))
TOKEN_LIMIT = per_session(30, timedelta(minutes=1))
SIMULATE_LIMIT = per_session(60, timedelta(minutes=1))
SIMULATED_ACTIONS = {
    "answer": "in-progress",
    "no-answer": "no-answer",
    "busy": "busy",
    "hangup": "completed",
}
ACTIVE_FOR = timedelta(hours=2)  # a call not ended after this long is not "active" any more


def _xml(twiml: str) -> Response:
    return Response(twiml, mimetype="text/xml")


def _rank(status: str) -> int:
    return STATUS_RANK.get(status, -1)


# --- placing a call -------------------------------------------------------------------------


async def _softphone(
    call: Any, *, user_id: int | None = None, error: str | None = None, autoconnect: bool = False
) -> str:
    return await render_template(
        "console/_softphone.html",
        call=call,
        autoconnect=autoconnect,
        user_id=call.user_id if call is not None else user_id,
        label=STATUS_LABELS.get(call.status, call.status) if call is not None else "",
        twilio=services().settings.twilio_enabled,
        error=error,
    )


async def _call(call_id: int) -> Call | None:
    return await call_log.call(services().dialler_db, call_id)


async def _claimant_phone(user_id: int) -> str | None:
    return await ReplicaReader(services().replica_db).phone_number(user_id)


async def _active_call(agent_id: int, user_id: int) -> Call | None:
    return await call_log.active_call(
        services().dialler_db, agent_id, user_id, ended=ENDED, active_for=ACTIVE_FOR
    )


@blueprint.post("/console/claimants/<int:user_id>/call")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
@CALL_LIMIT
async def place_call(user_id: int) -> ResponseReturnValue:
    """Start a call to the claimant the agent holds; answers with the softphone."""
    agent = require_agent()
    task = await held_task(agent.id, user_id)
    active = await _active_call(agent.id, user_id)
    if active is not None:
        # A Twilio call the browser never connected (microphone refused, page closed) may
        # be connected again; any other active call is simply shown.
        retry = active.provider == "twilio" and active.provider_call_sid is None
        return await _softphone(active, autoconnect=retry)
    deps = services()
    settings = deps.settings
    windows = deps.rules().calling_windows
    now = datetime.now(UTC)
    if not is_open(now, windows):
        message = f"No calls now: {explain(now, windows)}."
        return await _softphone(None, user_id=user_id, error=message), 422
    number = await _claimant_phone(user_id)
    if not number:
        message = "There is no phone number on file."
        return await _softphone(None, user_id=user_id, error=message), 422
    provider = "twilio" if settings.twilio_enabled else "simulated"
    new = call_log.NewCall(
        user_id=user_id,
        task_id=task.id,
        agent_id=agent.id,
        queue=task.queue,
        provider=provider,
        to_number=number,
        from_number=settings.twilio_from_number,
    )
    call_id = await call_log.place_call(deps.dialler_db, new)
    await deps.agent_states().record(agent.id, AgentState.ON_CALL, f"call {call_id}")
    log.info("call placed", call_id=call_id, user_id=user_id, agent_id=agent.id, provider=provider)
    if provider == "simulated":
        simulator = SimulatedVoice(current_app._get_current_object(), settings)  # type: ignore[attr-defined]
        try:
            await simulator.place(int(call_id), agent.id)
        except SimulationError as problem:
            log.warning("simulated call failed", call_id=call_id, error=str(problem))
            return await _softphone(
                await _call(int(call_id)), error="The call could not be placed."
            )
    return await _softphone(await _call(int(call_id)), autoconnect=provider == "twilio")


@blueprint.post("/console/calls/<int:call_id>/simulate")
@staff(AgentRole.AGENT)
@claimant_scoped("call_id")
@SIMULATE_LIMIT
async def simulate(call_id: int) -> ResponseReturnValue:
    """The simulated softphone: what the claimant does (answers, no answer, busy), or the
    agent hanging up. Only without Twilio credentials."""
    agent = require_agent()
    if services().settings.twilio_enabled:
        raise APIError(404, "not_found", "Calls go through Twilio: there is no simulator.")
    call = await agents_call(agent.id, call_id)
    action = (await request.form).get("action", "")
    if action not in SIMULATED_ACTIONS:
        return await _softphone(call, error="Choose what happens on the call."), 422
    if call.status in ENDED:
        return await _softphone(call)
    if not call.provider_call_sid:
        return await _softphone(call, error="The call was never connected."), 422
    simulator = SimulatedVoice(current_app._get_current_object(), services().settings)  # type: ignore[attr-defined]
    parent = str(call.provider_call_sid)
    answered = call.status == "in-progress"
    try:
        if action == "answer" and not answered:
            await simulator.answer(call_id, parent)
        elif action == "hangup":
            if answered:
                since = call.answered_at or call.started_at
                seconds = int((datetime.now(UTC) - since).total_seconds())
                await simulator.end(call_id, parent, "completed", seconds)
            else:
                await simulator.end(call_id, parent, "canceled")
        elif action in ("no-answer", "busy") and not answered:
            await simulator.end(call_id, parent, SIMULATED_ACTIONS[action])
    except SimulationError as problem:
        log.warning("simulated call step failed", call_id=call_id, error=str(problem))
        return await _softphone(await _call(call_id), error="The simulator failed."), 502
    return await _softphone(await _call(call_id))


@blueprint.get("/console/calls/token")
@staff(AgentRole.AGENT)
@TOKEN_LIMIT
async def voice_token() -> ResponseReturnValue:
    """A Twilio Voice SDK access token for this agent (JSON)."""
    agent = require_agent()
    settings = services().settings
    if not settings.twilio_enabled:
        raise APIError(404, "simulated_provider", "Twilio is not configured: calls are simulated.")
    if not (settings.twilio_api_key_sid and settings.twilio_twiml_app_sid):
        raise APIError(503, "twilio_incomplete", "Twilio needs an API key and a TwiML App SID.")
    token = access_token(settings, agent.id)
    return jsonify({"token": token, "identity": identity_for(agent.id), "expires_in": 3600})


# --- Twilio webhooks ------------------------------------------------------------------------------


def _call_id(form: dict[str, str]) -> int | None:
    """The `calls` row a webhook is about, from its signed URL (or the Voice SDK's
    `callId`); None, logged, when the value cannot be an id (Twilio then gets the answer
    for an unknown call rather than an error it would retry)."""
    raw = request.args.get("call_id") or form.get("callId") or ""
    call_id = parse_id(raw)
    if call_id is None and raw:
        log.warning("webhook with an unusable call id", path=request.path, length=len(raw))
    return call_id


@blueprint.post("/webhooks/twilio/voice")
@webhook("Twilio asks what to do with the agent's browser call; signature-checked")
async def voice() -> ResponseReturnValue:
    """TwiML: dial the claimant on record for this call, recording from answer, with the
    recording notice played to them when they pick up."""
    form = await verified_form()
    call_id, sid = _call_id(form), form.get("CallSid", "")
    call = await _call(call_id) if call_id is not None else None
    if call is None or not sid or call.status in ENDED or call.disposition is not None:
        return _xml(refuse_twiml("Sorry, this call cannot be placed."))
    if call.agent_id is None or form.get("From") != f"client:{identity_for(call.agent_id)}":
        log.warning("voice webhook for another agent's call", call_id=call_id)
        return _xml(refuse_twiml("Sorry, this call cannot be placed."))
    claimed = await call_log.attach_claimant_leg(services().dialler_db, call.id, sid)
    if not claimed:  # this call was already placed from another connection
        return _xml(refuse_twiml("This call has already been placed."))
    return _xml(dial_twiml(services().settings, call.id, call.to_number))


@blueprint.post("/webhooks/twilio/voice/notice")
@webhook("Twilio fetches the recording notice played to the claimant; signature-checked")
async def recording_notice() -> ResponseReturnValue:
    form = await verified_form()
    call_id = _call_id(form)
    if call_id is not None:
        await call_log.mark_notice_played(services().dialler_db, call_id)
    return _xml(notice_twiml())


@blueprint.post("/webhooks/twilio/call-status")
@webhook("Twilio reports the progress of a call's two legs; signature-checked")
async def call_status() -> ResponseReturnValue:
    """Applied once per status: statuses only move forward, so a repeat changes nothing.
    The claimant's leg moves the call's status; the agent's leg's end is kept to tell an
    abandoned call (`domain.abandoned_calls`), which is marked here."""
    form = await verified_form()
    call_id, status = _call_id(form), form.get("CallStatus", "")
    if status not in STATUS_RANK:
        return "", 204
    if call_id is not None:
        call = await _call(call_id)
    else:  # the agent's leg, from the TwiML App's status callback: found by its CallSid
        call = await _call_by_sid(form.get("CallSid", ""))
    leg = leg_of(form, call.provider_call_sid) if call is not None else None
    if call is None or leg is None:
        log.warning("status callback for an unknown call", call_id=call_id)
        return "", 204
    at = parse_twilio_time(form.get("Timestamp"))
    if leg == AGENT_LEG:
        if status in ENDED:
            await _agent_leg_ended(call.id, at, parse_count(form.get("CallDuration")) or 0)
        return "", 204
    ended = status in ENDED
    duration = (parse_count(form.get("CallDuration")) or 0) if ended else None
    applied = await call_log.advance_status(
        services().dialler_db,
        call.id,
        status,
        earlier=[s for s, rank in STATUS_RANK.items() if rank < _rank(status)],
        at=at,
        answered_by=form.get("AnsweredBy") or None,
        answered=status == "in-progress",
        ended=ended,
        duration_seconds=duration or 0,
    )
    if applied and call.agent_id is not None:
        event = LiveEvent(
            CALL_STATUS, {"call_id": call.id, "status": status, "duration_seconds": duration}
        )
        await services().live().publish(channel_for_agent(call.agent_id), event)
    if applied:
        await _mark_if_abandoned(call.id)
    return "", 204


async def _call_by_sid(sid: str) -> Call | None:
    if not sid:
        return None
    return await call_log.call_by_sid(services().dialler_db, sid)


async def _agent_leg_ended(call_id: int, at: datetime, bridged_seconds: int) -> None:
    """Kept once (the first ending wins); then the call may turn out abandoned."""
    if await call_log.end_agent_leg(services().dialler_db, call_id, at, bridged_seconds):
        await _mark_if_abandoned(call_id)


async def _mark_if_abandoned(call_id: int) -> None:
    """Mark the call abandoned once the legs' callbacks say so, and have the claimant's
    workflow re-assess at once: the number is locked for 72 hours."""
    call = await _call(call_id)
    if call is None or call.abandoned:
        return
    legs = CallLegs(
        answered_at=call.answered_at,
        answered_by=call.answered_by,
        claimant_left_at=call.ended_at,
        agent_left_at=call.agent_left_at,
        agent_seconds=call.agent_seconds,
    )
    reason = abandon_reason(legs)
    if reason is None:
        return
    async with services().dialler_db.begin() as conn:
        if not await call_log.mark_abandoned(conn, call_id):
            return  # another callback marked it first
        await append_audit(
            conn,
            actor_type="system",
            actor_id="twilio",
            action="call_abandoned",
            subject_type="call",
            subject_id=str(call_id),
            detail={"reason": reason, "user_id": str(call.user_id)},
        )
    log.info("call abandoned", call_id=call_id, user_id=call.user_id, reason=reason)
    event = ChangeEvent(
        event_id=f"call-abandoned:{call_id}",
        kind=ChangeKind.REFRESH,
        user_id=int(call.user_id),
        occurred_at=datetime.now(UTC),
        reason="call abandoned",
    )
    try:
        await services().outreach().deliver(event)
    except (OutreachRefused, OutreachUnavailable) as error:
        # The mark is kept: the claimant's next change or outcome re-assesses with the lock.
        log.warning(
            "could not tell the workflow of an abandoned call",
            call_id=call_id,
            error=type(error).__name__,
        )


@blueprint.post("/webhooks/twilio/recording")
@webhook("Twilio reports a finished call recording; signature-checked")
async def recording() -> ResponseReturnValue:
    """Stored once per call (by RecordingSid), with where it is kept: at Twilio, or for the
    simulated provider the WAV file it wrote under RECORDINGS_DIR. Recordings are played
    only through the audited playback route (web.blueprints.recordings)."""
    form = await verified_form()
    call_id, sid = _call_id(form), form.get("RecordingSid", "")
    if call_id is None or not sid or form.get("RecordingStatus", "completed") != "completed":
        return "", 204
    call = await _call(call_id)
    if call is None:
        return "", 204
    location = (
        call_log.RecordingLocation(RecordingStore.LOCAL, local_key_for(sid))
        if call.provider == "simulated"
        else call_log.RecordingLocation(RecordingStore.TWILIO, sid)
    )
    await call_log.store_recording(
        services().dialler_db,
        call_id,
        sid,
        url=form.get("RecordingUrl") or None,
        seconds=parse_count(form.get("RecordingDuration")),
        location=location,
    )
    return "", 204
