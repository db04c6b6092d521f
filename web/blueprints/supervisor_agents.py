"""Agent management: people and AI agents, API tokens, session history."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor_agents", __name__)
