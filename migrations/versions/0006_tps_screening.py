"""TPS and CTPS lists, and the screening of queued numbers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tps_list_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("list", sa.String(length=4), nullable=False, comment="tps or ctps"),
        sa.Column(
            "mode",
            sa.String(length=8),
            nullable=False,
            comment="replace: the whole list; add: additions",
        ),
        sa.Column(
            "source", sa.String(length=255), nullable=False, comment="the imported file's name"
        ),
        sa.Column("numbers", sa.BigInteger(), nullable=False, comment="its rows in tps_numbers"),
        sa.Column("rejected_lines", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "imported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "retired_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="a replace superseded it",
        ),
        sa.Column("numbers_dropped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "screened_before",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="the version ids in force (both lists) before this import",
        ),
        sa.Column(
            "screened_after",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="... and after it",
        ),
        sa.Column(
            "rescreened_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the claimants whose screening it changed were sent a refresh",
        ),
        sa.CheckConstraint("list IN ('tps', 'ctps')", name=op.f("ck_tps_list_versions_list")),
        sa.CheckConstraint("mode IN ('replace', 'add')", name=op.f("ck_tps_list_versions_mode")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tps_list_versions")),
    )
    op.create_index(
        "ix_tps_list_versions_list",
        "tps_list_versions",
        ["list"],
        postgresql_where=sa.text("retired_at IS NULL"),
    )
    op.create_table(
        "tps_numbers",
        sa.Column("number", sa.BigInteger(), nullable=False, comment="E.164 digits without the +"),
        sa.Column("version_id", sa.BigInteger(), nullable=False, comment="tps_list_versions.id"),
        sa.PrimaryKeyConstraint("number", "version_id", name=op.f("pk_tps_numbers")),
    )


def downgrade() -> None:
    op.drop_table("tps_numbers")
    op.drop_index("ix_tps_list_versions_list", table_name="tps_list_versions")
    op.drop_table("tps_list_versions")
