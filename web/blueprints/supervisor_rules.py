"""The rules file: view, edit with validation, preview the queues, save as a new version."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor_rules", __name__)
