"""consent the dialler captures itself (PECR 21A / 19): consent_records

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("given", sa.Boolean(), nullable=False, comment="false: withdrawn"),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False, comment="console, api, ..."),
        sa.Column(
            "wording", sa.Text(), nullable=False, comment="what the claimant agreed to, as read"
        ),
        sa.CheckConstraint(
            "channel IN ('live_call', 'automated_call', 'sms', 'email')",
            name=op.f("ck_consent_records_channel"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_consent_records_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_consent_records_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_records")),
    )
    op.create_index("ix_consent_records_user_id_at", "consent_records", ["user_id", "at"])
    # Append-only like suppressions and audit_log (the function is migration 0001's):
    # consent evidence is never edited away; a withdrawal is another row.
    op.execute(
        "CREATE TRIGGER consent_records_append_only BEFORE UPDATE OR DELETE ON consent_records "
        "FOR EACH ROW EXECUTE FUNCTION reject_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER consent_records_append_only ON consent_records")
    op.drop_index("ix_consent_records_user_id_at", table_name="consent_records")
    op.drop_table("consent_records")
