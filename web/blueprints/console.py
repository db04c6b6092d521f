"""The agent console: `/console` and the htmx partials an agent works their queue with.

The page has three parts: the agent's state (`#agent-state`: Ready, Paused with a reason,
On call, Wrap-up), their queue's live depth, and the work panel (`#work`), which shows one of:
idle (Ready or Paused, with "Next call"), no claimant ready, a claimed claimant's context
with the softphone, magic-link buttons and the outcome form, or wrap-up (a countdown, then
Ready; in progressive mode the next claimant is claimed when it ends).

Every action answers with the new work panel (and the state bar out of band), so the page
never reloads. A claimant the agent does not hold is a 404, whoever else holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Blueprint, redirect, render_template, request
from quart.typing import ResponseReturnValue

from adapters import task_store
from domain.callback_booking import refuse_callback
from domain.dispositions import EFFECTS, Disposition
from schemas.attribution import ContactKind
from schemas.enums import AgentRole, AgentState, LinkChannel, Queue
from schemas.outreach import (
    CallbackRequest,
    MagicLinkRequest,
    NoteRequest,
    OutcomeRequest,
    ReleaseRequest,
)
from services.agent_states import PAUSE_REASONS, AgentStateError, AgentStatus
from services.claimant_context import Viewer
from services.live_updates import queue_depths
from web.actions.console import (
    call_for_claim,
    client_ip,
    current_claim,
    held_task,
    htmx_or_console,
    per_session,
)
from web.auth.access import public, staff
from web.auth.claimants import claimant_scoped
from web.auth.identity import CurrentAgent, current_agent, require_agent
from web.blueprints import inbound_calls
from web.blueprints.consent import consent_template_values
from web.services import services
from web.views.console import (
    CALLBACK_DAYS,
    CallbackDay,
    offered_callback_days,
    outcome_confirmation,
    parse_callback_time,
    uk_time,
)
from web.views.console import CALLBACK_LEAD as CALLBACK_LEAD  # the tests' lead time
from web.voice import STATUS_LABELS
from workflows.outreach_client import OutreachRefused, OutreachUnavailable

blueprint = Blueprint("console", __name__)

NEXT_LIMIT = per_session(30, timedelta(minutes=1))
MAGIC_LINK_LIMIT = per_session(10, timedelta(minutes=1))
NOTES_MAX = 4000
PURPOSES = {Queue.UNSIGNED: "signature", Queue.OUTSTANDING: "documents", Queue.CALLBACK: "callback"}
ENGINE_DOWN = "The dialler engine is not responding. Try again in a moment."
# (group label, dispositions) in the order agents think about them
DISPOSITION_GROUPS: list[tuple[str, list[Disposition]]] = [
    (
        "Did not speak to them",
        [Disposition.NO_ANSWER, Disposition.BUSY, Disposition.VOICEMAIL_LEFT,
         Disposition.WRONG_NUMBER],
    ),
    (
        "Spoke to them",
        [Disposition.CALLBACK_REQUESTED, Disposition.PROMISED_TO_SIGN,
         Disposition.PROMISED_DOCUMENTS, Disposition.MAGIC_LINK_SENT, Disposition.COMPLETED,
         Disposition.NOT_INTERESTED],
    ),
    ("Stop contact", [Disposition.DO_NOT_CALL, Disposition.DECEASED]),
]  # fmt: skip


# --- the callback picker ----------------------------------------------------------------------


def callback_days(now: datetime) -> list[CallbackDay]:
    """Days (today and the next six) with the callback times the calling windows allow."""
    return offered_callback_days(now, services().rules().calling_windows)


def _callback_error(raw: str, now: datetime, day: str = "") -> tuple[datetime | None, str | None]:
    """The chosen callback time, or the reason it cannot be used (`day`: the day shown)."""
    return parse_callback_time(raw, day, now, services().rules().calling_windows)


@dataclass
class OutcomeForm:
    disposition: str = ""
    notes: str = ""
    callback_day: str = ""
    callback_at: str = ""
    error: str | None = None

    @property
    def needs_callback(self) -> bool:
        try:
            return EFFECTS[Disposition(self.disposition)].needs_callback_time
        except ValueError:
            return False


def _outcome_template_values(user_id: int, form: OutcomeForm) -> dict[str, Any]:
    now = datetime.now(UTC)
    days = callback_days(now)
    chosen = next((d for d in days if d.day.isoformat() == form.callback_day), None)
    chosen = chosen or (days[0] if days else None)
    return {
        "user_id": user_id,
        "form": form,
        "groups": [
            (label, [(d.value, EFFECTS[d]) for d in members])
            for label, members in DISPOSITION_GROUPS
        ],
        "days": days,
        "chosen_day": chosen,
    }


async def _render_outcome_form(user_id: int, form: OutcomeForm) -> str:
    return await render_template(
        "console/_outcome_form.html", **_outcome_template_values(user_id, form)
    )


# --- rendering the panels ---------------------------------------------------------------------


async def _state_bar(
    agent: CurrentAgent, status: AgentStatus, *, oob: bool = False, error: str | None = None
) -> str:
    return await render_template(
        "console/_state.html",
        agent=agent,
        status=status,
        pause_reasons=PAUSE_REASONS,
        oob=oob,
        error=error,
        AgentState=AgentState,
    )


async def _idle(agent: CurrentAgent, status: AgentStatus, message: str | None = None) -> str:
    return await render_template(
        "console/_idle.html", agent=agent, status=status, message=message, AgentState=AgentState
    )


async def _empty(agent: CurrentAgent, queue: Queue) -> str:
    upcoming = await task_store.next_ready(services().dialler_db, queue)
    return await render_template("console/_empty.html", agent=agent, queue=queue,
                                 upcoming=upcoming)  # fmt: skip


async def _claim_panel(agent: CurrentAgent, task: Any, *, message: str | None = None) -> str:
    """The claimed claimant: context (an audited view), softphone, actions, outcome form."""
    context = (
        await services()
        .claimant_context()
        .view(task.user_id, Viewer(agent.id, client_ip(), purpose="console"))
    )
    call = await call_for_claim(agent.id, task)
    return await render_template(
        "console/_claim.html",
        agent=agent,
        task=task,
        ctx=context,
        call=call,
        softphone=_softphone_values(call),
        outcome=_outcome_template_values(task.user_id, OutcomeForm()),
        consent_values=consent_template_values(
            task.user_id, await services().consents().standing(task.user_id)
        ),
        booking=_booking_values(task.user_id, BookingForm()),
        note=NoteForm(),
        message=message,
        twilio=services().settings.twilio_enabled,
    )


def _softphone_values(call: Any) -> dict[str, Any]:
    if call is None:
        return {"status": None, "label": ""}
    return {"status": call.status, "label": STATUS_LABELS.get(call.status, call.status)}


async def _wrap_up(
    agent: CurrentAgent, status: AgentStatus, recorded: Any = None, ctx: Any = None
) -> str:
    """The saved outcome's confirmation and the countdown, beside the claimant's context."""
    total = services().settings.wrap_up_seconds
    now = datetime.now(UTC)
    remaining = max(0, round(total - status.seconds_in_state(now)))
    label = _disposition_label(status.reason)
    return await render_template(
        "console/_wrap_up.html",
        status=status,
        remaining=remaining,
        total=total,
        recorded=recorded,
        outcome_label=label,
        confirmation=outcome_confirmation(label, recorded, now),
        ctx=ctx,
    )


def _disposition_label(value: str | None) -> str:
    try:
        return EFFECTS[Disposition(value or "")].label
    except ValueError:
        return value or ""


async def _work(agent: CurrentAgent, *, message: str | None = None) -> tuple[str, AgentStatus]:
    """The work panel for where the agent stands now (and their state)."""
    states = services().agent_states()
    status = await states.current(agent.id)
    if agent.role is not AgentRole.AGENT or agent.queue is None:
        return await render_template("console/_unavailable.html", agent=agent), status
    task = await current_claim(agent.id)
    if task is not None:
        return await _claim_panel(agent, task, message=message), status
    if status.state is AgentState.WRAP_UP:
        elapsed = status.seconds_in_state(datetime.now(UTC))
        if elapsed < services().settings.wrap_up_seconds:
            return await _wrap_up(agent, status), status
        status = await states.record(agent.id, AgentState.READY, "wrap-up ended")
    elif status.state is AgentState.ON_CALL:
        inbound = await inbound_calls.panel_for_state(agent, status.reason)
        if inbound is not None:  # a claimant ringing back: their call goes on
            return inbound, status
        # The claim went back to the queue (lease expired) while on a call: stop here.
        status = await states.record(agent.id, AgentState.PAUSED, "claim returned to the queue")
    return await _idle(agent, status, message), status


async def _with_state(agent: CurrentAgent, body: str, status: AgentStatus) -> str:
    return body + await _state_bar(agent, status, oob=True)


async def _claim_next(agent: CurrentAgent, status: AgentStatus, message: str | None = None) -> str:
    """Claim the top task of the agent's queue and show it (or say why not)."""
    assert agent.queue is not None
    try:
        claims = services().claim_service()
        task = await claims.claim_next(agent.id, agent.queue)
    except OutreachUnavailable:
        return await _with_state(agent, await _idle(agent, status, ENGINE_DOWN), status)
    except OutreachRefused as problem:  # Temporal refused to say who holds a claim
        message = f"No claimant was claimed: {problem}"
        return await _with_state(agent, await _idle(agent, status, message), status)
    if task is None:
        return await _with_state(agent, await _empty(agent, agent.queue), status)
    row = await held_task(agent.id, task.user_id)
    return await _with_state(agent, await _claim_panel(agent, row, message=message), status)


# --- pages and actions --------------------------------------------------------------------------


@blueprint.get("/")
@public("sends visitors to the console, or to sign-in")
async def home() -> ResponseReturnValue:
    return redirect("/console" if current_agent() is not None else "/login")


@blueprint.get("/console")
@staff()
async def console_page() -> str:
    agent = require_agent()
    work, status = await _work(agent)
    depth = (await queue_depths(services().dialler_db)).get(agent.queue) if agent.queue else None
    return await render_template(
        "console.html",
        agent=agent,
        work=work,
        state_bar=await _state_bar(agent, status),
        depth=depth,
        twilio=services().settings.twilio_enabled,
        wrap_up_seconds=services().settings.wrap_up_seconds,
    )


@blueprint.post("/console/state")
@staff(AgentRole.AGENT)
async def choose_state() -> ResponseReturnValue:
    """Ready, or Paused with a reason (not while holding a claimant)."""
    agent = require_agent()
    form = await request.form
    wanted, reason = form.get("state", ""), form.get("reason")
    states = services().agent_states()
    status = await states.current(agent.id)
    task = await current_claim(agent.id)
    if task is not None and wanted != AgentState.READY.value:
        error = "Save an outcome or return the claimant to the queue before pausing."
        return await _state_bar(agent, status, error=error), 422
    try:
        status = await states.choose(agent.id, wanted, reason)
    except AgentStateError as problem:
        return await _state_bar(agent, status, error=str(problem)), 422
    body = await _state_bar(agent, status)
    if task is None:
        work, status = await _work(agent)
        body += f'<div id="work" hx-swap-oob="innerHTML">{work}</div>'
    return htmx_or_console(body)


@blueprint.post("/console/next")
@staff(AgentRole.AGENT)
@NEXT_LIMIT
async def next_call() -> ResponseReturnValue:
    """Claim the best claimant of the agent's queue and show their context."""
    agent = require_agent()
    if agent.queue is None:
        return await render_template("console/_unavailable.html", agent=agent)
    held = await current_claim(agent.id)
    states = services().agent_states()
    status = await states.current(agent.id)
    if held is not None:
        return htmx_or_console(await _with_state(agent, await _claim_panel(agent, held), status))
    if status.state is AgentState.WRAP_UP:
        status = await states.record(agent.id, AgentState.READY, "wrap-up ended")
    if status.state is not AgentState.READY:
        message = f"You are {status.label.lower()}. Choose Ready to take calls."
        return htmx_or_console(await _with_state(agent, await _idle(agent, status, message),
                                                 status))  # fmt: skip
    return htmx_or_console(await _claim_next(agent, status))


@blueprint.get("/console/claimants/<int:user_id>")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def claimant_panel(user_id: int) -> ResponseReturnValue:
    """The claimed claimant's panel again (fresh context; the view is audited)."""
    agent = require_agent()
    task = await held_task(agent.id, user_id)
    return await _claim_panel(agent, task)


@blueprint.post("/console/claimants/<int:user_id>/release")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def release(user_id: int) -> ResponseReturnValue:
    """Give the claimant back to the queue without an outcome."""
    agent = require_agent()
    await held_task(agent.id, user_id)
    # a refusal is 409, silence 503 with Retry-After (web.errors)
    claims = services().claim_service()
    await claims.release(user_id, ReleaseRequest(agent.id, "returned to the queue by agent"))
    states = services().agent_states()
    status = await states.current(agent.id)
    if status.state in (AgentState.ON_CALL, AgentState.WRAP_UP):
        status = await states.record(agent.id, AgentState.READY, "claimant returned")
    body = await _idle(agent, status, "The claimant is back in the queue.")
    return htmx_or_console(await _with_state(agent, body, status))


@blueprint.post("/console/claimants/<int:user_id>/outcome")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def record_outcome(user_id: int) -> ResponseReturnValue:
    """Save the call's outcome (and a callback); then wrap-up."""
    agent = require_agent()
    task = await held_task(agent.id, user_id)
    raw = await request.form
    form = OutcomeForm(
        disposition=raw.get("disposition", "").strip(),
        notes=raw.get("notes", "").strip(),
        callback_day=raw.get("callback_day", ""),
        callback_at=raw.get("callback_at", ""),
    )
    callback_at: datetime | None = None
    now = datetime.now(UTC)
    if not form.disposition:
        form.error = "Choose an outcome."
    elif form.disposition not in Disposition.__members__.values():
        form.error = "Choose an outcome from the list."
    elif len(form.notes) > NOTES_MAX:
        form.error = f"Notes are at most {NOTES_MAX:,} characters."
    elif form.needs_callback:
        callback_at, form.error = _callback_error(form.callback_at, now, form.callback_day)
    if form.error:
        return await _invalid_outcome(user_id, form)

    call = await call_for_claim(agent.id, task)
    request_ = OutcomeRequest(
        agent_id=agent.id,
        disposition=form.disposition,
        notes=form.notes,
        callback_at=callback_at,
        call_id=call.id if call is not None else None,
    )
    try:
        claims = services().claim_service()
        recorded = await claims.record_outcome(user_id, request_)
    except OutreachRefused as problem:
        form.error = f"The outcome was not saved: {problem}."
        return await _invalid_outcome(user_id, form)
    except OutreachUnavailable:
        form.error = ENGINE_DOWN
        return await _invalid_outcome(user_id, form)
    states = services().agent_states()
    status = await states.record(agent.id, AgentState.WRAP_UP, form.disposition)
    saved = outcome_confirmation(_disposition_label(form.disposition), recorded, now)
    if services().settings.wrap_up_seconds == 0:
        status = await states.record(agent.id, AgentState.READY, "wrap-up ended")
        if raw.get("progressive") == "on":
            return htmx_or_console(await _claim_next(agent, status, saved))
        return htmx_or_console(await _with_state(agent, await _idle(agent, status, saved),
                                                 status))  # fmt: skip
    # the context stays beside the confirmation while the agent wraps up (an audited view)
    viewer = Viewer(agent.id, client_ip(), "wrap-up")
    ctx = await services().claimant_context().view(user_id, viewer)
    body = await _wrap_up(agent, status, recorded, ctx)
    return htmx_or_console(await _with_state(agent, body, status))


async def _invalid_outcome(user_id: int, form: OutcomeForm) -> ResponseReturnValue:
    """The form again with its message, in place (422: htmx swaps it, see base.html)."""
    body = await _render_outcome_form(user_id, form)
    return body, 422, {"HX-Retarget": "#outcome-form", "HX-Reswap": "outerHTML"}


@blueprint.get("/console/callback-slots")
@staff(AgentRole.AGENT)
async def callback_times() -> ResponseReturnValue:
    """The `<option>`s of the callback time picker for one day."""
    wanted = request.args.get("callback_day", "")
    days = callback_days(datetime.now(UTC))
    chosen = next((d for d in days if d.day.isoformat() == wanted), None)
    return await render_template("console/_callback_times.html", chosen_day=chosen, selected="")


@blueprint.post("/console/claimants/<int:user_id>/magic-link")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
@MAGIC_LINK_LIMIT
async def send_magic_link(user_id: int) -> ResponseReturnValue:
    """One click: a single-use sign-in link to the claimant by SMS or email."""
    agent = require_agent()
    task = await held_task(agent.id, user_id)
    channel = (await request.form).get("channel", "")
    if channel not in LinkChannel.__members__.values():
        body = await render_template("console/_magic_link.html", error="Choose SMS or email.")
        return body, 422
    purpose = PURPOSES.get(Queue(task.queue), "claim")
    try:
        claims = services().claim_service()
        # the contact the link is sent from: the agent's call during this claim, if any
        call = await call_for_claim(agent.id, task)
        sent = await claims.send_magic_link(
            user_id,
            MagicLinkRequest(
                agent.id,
                LinkChannel(channel),
                purpose,
                source_kind=None if call is None else ContactKind.CALL,
                source_ref=None if call is None else str(call.id),
            ),
        )
    except OutreachRefused as problem:
        body = await render_template(
            "console/_magic_link.html", error=f"The link was not sent: {problem}."
        )
        return body, 422
    except OutreachUnavailable:
        return await render_template("console/_magic_link.html", error=ENGINE_DOWN), 503
    return await render_template(
        "console/_magic_link.html",
        sent=sent,
        channel="SMS" if sent.delivered_via is LinkChannel.SMS else "email",
        sent_at=uk_time(datetime.now(UTC)),
        error=None,
    )


@blueprint.post("/console/wrap-up/end")
@staff(AgentRole.AGENT)
async def end_wrap_up() -> ResponseReturnValue:
    """Wrap-up is over (the timer ran out, or the agent is ready early): Ready again, and in
    progressive mode the next claimant is claimed at once."""
    agent = require_agent()
    progressive = (await request.form).get("progressive") == "on"
    states = services().agent_states()
    status = await states.current(agent.id)
    if await current_claim(agent.id) is None and status.state is AgentState.WRAP_UP:
        status = await states.record(agent.id, AgentState.READY, "wrap-up ended")
        if progressive and agent.queue is not None:
            return htmx_or_console(await _claim_next(agent, status))
    work, status = await _work(agent)
    return htmx_or_console(await _with_state(agent, work, status))


# --- a callback or a note, without an outcome ------------------------------------------------


@dataclass
class BookingForm:
    callback_day: str = ""
    callback_at: str = ""
    personal: bool = True
    notes: str = ""
    error: str | None = None
    next_allowed: tuple[datetime, ...] = ()
    booked: str | None = None  # the confirmation


@dataclass
class NoteForm:
    text: str = ""
    error: str | None = None
    added: bool = False


def _booking_values(user_id: int, form: BookingForm) -> dict[str, Any]:
    days = callback_days(datetime.now(UTC))
    chosen = next((d for d in days if d.day.isoformat() == form.callback_day), None)
    return {"user_id": user_id, "form": form, "days": days,
            "chosen_day": chosen or (days[0] if days else None)}  # fmt: skip


async def _booking_form(user_id: int, form: BookingForm, status: int = 200) -> ResponseReturnValue:
    """The callback form again, in place: with its confirmation, or (422, which htmx swaps)
    with why the callback was not booked."""
    body = await render_template(
        "console/_callback_form.html", booking=_booking_values(user_id, form)
    )
    return body, status


async def _note_form(user_id: int, form: NoteForm, status: int = 200) -> ResponseReturnValue:
    body = await render_template("console/_note_form.html", user_id=user_id, note=form)
    return body, status


def _instant(raw: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.utcoffset() is not None else None


@blueprint.post("/console/claimants/<int:user_id>/callback")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def book_callback(user_id: int) -> ResponseReturnValue:
    """Book a callback, personal (offered to this agent) or shared, without an outcome.
    A time outside the calling windows is refused with the next allowed times."""
    agent = require_agent()
    raw = await request.form
    form = BookingForm(
        callback_day=raw.get("callback_day", ""),
        callback_at=raw.get("callback_at", ""),
        personal=raw.get("owner", "personal") != "shared",
        notes=raw.get("notes", "").strip(),
    )
    now = datetime.now(UTC)
    try:
        at, form.error = _callback_error(form.callback_at, now, form.callback_day)
    except OverflowError:  # a time at the calendar's edge: no UTC reading
        at, form.error = None, "That callback time could not be read; choose one from the list."
    if form.error is None and len(form.notes) > NOTES_MAX:
        form.error = f"Notes are at most {NOTES_MAX:,} characters."
    if form.error is not None or at is None:
        chosen = _instant(form.callback_at)
        windows = services().rules().calling_windows
        refused = chosen and refuse_callback(chosen, now, windows, days_ahead=CALLBACK_DAYS)
        form.next_allowed = refused.next_allowed if refused else ()
        return await _booking_form(user_id, form, 422)
    owner = agent.id if form.personal else None
    try:
        claims = services().claim_service()
        booked = await claims.schedule_callback(
            user_id, CallbackRequest(agent.id, at, form.notes, owner)
        )
    except OutreachRefused as problem:
        form.error = f"The callback was not booked: {problem}."
        return await _booking_form(user_id, form, 422)
    except OutreachUnavailable:
        form.error = ENGINE_DOWN
        return await _booking_form(user_id, form, 422)
    whose = "personal: offered to you" if owner else "shared: any callback agent"
    local = booked.at.astimezone(services().rules().calling_windows.zone)
    when = f"{local:%a} {local.day} {local:%b} at {local:%H:%M}"
    return await _booking_form(
        user_id, BookingForm(booked=f"Callback booked for {when} ({whose}).")
    )


@blueprint.post("/console/claimants/<int:user_id>/notes")
@staff(AgentRole.AGENT)
@claimant_scoped("user_id")
async def add_note(user_id: int) -> ResponseReturnValue:
    """Add a note to the claimant's record, without an outcome."""
    agent = require_agent()
    form = NoteForm(text=(await request.form).get("text", "").strip())
    if not form.text:
        form.error = "Write the note first."
    elif len(form.text) > NOTES_MAX:
        form.error = f"A note is at most {NOTES_MAX:,} characters."
    if form.error:
        return await _note_form(user_id, form, 422)
    try:
        claims = services().claim_service()
        await claims.add_note(user_id, NoteRequest(agent.id, form.text))
    except OutreachRefused as problem:
        form.error = f"The note was not saved: {problem}."
        return await _note_form(user_id, form, 422)
    except OutreachUnavailable:
        form.error = ENGINE_DOWN
        return await _note_form(user_id, form, 422)
    return await _note_form(user_id, NoteForm(added=True))
