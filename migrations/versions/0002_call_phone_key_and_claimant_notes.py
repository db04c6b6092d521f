"""call phone key and claimant notes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:57:31.971601
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claimant_notes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_claimant_notes_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claimant_notes")),
    )
    op.create_index(
        "ix_claimant_notes_user_id_created_at",
        "claimant_notes",
        ["user_id", "created_at"],
        unique=False,
    )
    op.add_column(
        "calls",
        sa.Column(
            "phone_key",
            sa.String(length=64),
            nullable=True,
            comment="SHA-256 of to_number: per-number caps",
        ),
    )
    op.create_index(
        "ix_calls_phone_key_started_at", "calls", ["phone_key", "started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_calls_phone_key_started_at", table_name="calls")
    op.drop_column("calls", "phone_key")
    op.drop_index("ix_claimant_notes_user_id_created_at", table_name="claimant_notes")
    op.drop_table("claimant_notes")
