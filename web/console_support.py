"""What the console and calling blueprints share: the agent's claim and calls (a claimant or
call that is not the agent's is a 404), htmx helpers and display filters (UK time)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from quart import Quart, redirect, request
from quart.typing import ResponseReturnValue
from quart_rate_limiter import rate_limit
from sqlalchemy import select

from schemas import dialler_db as db
from schemas.enums import TaskStatus
from web.errors import APIError
from web.ratelimit import requester_key
from web.services import services
from web.voice import STATUS_LABELS

LONDON = ZoneInfo("Europe/London")
View = TypeVar("View", bound=Callable[..., Any])
QUEUE_LABELS = {
    "unsigned": "Unsigned",
    "outstanding": "Outstanding documents",
    "callback": "Callbacks",
}
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


async def held_task(agent_id: int, user_id: int) -> Any:
    """The claimant's task, if and only if this agent holds it; otherwise 404 (another
    agent's claimant looks exactly like one that does not exist)."""
    tasks = db.call_tasks.c
    async with services().dialler_db.connect() as conn:
        row = (
            await conn.execute(
                select(db.call_tasks).where(
                    tasks.user_id == user_id,
                    tasks.claimed_by == agent_id,
                    tasks.status == TaskStatus.CLAIMED.value,
                )
            )
        ).one_or_none()
    if row is None:
        raise APIError(404, "not_found", NOT_YOURS)
    return row


async def current_claim(agent_id: int) -> Any:
    """The task this agent holds now, if any."""
    tasks = db.call_tasks.c
    async with services().dialler_db.connect() as conn:
        return (
            await conn.execute(
                select(db.call_tasks)
                .where(tasks.claimed_by == agent_id, tasks.status == TaskStatus.CLAIMED.value)
                .order_by(tasks.claimed_at.desc())
                .limit(1)
            )
        ).one_or_none()


async def agents_call(agent_id: int, call_id: int) -> Any:
    """A call this agent placed; otherwise 404."""
    async with services().dialler_db.connect() as conn:
        row = (
            await conn.execute(
                select(db.calls).where(db.calls.c.id == call_id, db.calls.c.agent_id == agent_id)
            )
        ).one_or_none()
    if row is None:
        raise APIError(404, "not_found", "No such call.")
    return row


async def call_for_claim(agent_id: int, task: Any) -> Any:
    """The call the agent placed during this claim (the latest), if any."""
    calls = db.calls.c
    since = task.claimed_at
    query = select(db.calls).where(
        calls.agent_id == agent_id,
        calls.user_id == task.user_id,
        calls.provider != "manual",
        calls.disposition.is_(None),
    )
    if since is not None:
        query = query.where(calls.started_at >= since)
    async with services().dialler_db.connect() as conn:
        return (
            await conn.execute(query.order_by(calls.started_at.desc(), calls.id.desc()).limit(1))
        ).one_or_none()


# --- display ---------------------------------------------------------------------------------


def _local(at: datetime | None) -> datetime | None:
    return at.astimezone(LONDON) if at is not None else None


def uk_time(at: datetime | None) -> str:
    local = _local(at)
    return f"{local:%H:%M}" if local else ""


def uk_time_iso(value: str | None) -> str:
    """An ISO instant (as live events carry them) as UK wall time."""
    try:
        return uk_time(datetime.fromisoformat(value)) if value else ""
    except ValueError:
        return ""


def uk_datetime(at: datetime | None) -> str:
    """ "Tue 31 Mar 2026, 14:05" (UK time)."""
    local = _local(at)
    if local is None:
        return ""
    return f"{local:%a} {local.day} {local:%b %Y}, {local:%H:%M}"


def uk_date(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:%a} {value.day} {value:%b %Y}"


def duration(seconds: int | float | None) -> str:
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    minutes, secs = divmod(total, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def pounds(value: float | None) -> str:
    return "" if value is None else f"£{value:,.0f}"


def phone(number: str | None) -> str:
    """+447700900123 -> 07700 900123 (UK mobiles and landlines, as agents read them)."""
    if not number:
        return ""
    if number.startswith("+44") and len(number) == 13:
        national = "0" + number[3:]
        return f"{national[:5]} {national[5:]}"
    return number


def humanise(value: str | None) -> str:
    return (value or "").replace("_", " ").replace("-", " ").strip().capitalize()


def call_status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", humanise(status))


def install_filters(app: Quart) -> None:
    app.jinja_env.filters.update(
        call_status_label=call_status_label,
        uk_time_iso=uk_time_iso,
        uk_time=uk_time,
        uk_datetime=uk_datetime,
        uk_date=uk_date,
        duration=duration,
        pounds=pounds,
        phone=phone,
        humanise=humanise,
    )
    app.jinja_env.globals["queue_label"] = lambda q: QUEUE_LABELS.get(str(q), humanise(str(q)))
