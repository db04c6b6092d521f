"""imported suppressions (numbers and emails) and their dated, audited removal

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_SUBJECT = "user_id IS NOT NULL OR phone_number IS NOT NULL"
NEW_SUBJECT = "user_id IS NOT NULL OR phone_number IS NOT NULL OR email IS NOT NULL"


def upgrade() -> None:
    op.add_column(
        "suppressions",
        sa.Column(
            "email", sa.String(length=254), nullable=True, comment="lower-case; imported lists"
        ),
    )
    op.add_column(
        "suppressions",
        sa.Column(
            "note", sa.Text(), nullable=True, comment="an imported list's reason, as written"
        ),
    )
    op.drop_constraint(op.f("ck_suppressions_has_subject"), "suppressions", type_="check")
    op.create_check_constraint(op.f("ck_suppressions_has_subject"), "suppressions", NEW_SUBJECT)
    op.create_index("ix_suppressions_email", "suppressions", ["email"], unique=False)

    op.create_table(
        "suppression_removals",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "suppression_id",
            sa.BigInteger(),
            nullable=False,
            comment="an imported suppression (reason 'list'); removed once",
        ),
        sa.Column(
            "effective_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="not in the future",
        ),
        sa.Column(
            "removed_by",
            sa.String(length=120),
            nullable=False,
            comment="the operator who removed it",
        ),
        sa.Column("reason", sa.Text(), nullable=False, comment="why, as the operator wrote it"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["suppression_id"],
            ["suppressions.id"],
            name=op.f("fk_suppression_removals_suppression_id_suppressions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_removals")),
        sa.UniqueConstraint("suppression_id", name=op.f("uq_suppression_removals_suppression_id")),
    )
    # Append-only like suppressions and audit_log (the function is migration 0001's).
    op.execute(
        "CREATE TRIGGER suppression_removals_append_only BEFORE UPDATE OR DELETE "
        "ON suppression_removals FOR EACH ROW EXECUTE FUNCTION reject_change()"
    )
    op.execute(
        "CREATE TRIGGER suppression_removals_no_truncate BEFORE TRUNCATE "
        "ON suppression_removals FOR EACH STATEMENT EXECUTE FUNCTION reject_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER suppression_removals_no_truncate ON suppression_removals")
    op.execute("DROP TRIGGER suppression_removals_append_only ON suppression_removals")
    op.drop_table("suppression_removals")
    op.drop_index("ix_suppressions_email", table_name="suppressions")
    # Rows about an email only cannot satisfy the old constraint: the downgrade refuses
    # (the table is append-only, so they cannot be deleted to make room either).
    op.drop_constraint(op.f("ck_suppressions_has_subject"), "suppressions", type_="check")
    op.create_check_constraint(op.f("ck_suppressions_has_subject"), "suppressions", OLD_SUBJECT)
    op.drop_column("suppressions", "note")
    op.drop_column("suppressions", "email")
