"""Claimant-scoped routes: a route that names a claimant (by id, or by something that belongs
to one, such as a call) declares it with `@claimant_scoped(...)`, and the request hook in
`web.auth.access` checks the one access rule (`services.claimant_access`) before the view runs.

A claimant the caller may not see is a 404, exactly like one that does not exist, so a
refusal says nothing about the claimant. A test over the route table keeps every route with
a claimant or call id declared.

A narrower rule, `who="caller"` (a call's recording and transcript): supervisors and admins,
and the agent who made the call, whoever holds the claimant now; any other agent gets 403
(`domain.recordings.may_play`). It needs a call id.

Every request the rule lets through to a view (GET or HEAD) writes an append-only audit row
before the view runs: who (the agent), what (the claimant, and the call), when, and why (the
route's endpoint), action `viewed_personal_data` (DESIGN.md section 4). The views may add
their own, more specific rows (`viewed_claimant`, `played_recording`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from quart import current_app, request

from adapters.audit_log import append_audit
from domain.recordings import may_play
from services.claimant_access import call_parties, claimant_of_call, may_see
from web.auth.identity import CurrentAgent
from web.errors import APIError
from web.services import services

ATTRIBUTE = "_dialler_claimant_scope"
View = TypeVar("View", bound=Callable[..., Any])
Via = Literal["claimant", "call"]
Who = Literal["may_see", "caller"]
NOT_FOUND = "No such claimant, or not one you may see."
NOT_CALLER = "Only the agent who made this call, or a supervisor, may do this."
VIEWED = "viewed_personal_data"
VIEWS = frozenset({"GET", "HEAD"})
# Path arguments that name a claimant, or something that resolves to one.
CLAIMANT_ARGUMENTS: dict[str, Via] = {"user_id": "claimant", "call_id": "call"}


@dataclass(frozen=True)
class ClaimantScope:
    argument: str  # the path argument
    via: Via  # "claimant": it is the claimant's id; "call": a call to the claimant
    who: Who = "may_see"  # "caller": supervisors and the agent who made the call only


def claimant_scoped(argument: str = "user_id", *, who: Who = "may_see") -> Callable[[View], View]:
    """Declare that the route acts on the claimant its `argument` names (`who="caller"`:
    only supervisors, admins and the agent who made the call it names)."""
    if argument not in CLAIMANT_ARGUMENTS:
        raise ValueError(f"no claimant can be found from {argument!r}")
    if who == "caller" and CLAIMANT_ARGUMENTS[argument] != "call":
        raise ValueError("the caller rule needs a call id")
    scope = ClaimantScope(argument, CLAIMANT_ARGUMENTS[argument], who)

    def decorate(view: View) -> View:
        setattr(view, ATTRIBUTE, scope)
        return view

    return decorate


def claimant_scope_of(view: Callable[..., Any] | None) -> ClaimantScope | None:
    return getattr(view, ATTRIBUTE, None)


async def enforce_claimant_scope(agent: CurrentAgent) -> None:
    """404 unless the signed-in `agent` may see the claimant the route names (403 for an
    agent other than the caller on a caller-only route); a view is then audited."""
    scope = claimant_scope_of(current_app.view_functions.get(request.endpoint or ""))
    if scope is None:
        return
    value = (request.view_args or {}).get(scope.argument)
    if not isinstance(value, int):
        raise APIError(404, "not_found", NOT_FOUND)
    engine = services().dialler_db
    if scope.who == "caller":
        parties = await call_parties(engine, value)
        if parties is None:
            raise APIError(404, "not_found", "No such call.")
        if not may_play(agent.role, agent.id, parties.agent_id):
            raise APIError(403, "not_the_caller", NOT_CALLER)
        user_id: int | None = parties.user_id
    else:
        user_id = value if scope.via == "claimant" else await claimant_of_call(engine, value)
        if user_id is None or not await may_see(engine, agent.role, agent.id, user_id):
            raise APIError(404, "not_found", NOT_FOUND)
    if request.method in VIEWS and user_id is not None:
        await _audit_view(agent, user_id, value if scope.via == "call" else None)


async def _audit_view(agent: CurrentAgent, user_id: int, call_id: int | None) -> None:
    """Who saw which claimant's data, through which route (the why), written before the view
    runs: a view that cannot be audited is not served."""
    detail: dict[str, object] = {"route": request.endpoint, "method": request.method}
    if call_id is not None:
        detail["call_id"] = call_id
    async with services().dialler_db.begin() as conn:
        await append_audit(
            conn,
            actor_type="agent",
            actor_id=str(agent.id),
            action=VIEWED,
            subject_type="user",
            subject_id=str(user_id),
            detail=detail,
            ip_address=request.remote_addr,
        )
