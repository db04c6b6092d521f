"""Analytics over a date range, with charts and CSV export."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor_analytics", __name__)
