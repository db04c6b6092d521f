"""where each recording is kept, and its deletion at the end of retention

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_RETENTION_WHERE = (
    "recording_deleted_at IS NULL AND (recording_sid IS NOT NULL"
    " OR recording_store IS NOT NULL OR transcript IS NOT NULL)"
)


def upgrade() -> None:
    op.add_column(
        "calls",
        sa.Column(
            "recording_store",
            sa.String(length=8),
            nullable=True,
            comment="where the recording is kept: twilio, s3 or local (NULL: nowhere)",
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "recording_key",
            sa.Text(),
            nullable=True,
            comment=(
                "its key there: the RecordingSid, the S3 object key, the file under RECORDINGS_DIR"
            ),
        ),
    )
    op.add_column(
        "calls",
        sa.Column(
            "recording_deleted_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the recording and transcript were deleted (end of retention)",
        ),
    )
    op.add_column(
        "calls",
        sa.Column("transcript", sa.Text(), nullable=True, comment="deleted with the recording"),
    )
    op.create_check_constraint(
        op.f("ck_calls_recording_store"),
        "calls",
        "recording_store IN ('twilio', 's3', 'local')",
    )
    # Recordings Twilio reported before this migration are kept at Twilio, by their SID
    # (the simulated provider's were never real files: nowhere).
    op.execute(
        "UPDATE calls SET recording_store = 'twilio', recording_key = recording_sid "
        "WHERE provider = 'twilio' AND recording_sid IS NOT NULL"
    )
    op.create_index(
        "ix_calls_recording_retention",
        "calls",
        ["started_at"],
        postgresql_where=sa.text(_RETENTION_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_recording_retention", table_name="calls")
    op.drop_constraint(op.f("ck_calls_recording_store"), "calls", type_="check")
    op.drop_column("calls", "transcript")
    op.drop_column("calls", "recording_deleted_at")
    op.drop_column("calls", "recording_key")
    op.drop_column("calls", "recording_store")
