"""What the console and calling routes do for an agent: find the claim and the calls that are
theirs (a claimant or call that is not the agent's is a 404), rate-limit per session, and
answer htmx or a plain form post. The pages' view models are in `web.views.console`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from quart import redirect, request
from quart.typing import ResponseReturnValue
from quart_rate_limiter import rate_limit

from adapters import call_log, task_store
from adapters.call_log import Call
from adapters.task_store import CallTask
from web.errors import APIError
from web.ratelimit import requester_key
from web.services import services

View = TypeVar("View", bound=Callable[..., Any])
NOT_YOURS = "That claimant is not assigned to you."


def per_session(count: int, period: timedelta) -> Callable[[View], View]:
    """A limit per signed-in session (or token), on top of the app-wide defaults."""
    decorate: Callable[[View], View] = rate_limit(count, period, key_function=requester_key)
    return decorate


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def htmx_or_console(body: str, status: int = 200) -> ResponseReturnValue:
    """The partial for htmx; a plain form post (no script) goes back to the console page."""
    if is_htmx() or status >= 400:
        return body, status
    return redirect("/console", 303)


def client_ip() -> str | None:
    return request.remote_addr


async def held_task(agent_id: int, user_id: int) -> CallTask:
    """The claimant's task, if and only if this agent holds it; otherwise 404 (another
    agent's claimant looks exactly like one that does not exist)."""
    row = await task_store.held_task(services().dialler_db, agent_id, user_id)
    if row is None:
        raise APIError(404, "not_found", NOT_YOURS)
    return row


async def current_claim(agent_id: int) -> CallTask | None:
    """The task this agent holds now, if any."""
    return await task_store.current_claim(services().dialler_db, agent_id)


async def agents_call(agent_id: int, call_id: int) -> Call:
    """A call this agent placed; otherwise 404."""
    row = await call_log.agents_call(services().dialler_db, agent_id, call_id)
    if row is None:
        raise APIError(404, "not_found", "No such call.")
    return row


async def call_for_claim(agent_id: int, task: CallTask) -> Call | None:
    """The call the agent placed during this claim (the latest) with no outcome yet, if any."""
    return await call_log.open_call_for_claim(
        services().dialler_db, agent_id, task.user_id, task.claimed_at
    )
