"""Playback of call recordings (issue 11): `GET /calls/<call_id>/recording` streams the
recording from wherever it is kept (Twilio, the S3 bucket, a local file in development,
`adapters.recording_store`), in chunks, honouring a single byte range so an `<audio>`
element can seek.

Who: supervisors, admins and the agent who made the call (`@claimant_scoped(..., who=
"caller")`); any other agent gets 403. Every playback writes a `played_recording` audit row
(after the access hook's `viewed_personal_data`), before any byte is sent. A recording
deleted at the end of retention is 410, saying so and when.
"""

from __future__ import annotations

from datetime import timedelta

from quart import Blueprint, Response, request
from quart.typing import ResponseReturnValue
from structlog import get_logger

from adapters import call_log
from adapters.audit_log import append_audit
from adapters.recording_store import (
    RangeNotSatisfiable,
    RecordingGone,
    RecordingStoreError,
    RecordingStores,
)
from web.actions.console import per_session
from web.auth.access import staff
from web.auth.claimants import claimant_scoped
from web.auth.identity import require_agent
from web.errors import APIError
from web.services import services

log = get_logger(__name__)

blueprint = Blueprint("recordings", __name__)

PLAY_LIMIT = per_session(120, timedelta(minutes=1))  # an <audio> element seeks in ranges
RETRY_AFTER_SECONDS = 30


@blueprint.get("/calls/<int:call_id>/recording")
@staff()
@claimant_scoped("call_id", who="caller")
@PLAY_LIMIT
async def play(call_id: int) -> ResponseReturnValue:
    """The call's recording (audio/wav), whole or the requested byte range."""
    agent = require_agent()
    deps = services()
    recording = await call_log.recording_of(deps.dialler_db, call_id)
    if recording is None:
        raise APIError(404, "not_found", "No such call.")
    if recording.deleted_at is not None:
        months = deps.rules().compliance.recording_retention_months
        raise APIError(
            410,
            "recording_deleted",
            f"This call's recording was deleted on {recording.deleted_at:%d %B %Y}, at the end "
            f"of its retention period ({months} months). It cannot be played any more.",
        )
    if recording.location is None:
        raise APIError(404, "no_recording", "This call has no recording.")
    range_header = request.headers.get("Range")
    try:
        playback = await RecordingStores(deps.settings).open(recording.location, range_header)
    except RangeNotSatisfiable:
        raise APIError(416, "bad_range", "The requested range is outside the recording.") from None
    except RecordingGone:
        log.warning("recording missing from its store", call_id=call_id,
                    store=recording.location.store.value)  # fmt: skip
        raise APIError(
            404, "recording_missing", "The recording is not where it is kept; tell a supervisor."
        ) from None
    except RecordingStoreError as error:
        log.warning("recording store failed", call_id=call_id, error=str(error))
        raise APIError(
            503,
            "recording_unavailable",
            "The recording cannot be fetched just now; try again shortly.",
            retry_after=RETRY_AFTER_SECONDS,
        ) from None
    async with deps.dialler_db.begin() as conn:
        await append_audit(
            conn,
            actor_type="agent",
            actor_id=str(agent.id),
            action="played_recording",
            subject_type="call",
            subject_id=str(call_id),
            detail={
                "user_id": str(recording.user_id),
                "route": request.endpoint,
                "range": range_header,
                "store": recording.location.store.value,
            },
            ip_address=request.remote_addr,
        )
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if playback.length is not None:
        headers["Content-Length"] = str(playback.length)
    if playback.content_range:
        headers["Content-Range"] = playback.content_range
    return Response(
        playback.chunks,
        status=206 if playback.partial else 200,
        mimetype=playback.content_type,
        headers=headers,
    )
