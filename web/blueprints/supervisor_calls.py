"""The calls list and the audit viewer, with filters and CSV export."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor_calls", __name__)
