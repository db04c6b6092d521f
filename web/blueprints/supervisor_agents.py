"""Agent management: people and AI agents, API tokens, session history.

- `/supervisor/agents`: every account with its role, queue, person or AI, whether it is
  active, its current state and its last sign-in; a link to add a person or an AI agent.
- `/supervisor/agents/new`: the form (`?kind=ai` for an AI agent); it posts to
  `/supervisor/agents`.
- `/supervisor/agents/<id>`: the account, its actions (role and queue, disable or enable,
  reset the password, sign out everywhere, API tokens) and its history (sign-ins with
  address and browser, state changes with pause reasons), each paged.

The routes are thin: `services.staff` holds the rules and writes the audit. A form with bad
input comes back with its messages (422); a change the rules refuse comes back with the
reason (403). A new password a supervisor asked to be generated, and an API token, appear
once, in the answer to the POST that made them (never stored, never cached).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, redirect, render_template, request
from quart.typing import ResponseReturnValue

from adapters import agent_store, api_tokens
from domain.staff_rules import InvalidStaffInput
from schemas.enums import AgentRole, Queue
from services.agent_states import LABELS
from services.staff import Access, Acting, IssuedToken, StaffNotFound, StaffRefused, StaffService
from web.auth.access import session_store, supervisor
from web.auth.identity import require_agent
from web.auth.tokens import TokenRevocations
from web.converters import query_int
from web.errors import APIError
from web.services import services

blueprint = Blueprint("supervisor_agents", __name__)

MAX_PAGE = 100_000
DONE = {
    "created": "Account created.",
    "role": "Role and queue saved.",
    "enabled": "Account enabled.",
    "revoked": "Token revoked: it stops working at once.",
    "disabled": "Account disabled: its sessions and API tokens stop working at once.",
    "logout": "Signed out everywhere.",
}
BEARER_FAILED = (
    "Its short-lived API tokens (JWTs) could not be revoked: Redis is unavailable. "
    "They expire within the hour; try again to revoke them now."
)


def staff_service() -> StaffService:
    deps = services()
    return StaffService(
        deps.dialler_db,
        TokenRevocations(deps.redis),
        on_state_change=deps.floor_publisher().changed,  # the wallboards show who left
    )


def _acting() -> Acting:
    agent = require_agent()
    return Acting.staff(agent.id, agent.role, request.remote_addr)


def _not_found(error: StaffNotFound) -> APIError:
    return APIError(404, "not_found", str(error))


def _after(agent_id: int, done: str, access: Access | None) -> ResponseReturnValue:
    """Back to the account's page, saying what the action ended."""
    query = f"done={done}"
    if access is not None:
        query += f"&sessions={access.sessions_ended}"
        if not access.bearer_tokens_revoked:
            query += "&bearer=failed"
    return redirect(f"/supervisor/agents/{agent_id}?{query}", 303)


def _page_number(name: str) -> int:
    return max(1, query_int(name, 1, maximum=MAX_PAGE))


def _secret(page: str, status: int = 200) -> Response:
    """An answer that shows a secret once: not to be kept by any cache or the history."""
    response = Response(page, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the list and the create form ------------------------------------------------------------


@blueprint.get("/supervisor/agents")
@supervisor()
async def agents() -> ResponseReturnValue:
    page = await staff_service().page(_page_number("page"))
    return await render_template(
        "supervisor/agents.html", section="agents", page=page, state_labels=LABELS
    )


def _form_values(form: Any | None = None) -> dict[str, str]:
    form = form or {}
    return {
        name: str(form.get(name, "")) for name in ("email", "display_name", "role", "queue", "kind")
    }


async def _new_form(
    values: dict[str, str], *, errors: dict[str, str] | None = None, refused: str | None = None
) -> str:
    return await render_template(
        "supervisor/agent_new.html",
        section="agents",
        values=values,
        errors=errors or {},
        refused=refused,
        roles=_roles_offered(),
        queues=list(Queue),
    )


def _roles_offered() -> list[AgentRole]:
    """The roles the signed-in supervisor may give (the service checks again)."""
    if require_agent().role is AgentRole.ADMIN:
        return list(AgentRole)
    return [AgentRole.AGENT, AgentRole.SUPERVISOR]


def _roles_for(record: agent_store.StaffRecord) -> list[AgentRole]:
    offered = _roles_offered()
    current = AgentRole(record.role)
    return offered if current in offered else [*offered, current]


@blueprint.get("/supervisor/agents/new")
@supervisor()
async def new_agent() -> ResponseReturnValue:
    kind = "ai" if request.args.get("kind") == "ai" else "person"
    values = _form_values() | {"kind": kind, "role": AgentRole.AGENT.value}
    return await _new_form(values)


@blueprint.post("/supervisor/agents")
@supervisor()
async def create_agent() -> ResponseReturnValue:
    form = await request.form
    values = _form_values(form)
    is_ai = values["kind"] == "ai"
    values["kind"] = "ai" if is_ai else "person"
    try:
        record = await staff_service().create(
            _acting(),
            email=values["email"],
            display_name=values["display_name"],
            role=AgentRole.AGENT.value if is_ai else values["role"],
            queue=values["queue"],
            is_ai=is_ai,
            password=None if is_ai else form.get("password", ""),
        )
    except InvalidStaffInput as error:
        return await _new_form(values, errors=error.fields), 422
    except StaffRefused as error:
        return await _new_form(values, refused=str(error)), 403
    return redirect(f"/supervisor/agents/{record.id}?done=created", 303)


# --- one account -------------------------------------------------------------------------------


async def _detail(
    agent_id: int,
    *,
    failed: str | None = None,
    errors: dict[str, str] | None = None,
    refused: str | None = None,
    notice: str | None = None,
    generated_password: str | None = None,
    issued: IssuedToken | None = None,
    values: dict[str, str] | None = None,
) -> str:
    service = staff_service()
    try:
        record = await service.get(agent_id)
    except StaffNotFound as error:
        raise _not_found(error) from None
    sessions = await service.sessions(agent_id, _page_number("sessions_page"))
    changes = await service.state_changes(agent_id, _page_number("states_page"))
    return await render_template(
        "supervisor/agent.html",
        section="agents",
        record=record,
        status=await service.status(agent_id),
        tokens=await service.tokens(agent_id) if record.is_ai else [],
        sessions=sessions,
        changes=changes,
        state_labels=LABELS,
        roles=_roles_for(record),
        queues=list(Queue),
        failed=failed,
        errors=errors or {},
        refused=refused,
        notice=notice or DONE.get(request.args.get("done", "")),
        sessions_ended=query_int("sessions", -1, maximum=1_000_000),
        bearer_failed=request.args.get("bearer") == "failed",
        bearer_failed_message=BEARER_FAILED,
        now=datetime.now(UTC),
        idle=session_store().idle,
        generated_password=generated_password,
        issued=issued,
        values=values or {},
        prefix_shown=api_tokens.PREFIX_SHOWN,
        me=require_agent().id,
    )


@blueprint.get("/supervisor/agents/<int:agent_id>")
@supervisor()
async def agent(agent_id: int) -> ResponseReturnValue:
    return await _detail(agent_id)


async def _refused(agent_id: int, form: str, error: StaffRefused) -> ResponseReturnValue:
    return await _detail(agent_id, failed=form, refused=str(error)), 403


async def _invalid(
    agent_id: int, form: str, error: InvalidStaffInput, values: dict[str, str]
) -> ResponseReturnValue:
    return await _detail(agent_id, failed=form, errors=error.fields, values=values), 422


@blueprint.post("/supervisor/agents/<int:agent_id>/role")
@supervisor()
async def set_role(agent_id: int) -> ResponseReturnValue:
    form = await request.form
    values = {"role": form.get("role", ""), "queue": form.get("queue", "")}
    try:
        await staff_service().set_role_and_queue(_acting(), agent_id, **values)
    except StaffNotFound as error:
        raise _not_found(error) from None
    except InvalidStaffInput as error:
        return await _invalid(agent_id, "role", error, values)
    except StaffRefused as error:
        return await _refused(agent_id, "role", error)
    return redirect(f"/supervisor/agents/{agent_id}?done=role", 303)


@blueprint.post("/supervisor/agents/<int:agent_id>/disable")
@supervisor()
async def disable(agent_id: int) -> ResponseReturnValue:
    try:
        access = await staff_service().set_active(_acting(), agent_id, False)
    except StaffNotFound as error:
        raise _not_found(error) from None
    except StaffRefused as error:
        return await _refused(agent_id, "active", error)
    return _after(agent_id, "disabled", access)


@blueprint.post("/supervisor/agents/<int:agent_id>/enable")
@supervisor()
async def enable(agent_id: int) -> ResponseReturnValue:
    try:
        await staff_service().set_active(_acting(), agent_id, True)
    except StaffNotFound as error:
        raise _not_found(error) from None
    except StaffRefused as error:
        return await _refused(agent_id, "active", error)
    return redirect(f"/supervisor/agents/{agent_id}?done=enabled", 303)


@blueprint.post("/supervisor/agents/<int:agent_id>/password")
@supervisor()
async def reset_password(agent_id: int) -> ResponseReturnValue:
    form = await request.form
    generate = form.get("generate") == "1"
    try:
        generated, access = await staff_service().reset_password(
            _acting(), agent_id, None if generate else form.get("new_password", "")
        )
    except StaffNotFound as error:
        raise _not_found(error) from None
    except InvalidStaffInput as error:
        return await _invalid(agent_id, "password", error, {})
    except StaffRefused as error:
        return await _refused(agent_id, "password", error)
    notice = "Password changed; every session of the account was ended."
    if not access.bearer_tokens_revoked:
        notice += " " + BEARER_FAILED
    return _secret(await _detail(agent_id, notice=notice, generated_password=generated))


@blueprint.post("/supervisor/agents/<int:agent_id>/logout")
@supervisor()
async def force_logout(agent_id: int) -> ResponseReturnValue:
    try:
        access = await staff_service().force_logout(_acting(), agent_id)
    except StaffNotFound as error:
        raise _not_found(error) from None
    except StaffRefused as error:
        return await _refused(agent_id, "logout", error)
    return _after(agent_id, "logout", access)


@blueprint.post("/supervisor/agents/<int:agent_id>/tokens")
@supervisor()
async def issue_token(agent_id: int) -> ResponseReturnValue:
    form = await request.form
    values = {"label": form.get("label", ""), "expires_days": form.get("expires_days", "")}
    try:
        issued = await staff_service().issue_token(
            _acting(), agent_id, label=values["label"], expires_days=values["expires_days"]
        )
    except StaffNotFound as error:
        raise _not_found(error) from None
    except InvalidStaffInput as error:
        return await _invalid(agent_id, "token", error, values)
    except StaffRefused as error:
        return await _refused(agent_id, "token", error)
    return _secret(await _detail(agent_id, issued=issued))


@blueprint.post("/supervisor/agents/<int:agent_id>/tokens/<int:token_id>/revoke")
@supervisor()
async def revoke_token(agent_id: int, token_id: int) -> ResponseReturnValue:
    try:
        await staff_service().revoke_token(_acting(), agent_id, token_id)
    except StaffNotFound as error:
        raise _not_found(error) from None
    except StaffRefused as error:
        return await _refused(agent_id, "token", error)
    return redirect(f"/supervisor/agents/{agent_id}?done=revoked", 303)
