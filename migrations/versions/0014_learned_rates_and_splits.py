"""Smarter contact (issue 14): learned rates, live splits, claimants who ring back

- rate_versions, learned_rates: the nightly job's rates per segment (region, lender, queue,
  hour, weekday, channel...), with their intervals and the rates shrunk towards the overall
  one; the scorer reads the newest version.
- scoring_splits: a live split, a share of claimants scored by a candidate rules version (at
  most one running); call_tasks.score_arm and calls.score_arm say which arm scored the task
  and the call.
- calls.direction: outbound (we called) or inbound (the claimant rang back).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "call_tasks",
        sa.Column(
            "score_arm",
            sa.String(length=16),
            nullable=True,
            comment="a live split's arm whose rules scored the task: control or candidate",
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "direction",
            sa.String(length=8),
            server_default="outbound",
            nullable=False,
            comment="outbound (we called) or inbound (the claimant rang back)",
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "score_arm",
            sa.String(length=16),
            nullable=True,
            comment="the live split's arm when called",
        ),
    )
    op.create_table(
        "rate_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False, comment="how long the run took"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_versions")),
    )
    op.create_table(
        "learned_rates",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("version_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "dimension",
            sa.String(length=32),
            nullable=False,
            comment="region, lender, queue, hour, ...",
        ),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.Column("contact_rate", sa.Float(), nullable=False),
        sa.Column("contact_low", sa.Float(), nullable=False),
        sa.Column("contact_high", sa.Float(), nullable=False),
        sa.Column("conversion_rate", sa.Float(), nullable=False),
        sa.Column("conversion_low", sa.Float(), nullable=False),
        sa.Column("conversion_high", sa.Float(), nullable=False),
        sa.Column("shrunk_contact_rate", sa.Float(), nullable=False),
        sa.Column("shrunk_conversion_rate", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["rate_versions.id"],
            name=op.f("fk_learned_rates_version_id_rate_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_rates")),
        sa.UniqueConstraint(
            "version_id",
            "dimension",
            "segment",
            name=op.f("uq_learned_rates_version_id_dimension_segment"),
        ),
    )
    op.create_table(
        "scoring_splits",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "rules_version_id", sa.BigInteger(), nullable=False, comment="the candidate rules"
        ),
        sa.Column("share", sa.Float(), nullable=False, comment="of claimants in the candidate arm"),
        sa.Column("note", sa.String(length=300), server_default="", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_by", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ended_by"],
            ["agents.id"],
            name=op.f("fk_scoring_splits_ended_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rules_version_id"],
            ["rules_versions.id"],
            name=op.f("fk_scoring_splits_rules_version_id_rules_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["agents.id"],
            name=op.f("fk_scoring_splits_started_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_splits")),
    )
    op.create_index(
        "ix_scoring_splits_one_running",
        "scoring_splits",
        [sa.text("(ended_at IS NULL)")],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_scoring_splits_one_running", table_name="scoring_splits")
    op.drop_table("scoring_splits")
    op.drop_table("learned_rates")
    op.drop_table("rate_versions")
    op.drop_column("calls", "score_arm")
    op.drop_column("calls", "direction")
    op.drop_column("call_tasks", "score_arm")
