"""Front-end libraries installed from npm (package.json, exact versions) and served from
node_modules: no page loads anything from a CDN. Only the files listed here are served."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_file

from web.auth.access import public
from web.errors import APIError

blueprint = Blueprint("assets", __name__)

NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "sse.min.js": "htmx-ext-sse/dist/sse.min.js",
    "twilio.min.js": "@twilio/voice-sdk/dist/twilio.min.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}


@blueprint.get("/vendor/<name>")
@public("third-party scripts and styles the pages load")
async def vendor(name: str) -> Response:
    relative = VENDOR.get(name)
    if relative is None:
        raise APIError(404, "not_found", "No such asset.")
    path = NODE_MODULES / relative
    if not path.is_file():
        raise APIError(
            503, "assets_missing", "Front-end libraries are not installed: run make install."
        )
    response = await send_file(path, cache_timeout=86400)
    return response
