"""The supervisor's wallboard (/supervisor): the floor live, fed by SSE from Redis pub/sub."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor", __name__)
