"""magic-link contacts and events, and conversions attributed to contacts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # magic_links: the contact a link was sent from; the token hash may be purged (the row
    # and its attribution stay for the retention period)
    op.alter_column(
        "magic_links",
        "token_hash",
        existing_type=sa.String(length=64),
        nullable=True,
        comment="SHA-256; never the token. NULL once purged after expiry (the row stays)",
        existing_comment="SHA-256; never the token",
    )
    op.add_column(
        "magic_links",
        sa.Column(
            "source_kind",
            sa.String(length=8),
            nullable=True,
            comment="the contact it was sent from",
        ),
    )
    op.add_column(
        "magic_links",
        sa.Column(
            "source_ref",
            sa.String(length=64),
            nullable=True,
            comment="calls.id or sms_messages.id as text, or the AI activity's id",
        ),
    )
    op.create_check_constraint(
        op.f("ck_magic_links_source_kind"), "magic_links", "source_kind IN ('call', 'sms', 'ai')"
    )
    op.create_check_constraint(
        op.f("ck_magic_links_source_complete"),
        "magic_links",
        "(source_kind IS NULL) = (source_ref IS NULL)",
    )
    op.create_index("ix_magic_links_created_at", "magic_links", ["created_at"])

    op.create_table(
        "magic_link_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=8), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "event IN ('sent', 'opened', 'used')", name=op.f("ck_magic_link_events_event")
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["magic_links.id"],
            name=op.f("fk_magic_link_events_link_id_magic_links"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_magic_link_events")),
    )
    op.create_index("ix_magic_link_events_link_id_event", "magic_link_events", ["link_id", "event"])

    op.create_table(
        "conversions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "event_id", sa.String(length=200), nullable=False, comment="the CDC change event"
        ),
        sa.Column(
            "subject_key",
            sa.String(length=64),
            nullable=False,
            comment="signature:<user id> or requirement:<requirement id>: counted once",
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=True),
        sa.Column("requirement_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="the replica's commit",
        ),
        sa.Column(
            "contact_kind",
            sa.String(length=8),
            nullable=True,
            comment="NULL: no contact in the window",
        ),
        sa.Column("contact_ref", sa.String(length=64), nullable=True),
        sa.Column("contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "queue", sa.String(length=16), nullable=True, comment="the credited call's queue"
        ),
        sa.Column("link_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "attributed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('signed', 'documents')", name=op.f("ck_conversions_kind")),
        sa.CheckConstraint(
            "contact_kind IN ('call', 'sms', 'ai')", name=op.f("ck_conversions_contact_kind")
        ),
        sa.CheckConstraint(
            "queue IN ('unsigned', 'outstanding', 'callback')", name=op.f("ck_conversions_queue")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_conversions_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["link_id"],
            ["magic_links.id"],
            name=op.f("fk_conversions_link_id_magic_links"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_conversions_event_id")),
        sa.UniqueConstraint("subject_key", name=op.f("uq_conversions_subject_key")),
    )
    op.create_index("ix_conversions_occurred_at", "conversions", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_conversions_occurred_at", table_name="conversions")
    op.drop_table("conversions")
    op.drop_index("ix_magic_link_events_link_id_event", table_name="magic_link_events")
    op.drop_table("magic_link_events")
    op.drop_index("ix_magic_links_created_at", table_name="magic_links")
    op.drop_constraint(op.f("ck_magic_links_source_complete"), "magic_links", type_="check")
    op.drop_constraint(op.f("ck_magic_links_source_kind"), "magic_links", type_="check")
    op.drop_column("magic_links", "source_ref")
    op.drop_column("magic_links", "source_kind")
    # purged links cannot take the NOT NULL back: their rows go (they are past expiry)
    op.execute("DELETE FROM magic_links WHERE token_hash IS NULL")
    op.alter_column(
        "magic_links",
        "token_hash",
        existing_type=sa.String(length=64),
        nullable=False,
        comment="SHA-256; never the token",
        existing_comment="SHA-256; never the token. NULL once purged after expiry (the row stays)",
    )
