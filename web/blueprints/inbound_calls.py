"""Claimants ringing back (issue 14): calls to the dialler's Twilio number, and the console's
view of one. See `web.inbound_voice` for the TwiML and the simulated provider, and
`domain.inbound_calls` for the routing.

`POST /webhooks/twilio/inbound` (signature-checked: forged is 403):

- The caller is matched by a hashed lookup: the keys of their number's spellings against
  the calls we made (`call_log.latest_call_to`), giving the claimant and the agent who last
  called them. An unknown caller hears a neutral message and the call ends.
- In hours, a free agent is rung (the one who last called them, else their queue's): the
  recording notice, then the agent's browser. The call is written to `calls` (direction
  inbound, the agent, the claimant, the number's key) before the answer goes back, the
  agent is On call, and their console is told (`inbound-call` on their live channel) to
  load the claimant's context.
- Out of hours, or with no one free, a message, and a shared callback booked through the
  claimant's outreach workflow for the next calling time. When the workflow refuses it
  (an opted-out claimant: outreach has stopped) or cannot be reached, the caller is asked
  to ring again instead.
- Opted-out and suppressed claimants are answered all the same; nothing here writes or
  lifts a suppression.

A repeated webhook for the same CallSid gets the same answer: the call row is written once
(unique SID), and the agent is rung once.

`/webhooks/twilio/inbound/status` moves the call with the agent's leg (statuses only move
forward) and frees the agent when it ends: Ready, or Paused when they let it ring out.
`/webhooks/twilio/inbound/dial-ended` is Twilio asking what next when the dial ends: an
agent who never took the call means a message and a shared callback. Both are applied
once whichever comes first. The recording arrives at the recording webhook every call uses.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from quart import Blueprint, Response, current_app, render_template, request
from quart.typing import ResponseReturnValue
from structlog import get_logger

from adapters import agent_store, call_log, task_store
from adapters.call_log import INBOUND, Call, CalledBefore, NewInboundCall
from adapters.live import CALL_STATUS, INBOUND_CALL, LiveEvent, channel_for_agent, namespace_for
from adapters.ring_holds import RingHolds
from adapters.task_store import CallTask
from domain.inbound_calls import (
    UNKNOWN_CALLER_MESSAGE,
    FloorAgent,
    InboundCall,
    InboundDecision,
    after_missed_ring,
    callback_message,
    callback_note,
    caller_keys,
    route_inbound,
)
from domain.phones import to_e164
from schemas.enums import AgentRole, AgentState
from schemas.outreach import CallbackRequest
from services.agent_states import PAUSE_REASONS
from services.claimant_context import Viewer
from web.actions.console import client_ip, htmx_or_console, per_session
from web.auth.access import staff, webhook
from web.auth.claimants import claimant_scoped
from web.auth.identity import CurrentAgent, require_agent
from web.converters import parse_count, parse_id
from web.errors import APIError
from web.inbound_voice import (
    INBOUND_DIAL_PATH,
    INBOUND_PATH,
    INBOUND_STATUS_PATH,
    NOT_TAKEN,
    SimulatedInbound,
    hangup_twiml,
    message_twiml,
    ring_agent_twiml,
)
from web.services import services
from web.twilio_signature import verified_form
from web.voice import (
    ENDED,
    RING_SECONDS,
    STATUS_LABELS,
    STATUS_RANK,
    SimulationError,
    parse_twilio_time,
)
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

log = get_logger(__name__)

blueprint = Blueprint("inbound_calls", __name__)

SID = re.compile(r"[A-Za-z0-9]{2,64}")  # calls.provider_call_sid is 64 wide
NUMBER_WIDTH = 20  # calls.to_number / from_number
# An agent is held for a call while it rings, and a little longer for the callbacks to land.
HOLD_SECONDS = RING_SECONDS + 30
STATE_PREFIX = "inbound call "  # the On call state's reason: "inbound call <call id>"
GOODBYE = "Thank you for calling Resolve My Claim. Goodbye."
SIMULATE_LIMIT = per_session(60, timedelta(minutes=1))
PANEL_PATH = "/console/calls/<int:call_id>/context"  # the claimant's context for a call
# the agent's part: answer, let it ring out, decline while it rings, hang up once answered
SIMULATED_ACTIONS = {"answer": "in-progress", "miss": "no-answer", "decline": "busy"}
# An agent who lets a call ring out or declines it is away: rung no more until Ready again.
NOT_TAKEN_REASONS = {"no-answer": "missed an inbound call", "busy": "declined an inbound call"}


def _xml(twiml: str) -> Response:
    return Response(twiml, mimetype="text/xml")


def _sid(form: dict[str, str], name: str = "CallSid") -> str:
    value = form.get(name, "").strip()
    if not SID.fullmatch(value):
        message = f"{name} is missing or not a call SID."
        raise APIError(400, "invalid_field", message, fields={name: message})
    return value


def _call_id() -> int | None:
    raw = request.args.get("call_id", "")
    call_id = parse_id(raw)
    if call_id is None and raw:
        log.warning("inbound webhook with an unusable call id", path=request.path, length=len(raw))
    return call_id


def state_reason(call_id: int) -> str:
    return f"{STATE_PREFIX}{call_id}"


def _holds() -> RingHolds:
    deps = services()
    namespace = deps.live_namespace
    return RingHolds(deps.redis, namespace if namespace is not None else namespace_for(deps.redis))


def _claimant_number(caller: str) -> str:
    """The number kept on the call: E.164 when it is one (Twilio sends E.164), else its
    digits, cut to the column's width."""
    e164 = to_e164(caller)
    if e164 is not None:
        return e164
    return "".join(ch for ch in caller if ch.isdigit() or ch == "+")[:NUMBER_WIDTH] or "unknown"


# --- the call comes in ------------------------------------------------------------------------


@blueprint.post(INBOUND_PATH)
@webhook("Twilio delivers calls to the dialler's number here; signature-checked")
async def inbound() -> ResponseReturnValue:
    form = await verified_form()
    sid = _sid(form)
    deps = services()
    existing = await call_log.call_by_sid(deps.dialler_db, sid)
    if existing is not None:  # Twilio asked again (a retry): the same answer
        return _xml(_answer_again(existing))
    found = await call_log.latest_call_to(deps.dialler_db, caller_keys(form.get("From")))
    if found is None:
        log.info("inbound call from an unknown number", call_sid=sid)
        return _xml(message_twiml(UNKNOWN_CALLER_MESSAGE))
    now = datetime.now(UTC)
    windows = deps.rules().calling_windows
    task, agents = await _floor(found)
    call = InboundCall(
        at=now,
        windows=windows,
        known=True,
        last_agent_id=found.agent_id,
        queue=task.queue if task is not None else None,
        agents=agents,
    )
    decision = await _route_and_hold(call, sid)
    log.info(
        "inbound call routed",
        call_sid=sid,
        user_id=found.user_id,
        route=decision.route.value,
        agent_id=decision.agent_id,
    )
    if decision.agent_id is None:
        booked = await _book_callback(found.user_id, decision, now)
        return _xml(message_twiml(callback_message(decision, now, windows.zone, booked)))
    return _xml(await _ring(found.user_id, decision.agent_id, task, sid, form))


def _answer_again(call: Call) -> str:
    if call.direction != INBOUND or call.agent_id is None or call.status in ENDED:
        return message_twiml(GOODBYE)
    return ring_agent_twiml(services().settings, call.id, call.agent_id)


async def _floor(found: CalledBefore) -> tuple[CallTask | None, tuple[FloorAgent, ...]]:
    """The claimant's task and every agent with their state (a few hundred at most)."""
    async with services().dialler_db.connect() as conn:
        task = await task_store.task_of(conn, found.user_id)
        staff_on_record = await agent_store.agents_in_states(conn)
        holding = await task_store.claimants_by_agent(conn)
    agents = tuple(
        FloorAgent(
            agent_id=s.seen.agent_id,
            role=s.role,
            queue=s.seen.queue,
            is_ai=s.seen.is_ai,
            is_active=s.is_active,
            state=s.seen.state,
            since=s.seen.since,
            busy=s.seen.agent_id in holding,
        )
        for s in staff_on_record
    )
    return task, agents


async def _route_and_hold(call: InboundCall, sid: str) -> InboundDecision:
    """The routing's choice, held for this call; an agent another call holds (rung at the
    same moment) counts as busy and the routing chooses again."""
    holds = _holds()
    while True:
        decision = route_inbound(call)
        if decision.agent_id is None or await holds.hold(decision.agent_id, sid, HOLD_SECONDS):
            return decision
        taken = decision.agent_id
        call = replace(
            call,
            agents=tuple(replace(a, busy=True) if a.agent_id == taken else a for a in call.agents),
        )


async def _ring(
    user_id: int, agent_id: int, task: CallTask | None, sid: str, form: dict[str, str]
) -> str:
    deps = services()
    settings = deps.settings
    new = NewInboundCall(
        user_id=user_id,
        agent_id=agent_id,
        task_id=task.id if task is not None else None,
        queue=task.queue if task is not None else None,
        provider="twilio" if settings.twilio_enabled else "simulated",
        provider_call_sid=sid,
        claimant_number=_claimant_number(form.get("From", "")),
        our_number=(form.get("To") or settings.twilio_from_number)[:NUMBER_WIDTH] or None,
    )
    call_id = await call_log.insert_inbound_call(deps.dialler_db, new)
    if call_id is None:  # the same call, written by a retry a moment earlier
        await _holds().release(agent_id, sid)
        existing = await call_log.call_by_sid(deps.dialler_db, sid)
        return _answer_again(existing) if existing is not None else message_twiml(GOODBYE)
    await deps.agent_states().record(agent_id, AgentState.ON_CALL, state_reason(call_id))
    # ids only on the channel: the console loads the claimant's context (an audited view)
    event = LiveEvent(INBOUND_CALL, {"call_id": call_id, "user_id": user_id})
    await deps.live().publish(channel_for_agent(agent_id), event)
    return ring_agent_twiml(settings, call_id, agent_id)


async def _book_callback(user_id: int, decision: InboundDecision, now: datetime) -> bool:
    """A shared callback at the decision's time, through the claimant's workflow; whether
    it was booked (refused for a claimant whose outreach stopped; Temporal away)."""
    if decision.callback_at is None:
        return False
    zone = services().rules().calling_windows.zone
    request_ = CallbackRequest(
        agent_id=None,
        at=decision.callback_at,
        notes=callback_note(decision, now, zone),
        owner_agent_id=None,
    )
    try:
        await services().outreach().schedule_callback(user_id, request_)
    except (OutreachRefused, OutreachUnavailable) as error:
        log.warning("inbound call: no callback booked", user_id=user_id, error=type(error).__name__)
        return False
    log.info("inbound call: shared callback booked", user_id=user_id)
    return True


# --- the agent's leg --------------------------------------------------------------------------


async def _inbound_call(call_id: int | None, parent_sid: str | None) -> Call | None:
    """The inbound call a webhook is about, if the caller's leg it names is that call's."""
    call = await call_log.call(services().dialler_db, call_id) if call_id is not None else None
    if call is None or call.direction != INBOUND or call.agent_id is None:
        return None
    if not parent_sid or parent_sid != call.provider_call_sid:
        return None
    return call


async def _apply_ending(call: Call, status: str, at: datetime, seconds: int) -> bool:
    """Move the call to `status`; when this ends it, free the agent. Whether it moved."""
    rank = STATUS_RANK[status]
    ended = status in ENDED
    applied = await call_log.advance_status(
        services().dialler_db,
        call.id,
        status,
        earlier=[s for s, r in STATUS_RANK.items() if r < rank],
        at=at,
        answered=status == "in-progress",
        ended=ended,
        duration_seconds=seconds,
    )
    if not applied:
        return False
    assert call.agent_id is not None
    event = LiveEvent(
        CALL_STATUS,
        {"call_id": call.id, "status": status, "duration_seconds": seconds if ended else None},
    )
    await services().live().publish(channel_for_agent(call.agent_id), event)
    if ended:
        await _free_agent(call, status)
    return True


async def _free_agent(call: Call, status: str) -> None:
    """The call is over for the agent: Ready again, or Paused when they let it ring out or
    declined it. A state they chose since is left alone."""
    assert call.agent_id is not None
    await _holds().release(call.agent_id, str(call.provider_call_sid))
    states = services().agent_states()
    current = await states.current(call.agent_id)
    if current.state is not AgentState.ON_CALL or current.reason != state_reason(call.id):
        return
    if status in NOT_TAKEN_REASONS:
        await states.record(call.agent_id, AgentState.PAUSED, NOT_TAKEN_REASONS[status])
    else:
        await states.record(call.agent_id, AgentState.READY, "inbound call ended")


@blueprint.post(INBOUND_STATUS_PATH)
@webhook("Twilio reports the progress of the agent's leg of an inbound call; signature-checked")
async def agent_leg_status() -> ResponseReturnValue:
    form = await verified_form()
    status = form.get("CallStatus", "")
    if status not in STATUS_RANK:
        return "", 204
    call = await _inbound_call(_call_id(), form.get("ParentCallSid"))
    if call is None:
        log.warning("inbound status callback for an unknown call", path=request.path)
        return "", 204
    seconds = (parse_count(form.get("CallDuration")) or 0) if status in ENDED else 0
    await _apply_ending(call, status, parse_twilio_time(form.get("Timestamp")), seconds)
    return "", 204


@blueprint.post(INBOUND_DIAL_PATH)
@webhook("Twilio asks what to do when the dial to an agent ends; signature-checked")
async def dial_ended() -> ResponseReturnValue:
    form = await verified_form()
    call = await _inbound_call(_call_id(), form.get("CallSid"))
    if call is None:
        return _xml(message_twiml(GOODBYE))
    dial_status = form.get("DialCallStatus", "")
    now = datetime.now(UTC)
    if dial_status in STATUS_RANK and dial_status in ENDED:
        await _apply_ending(call, dial_status, now, parse_count(form.get("DialCallDuration")) or 0)
    if dial_status not in NOT_TAKEN:  # they spoke (or the caller hung up): nothing more
        return _xml(hangup_twiml())
    windows = services().rules().calling_windows
    decision = after_missed_ring(now, windows)
    booked = await _book_callback(call.user_id, decision, now)
    return _xml(message_twiml(callback_message(decision, now, windows.zone, booked)))


# --- the console ------------------------------------------------------------------------------


async def _agents_inbound_call(agent_id: int, call_id: int) -> Call:
    call = await call_log.agents_call(services().dialler_db, agent_id, call_id)
    if call is None or call.direction != INBOUND:
        raise APIError(404, "not_found", "No such call.")
    return call


async def _phone(call: Call, error: str | None = None) -> str:
    return await render_template(
        "console/_inbound_phone.html",
        call=call,
        label=STATUS_LABELS.get(call.status, call.status),
        twilio=services().settings.twilio_enabled,
        error=error,
    )


async def call_panel(agent: CurrentAgent, call: Call) -> str:
    """The claimant's context beside a call to them (an audited view): who is calling,
    their claims, requirements and history. The call's controls are shown to the agent a
    claimant ringing back is ringing; anyone else who may see the claimant sees the
    context only."""
    context = (
        await services()
        .claimant_context()
        .view(call.user_id, Viewer(agent.id, client_ip(), purpose="call panel"))
    )
    rung = call.direction == INBOUND and call.agent_id == agent.id
    return await render_template(
        "console/_inbound.html",
        agent=agent,
        call=call,
        ctx=context,
        phone=await _phone(call) if rung else None,
    )


async def panel_for_state(agent: CurrentAgent, reason: str | None) -> str | None:
    """For the console: an agent On call for an inbound call still going sees its panel
    (None: their On call is not an inbound call's, or that call has ended)."""
    text = reason or ""
    call_id = parse_id(text.removeprefix(STATE_PREFIX)) if text.startswith(STATE_PREFIX) else None
    if call_id is None:
        return None
    call = await call_log.agents_call(services().dialler_db, agent.id, call_id)
    if call is None or call.direction != INBOUND or call.status in ENDED:
        return None
    return await call_panel(agent, call)


async def _with_state(agent: CurrentAgent, body: str) -> str:
    """`body` with the agent's state bar out of band: On call once rung, Ready or Paused
    when the call ends (the console sends it with every work panel)."""
    status = await services().agent_states().current(agent.id)
    bar = await render_template(
        "console/_state.html",
        agent=agent,
        status=status,
        pause_reasons=PAUSE_REASONS,
        oob=True,
        error=None,
        AgentState=AgentState,
    )
    return body + bar


@blueprint.get(PANEL_PATH)
@staff(AgentRole.AGENT)
@claimant_scoped("call_id")
async def call_context(call_id: int) -> ResponseReturnValue:
    """The panel the console loads when a claimant ringing back rings this agent (the
    `inbound-call` live event names the call)."""
    agent = require_agent()
    call = await call_log.call(services().dialler_db, call_id)
    if call is None:
        raise APIError(404, "not_found", "No such call.")
    return htmx_or_console(await _with_state(agent, await call_panel(agent, call)))


@blueprint.post("/console/inbound/<int:call_id>/simulate")
@staff(AgentRole.AGENT)
@claimant_scoped("call_id")
@SIMULATE_LIMIT
async def simulate(call_id: int) -> ResponseReturnValue:
    """The simulated provider's inbound call, from the agent's side: answer it, let it ring
    out, or hang up. Only without Twilio credentials."""
    agent = require_agent()
    if services().settings.twilio_enabled:
        raise APIError(404, "not_found", "Calls go through Twilio: there is no simulator.")
    call = await _agents_inbound_call(agent.id, call_id)
    action = (await request.form).get("action", "")
    if action not in SIMULATED_ACTIONS and action != "hangup":
        return await _phone(call, error="Choose what happens on the call."), 422
    if call.status in ENDED:
        return await _phone(call)
    parent = str(call.provider_call_sid)
    answered = call.status == "in-progress"
    simulator = SimulatedInbound(current_app._get_current_object(), services().settings)  # type: ignore[attr-defined]
    try:
        if action == "answer" and not answered:
            await simulator.agent_answers(call.id, parent)
        elif action in ("miss", "decline") and not answered:
            await simulator.agent_leg_ends(call.id, parent, SIMULATED_ACTIONS[action])
        elif action == "hangup" and answered:
            await simulator.agent_leg_ends(call.id, parent, "completed", _seconds_since(call))
    except SimulationError as problem:
        log.warning("simulated inbound call step failed", call_id=call.id, error=str(problem))
        fresh = await _agents_inbound_call(agent.id, call_id)
        return await _phone(fresh, error="The simulator failed."), 502
    return await _with_state(agent, await _phone(await _agents_inbound_call(agent.id, call_id)))


def _seconds_since(call: Call) -> int:
    since = call.answered_at or call.started_at
    return max(0, int((datetime.now(UTC) - since).total_seconds()))
