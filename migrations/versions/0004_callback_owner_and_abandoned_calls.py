"""personal callbacks held for their owner; both legs of a call, to tell abandoned calls

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "call_tasks",
        sa.Column(
            "owner_agent_id",
            sa.BigInteger(),
            nullable=True,
            comment="a personal callback's owner: only they are offered it until held_until",
        ),
    )
    op.add_column("call_tasks", sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_call_tasks_owner_agent_id_agents"),
        "call_tasks",
        "agents",
        ["owner_agent_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_call_tasks_ready_owner",
        "call_tasks",
        ["owner_agent_id"],
        postgresql_where=sa.text("status = 'ready' AND owner_agent_id IS NOT NULL"),
    )
    op.add_column(
        "calls",
        sa.Column(
            "answered_by",
            sa.String(length=32),
            nullable=True,
            comment="Twilio AnsweredBy: human, machine_*",
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "agent_left_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="agent's leg ended",
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "agent_seconds",
            sa.Integer(),
            nullable=True,
            comment="how long the agent's leg was connected (bridged) to the claimant",
        ),
    )


def downgrade() -> None:
    op.drop_column("calls", "agent_seconds")
    op.drop_column("calls", "agent_left_at")
    op.drop_column("calls", "answered_by")
    op.drop_index("ix_call_tasks_ready_owner", table_name="call_tasks")
    op.drop_constraint(
        op.f("fk_call_tasks_owner_agent_id_agents"), "call_tasks", type_="foreignkey"
    )
    op.drop_column("call_tasks", "held_until")
    op.drop_column("call_tasks", "owner_agent_id")
