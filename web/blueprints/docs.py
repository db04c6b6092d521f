"""`/docs`: the API reference (Swagger UI from npm, reading the app's own /openapi.json)."""

from __future__ import annotations

from quart import Blueprint, render_template

from web.auth.access import public

blueprint = Blueprint("docs", __name__)


@blueprint.get("/docs")
@public("API reference for integrators")
async def api_docs() -> str:
    return await render_template("api_docs.html")
