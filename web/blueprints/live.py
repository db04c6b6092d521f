"""`GET /events`: live updates for staff pages as Server-Sent Events (htmx-ext-sse).

One stream per open page. It listens on the staff channel, the member of staff's own
channel, their queue's channel and, for supervisors and admins, the supervisors' channel
(`adapters.live` lists channels and events), sends the queue's depth at once, then each
event as it is published: rendered with `templates/live/<event>.html` when that template
exists (HTML for `sse-swap`), else as JSON.
A comment every few seconds keeps proxies from closing the connection; the stream ends after
a few minutes and the browser reconnects, so a session that ended stops receiving.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

from jinja2 import TemplateNotFound
from quart import Blueprint, Response, current_app, render_template, stream_with_context
from redis.exceptions import RedisError
from structlog import get_logger

from adapters.live import (
    STAFF_CHANNEL,
    SUPERVISORS_CHANNEL,
    LiveEvent,
    channel_for_agent,
    channel_for_queue,
)
from services.live_updates import queue_depths
from web.actions.console import per_session
from web.auth.access import SUPERVISOR_ROLES, staff
from web.auth.identity import require_agent
from web.services import services

log = get_logger(__name__)

blueprint = Blueprint("live", __name__)

KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0  # then the browser reconnects (and the session is checked again)
RETRY_MS = 3000
STREAM_LIMIT = per_session(60, timedelta(minutes=1))


def _frame(name: str, payload: str) -> str:
    lines = payload.splitlines() or [""]
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


async def _render(event: LiveEvent) -> str:
    try:
        html = await render_template(f"live/{event.name}.html", data=event.data)
    except TemplateNotFound:
        return _frame(event.name, json.dumps(event.data, default=str))
    return _frame(event.name, html.strip())


@blueprint.get("/events")
@staff()
@STREAM_LIMIT
async def events() -> Response:
    agent = require_agent()
    deps = services()
    channels = [STAFF_CHANNEL, channel_for_agent(agent.id)]
    if agent.queue is not None:
        channels.append(channel_for_queue(agent.queue))
    if agent.role in SUPERVISOR_ROLES:
        channels.append(SUPERVISORS_CHANNEL)  # the wallboard's floor-changed
    lifetime = float(current_app.config.get("LIVE_STREAM_SECONDS", STREAM_SECONDS))

    @stream_with_context
    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        try:
            async with deps.live().subscribe(channels) as subscription:
                if agent.queue is not None:
                    depth = (await queue_depths(deps.dialler_db))[agent.queue]
                    yield await _render(depth.event())
                deadline = asyncio.get_running_loop().time() + lifetime
                while asyncio.get_running_loop().time() < deadline:
                    event = await subscription.next(KEEPALIVE_SECONDS)
                    yield await _render(event) if event is not None else ": keep-alive\n\n"
        except RedisError as error:  # the browser reconnects after RETRY_MS
            log.warning("live stream ended: Redis unavailable", error=str(error))

    response = Response(stream(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    response.timeout = None
    return response
