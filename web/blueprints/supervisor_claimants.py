"""Queues and claimants for supervisors: task lists, the claimant page with its Temporal
history, and supervisor actions through the workflow's one door."""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("supervisor_claimants", __name__)
