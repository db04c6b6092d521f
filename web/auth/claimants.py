"""Claimant-scoped routes: a route that names a claimant (by id, or by something that belongs
to one, such as a call) declares it with `@claimant_scoped(...)`, and the request hook in
`web.auth.access` checks the one access rule (`services.claimant_access`) before the view runs.

A claimant the caller may not see is a 404, exactly like one that does not exist, so a
refusal says nothing about the claimant. A test over the route table keeps every route with
a claimant or call id declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from quart import current_app, request

from services.claimant_access import claimant_of_call, may_see
from web.auth.identity import CurrentAgent
from web.errors import APIError
from web.services import services

ATTRIBUTE = "_dialler_claimant_scope"
View = TypeVar("View", bound=Callable[..., Any])
Via = Literal["claimant", "call"]
NOT_FOUND = "No such claimant, or not one you may see."
# Path arguments that name a claimant, or something that resolves to one.
CLAIMANT_ARGUMENTS: dict[str, Via] = {"user_id": "claimant", "call_id": "call"}


@dataclass(frozen=True)
class ClaimantScope:
    argument: str  # the path argument
    via: Via  # "claimant": it is the claimant's id; "call": a call to the claimant


def claimant_scoped(argument: str = "user_id") -> Callable[[View], View]:
    """Declare that the route acts on the claimant its `argument` names."""
    if argument not in CLAIMANT_ARGUMENTS:
        raise ValueError(f"no claimant can be found from {argument!r}")
    scope = ClaimantScope(argument, CLAIMANT_ARGUMENTS[argument])

    def decorate(view: View) -> View:
        setattr(view, ATTRIBUTE, scope)
        return view

    return decorate


def claimant_scope_of(view: Callable[..., Any] | None) -> ClaimantScope | None:
    return getattr(view, ATTRIBUTE, None)


async def enforce_claimant_scope(agent: CurrentAgent) -> None:
    """404 unless the signed-in `agent` may see the claimant the route names."""
    scope = claimant_scope_of(current_app.view_functions.get(request.endpoint or ""))
    if scope is None:
        return
    value = (request.view_args or {}).get(scope.argument)
    if not isinstance(value, int):
        raise APIError(404, "not_found", NOT_FOUND)
    engine = services().dialler_db
    user_id = value if scope.via == "claimant" else await claimant_of_call(engine, value)
    if user_id is None or not await may_see(engine, agent.role, agent.id, user_id):
        raise APIError(404, "not_found", NOT_FOUND)
