"""call outcome key: one outcome per claim, however often its activity runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "calls",
        sa.Column(
            "outcome_key",
            sa.String(length=96),
            nullable=True,
            comment="the claim whose outcome this is: a retried outcome is written once",
        ),
    )
    op.create_unique_constraint(op.f("uq_calls_outcome_key"), "calls", ["outcome_key"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_calls_outcome_key"), "calls", type_="unique")
    op.drop_column("calls", "outcome_key")
