"""Indexes for the supervisor analytics over a range of days (services/analytics.py)

- ix_calls_started_at_figures: the calls of a range with every column the analytics count
  (agent, queue, outcome, claimant, whether and how long the claimant was reached), so the
  range is read from the index alone (an index-only scan) instead of the whole table. At a
  million calls, 90 days read 100 MB of index instead of 410 MB of rows.
- ix_agent_state_changes_agent_id_at_id replaces ix_agent_state_changes_agent_id_at: each
  agent's changes in (at, id) order with their state, so time in each state is summed from
  the index alone, in order, with no sort (and an agent's latest state, DISTINCT ON with the
  id as tie-break, is read straight from it too).

Built concurrently: both tables are written all day.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CALL_FIGURES = [
    "agent_id",
    "queue",
    "disposition",
    "user_id",
    "provider",
    "answered_at",
    "answered_by",
    "agent_seconds",
]


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_calls_started_at_figures",
            "calls",
            ["started_at"],
            postgresql_include=CALL_FIGURES,
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_agent_state_changes_agent_id_at_id",
            "agent_state_changes",
            ["agent_id", "at", "id"],
            postgresql_include=["state"],
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_agent_state_changes_agent_id_at",
            table_name="agent_state_changes",
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_agent_state_changes_agent_id_at",
            "agent_state_changes",
            ["agent_id", "at"],
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_agent_state_changes_agent_id_at_id",
            table_name="agent_state_changes",
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_calls_started_at_figures", table_name="calls", postgresql_concurrently=True
        )
