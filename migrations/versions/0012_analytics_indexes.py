"""The supervisor analytics over a range of days (services/analytics.py): the counts of
settled days, and indexes

- call_days, agent_state_days and link_days keep the counts of each settled UK day (calls
  by agent, queue and hour; each agent's time in each state; links by sender, channel and
  source, once all of the day's links have expired), counted once, so a 90-day report
  reads about a hundred thousand kept rows instead of half a million calls, 1.4 million
  state changes and 45,000 links. They fill themselves: the first report that needs a day
  counts it.

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

import sqlalchemy as sa
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
    op.create_table(
        "call_days",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False, comment="the UK day the calls started"),
        sa.Column(
            "grouping",
            sa.SmallInteger(),
            nullable=False,
            comment="0: the day's total (its marker), 1: by agent and outcome, "
            "2: by queue and outcome, 3: by the hour of the day",
        ),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("queue", sa.String(16), nullable=True),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("hour", sa.SmallInteger(), nullable=True, comment="UK hour of the day, 0-23"),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_days"),
    )
    op.create_index("ix_call_days_day", "call_days", ["day"])
    op.create_table(
        "agent_state_days",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False, comment="the UK day"),
        sa.Column("agent_id", sa.BigInteger(), nullable=True, comment="NULL: the day's marker"),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name="fk_agent_state_days_agent_id_agents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_agent_state_days"),
    )
    op.create_index("ix_agent_state_days_day", "agent_state_days", ["day"])
    op.create_table(
        "link_days",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False, comment="the UK day the links were created"),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(8), nullable=True, comment="NULL: the day's marker"),
        sa.Column("source_kind", sa.String(8), nullable=True),
        sa.Column(
            "queue", sa.String(16), nullable=True, comment="the queue of the call it came from"
        ),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_link_days"),
    )
    op.create_index("ix_link_days_day", "link_days", ["day"])
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
    op.drop_table("link_days")
    op.drop_table("agent_state_days")
    op.drop_table("call_days")
