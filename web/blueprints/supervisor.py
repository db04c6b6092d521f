"""The supervisor's wallboard (/supervisor): the floor live, fed by SSE from Redis pub/sub.

- `/supervisor`: the page. Its floor panel fetches `/supervisor/wallboard` again on every
  `floor-changed` event (published through Redis by whichever process changed the floor,
  `services.live_updates.FloorPublisher`, so every web process's streams hear it) and every
  15 seconds (times in state and callbacks coming due change with the clock alone).
- `/supervisor/wallboard`: the floor's figures (`services.wallboard.wallboard`).
- `/supervisor/wallboard/health`: the systems (`services.wallboard.system_health`), on a
  slower refresh of its own, so a service that does not answer never holds the floor back.
"""

from __future__ import annotations

from quart import Blueprint, render_template
from quart.typing import ResponseReturnValue

from config.settings import CdcSource
from domain.floor import WAIT_LABELS
from services.agent_states import LABELS as STATE_LABELS
from services.wallboard import AiSetup, system_health, wallboard
from web.auth.access import supervisor
from web.services import services
from web.temporal_links import workflow_url

blueprint = Blueprint("supervisor", __name__)

FLOOR_REFRESH_SECONDS = 15
HEALTH_REFRESH_SECONDS = 10


def percent(value: float | None) -> str:
    """0.125 -> "12.5 %"; None (nothing to divide) -> "—"."""
    return "—" if value is None else f"{value * 100:.1f} %"


def elapsed(seconds: float | None) -> str:
    """How long, as a wallboard says it: "45 s", "12 min", "1 h 05 min", "3 d 4 h"."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _view() -> dict[str, object]:
    settings = services().settings
    return {
        "percent": percent,
        "elapsed": elapsed,
        "wait_labels": WAIT_LABELS,
        "state_labels": STATE_LABELS,
        "workflow_url": lambda user_id: workflow_url(settings, user_id),
    }


async def _floor() -> dict[str, object]:
    deps = services()
    settings = deps.settings
    ai = AiSetup(settings.ai_configured, settings.ai_voice_enabled, settings.ai_sms_enabled)
    board = await wallboard(deps.dialler_db, zone=deps.rules().calling_windows.zone, ai=ai)
    return {"board": board, **_view()}


@blueprint.get("/supervisor")
@supervisor()
async def page() -> ResponseReturnValue:
    return await render_template(
        "supervisor/wallboard.html",
        section="wallboard",
        floor_refresh=FLOOR_REFRESH_SECONDS,
        health_refresh=HEALTH_REFRESH_SECONDS,
        **await _floor(),
    )


@blueprint.get("/supervisor/wallboard")
@supervisor()
async def floor() -> ResponseReturnValue:
    return await render_template("supervisor/_wallboard_floor.html", **await _floor())


@blueprint.get("/supervisor/wallboard/health")
@supervisor()
async def health() -> ResponseReturnValue:
    deps = services()
    settings = deps.settings
    cdc = settings.cdc_source
    report = await system_health(
        dialler=deps.dialler_db,
        replica=deps.replica_db,
        redis=deps.redis,
        temporal=deps.temporal,
        task_queue=settings.temporal_task_queue,
        cdc_source=None if cdc is CdcSource.NONE else cdc.value,
        ai_model=settings.openai_model,
        ai_task_queue=settings.ai_task_queue,
    )
    return await render_template("supervisor/_wallboard_health.html", health=report, **_view())
