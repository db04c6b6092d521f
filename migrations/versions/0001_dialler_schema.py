"""dialler schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 18:35:01.824315
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The audit log is append-only and opt-outs are never undone automatically: the database
# itself refuses the statements that would break that, whoever issues them.
APPEND_ONLY_FUNCTION = """
CREATE FUNCTION reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME;
END;
$$
"""
APPEND_ONLY_TRIGGERS = {
    "audit_log": "BEFORE UPDATE OR DELETE",
    "suppressions": "BEFORE UPDATE OR DELETE",
}


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "queue", sa.String(length=16), nullable=True, comment="the one queue this agent works"
        ),
        sa.Column(
            "password_hash", sa.Text(), nullable=True, comment="Argon2id; NULL for AI agents"
        ),
        sa.Column("is_ai", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "queue IN ('unsigned', 'outstanding', 'callback')", name=op.f("ck_agents_queue")
        ),
        sa.CheckConstraint("role IN ('agent', 'supervisor', 'admin')", name=op.f("ck_agents_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("email", name=op.f("uq_agents_email")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "actor_type",
            sa.String(length=16),
            nullable=False,
            comment="agent, system, workflow, claimant",
        ),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_actor", "audit_log", ["actor_type", "actor_id", "at"], unique=False
    )
    op.create_index(
        "ix_audit_log_subject", "audit_log", ["subject_type", "subject_id", "at"], unique=False
    )
    op.create_table(
        "cdc_dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("raw_payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replay_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cdc_dead_letters")),
    )
    op.create_index(
        "ix_cdc_dead_letters_pending",
        "cdc_dead_letters",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("replayed_at IS NULL"),
    )
    op.create_table(
        "cdc_offsets",
        sa.Column("source", sa.String(length=32), nullable=False, comment="binlog or sqs"),
        sa.Column("position", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("events_applied", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_cdc_offsets")),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column(
            "reason",
            sa.String(length=32),
            nullable=False,
            comment="sms_stop, do_not_call, list, ...",
        ),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "user_id IS NOT NULL OR phone_number IS NOT NULL",
            name=op.f("ck_suppressions_has_subject"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    op.create_index("ix_suppressions_phone_number", "suppressions", ["phone_number"], unique=False)
    op.create_index("ix_suppressions_user_id", "suppressions", ["user_id"], unique=False)
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "token_hash", sa.String(length=64), nullable=False, comment="SHA-256 of the cookie"
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "expires_at", sa.DateTime(timezone=True), nullable=False, comment="absolute lifetime"
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_sessions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agent_sessions_token_hash")),
    )
    op.create_index("ix_agent_sessions_agent_id", "agent_sessions", ["agent_id"], unique=False)
    op.create_table(
        "agent_state_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True, comment="why paused"),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.CheckConstraint(
            "state IN ('ready', 'paused', 'on_call', 'wrap_up', 'offline')",
            name=op.f("ck_agent_state_changes_state"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_state_changes_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_state_changes")),
    )
    op.create_index(
        "ix_agent_state_changes_agent_id_at",
        "agent_state_changes",
        ["agent_id", "at"],
        unique=False,
    )
    op.create_table(
        "call_tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="replica users.id"),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column("queue", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Numeric(precision=10, scale=3), nullable=False),
        sa.Column(
            "score_breakdown",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before_reason", sa.String(length=200), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.BigInteger(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "version",
            sa.BigInteger(),
            nullable=False,
            comment="monotonic per workflow: an older write never overwrites a newer one",
        ),
        sa.Column(
            "route_to_people_only", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "queue IN ('unsigned', 'outstanding', 'callback')", name=op.f("ck_call_tasks_queue")
        ),
        sa.CheckConstraint(
            "status IN ('ready', 'claimed', 'withdrawn', 'completed')",
            name=op.f("ck_call_tasks_status"),
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by"],
            ["agents.id"],
            name=op.f("fk_call_tasks_claimed_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_tasks")),
        sa.UniqueConstraint("user_id", name=op.f("uq_call_tasks_user_id")),
    )
    op.create_index(
        "ix_call_tasks_claimed_by",
        "call_tasks",
        ["claimed_by"],
        unique=False,
        postgresql_where=sa.text("claimed_by IS NOT NULL"),
    )
    op.create_index(
        "ix_call_tasks_ready_queue_score",
        "call_tasks",
        ["queue", sa.literal_column("score DESC"), "not_before"],
        unique=False,
        postgresql_where=sa.text("status = 'ready'"),
    )
    op.create_table(
        "callbacks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "owner_agent_id",
            sa.BigInteger(),
            nullable=True,
            comment="NULL: the shared callback pool",
        ),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'cancelled')", name=op.f("ck_callbacks_status")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_callbacks_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_agent_id"],
            ["agents.id"],
            name=op.f("fk_callbacks_owner_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index(
        "ix_callbacks_pending_scheduled_for",
        "callbacks",
        ["scheduled_for"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_callbacks_user_id", "callbacks", ["user_id"], unique=False)
    op.create_table(
        "magic_links",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "token_hash", sa.String(length=64), nullable=False, comment="SHA-256; never the token"
        ),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clicks", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("channel IN ('sms', 'email')", name=op.f("ck_magic_links_channel")),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_magic_links_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_magic_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_magic_links_token_hash")),
    )
    op.create_index("ix_magic_links_user_id", "magic_links", ["user_id"], unique=False)
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "user_id", sa.BigInteger(), nullable=True, comment="NULL when the sender is unknown"
        ),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("from_number", sa.String(length=20), nullable=False),
        sa.Column("to_number", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_sms_messages_direction")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_sms_messages_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("provider_sid", name=op.f("uq_sms_messages_provider_sid")),
    )
    op.create_index(
        "ix_sms_messages_unread",
        "sms_messages",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("direction = 'inbound' AND read_at IS NULL"),
    )
    op.create_index(
        "ix_sms_messages_user_id_created_at",
        "sms_messages",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("queue", sa.String(length=16), nullable=True),
        sa.Column("provider", sa.String(length=16), nullable=False, comment="twilio or simulated"),
        sa.Column("provider_call_sid", sa.String(length=64), nullable=True),
        sa.Column("to_number", sa.String(length=20), nullable=False),
        sa.Column("from_number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="initiated", nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("abandoned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("recording_sid", sa.String(length=64), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("recording_duration_seconds", sa.Integer(), nullable=True),
        sa.Column(
            "recording_notice_played", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.CheckConstraint(
            "queue IN ('unsigned', 'outstanding', 'callback')", name=op.f("ck_calls_queue")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_calls_agent_id_agents"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["call_tasks.id"],
            name=op.f("fk_calls_task_id_call_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("provider_call_sid", name=op.f("uq_calls_provider_call_sid")),
    )
    op.create_index(
        "ix_calls_agent_id_started_at", "calls", ["agent_id", "started_at"], unique=False
    )
    op.create_index(
        "ix_calls_to_number_started_at", "calls", ["to_number", "started_at"], unique=False
    )
    op.create_index("ix_calls_user_id_started_at", "calls", ["user_id", "started_at"], unique=False)

    op.execute(APPEND_ONLY_FUNCTION)
    for table, when in APPEND_ONLY_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {table}_append_only {when} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION reject_change()"
        )


def downgrade() -> None:
    for table in APPEND_ONLY_TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.execute("DROP FUNCTION reject_change()")
    op.drop_index("ix_calls_user_id_started_at", table_name="calls")
    op.drop_index("ix_calls_to_number_started_at", table_name="calls")
    op.drop_index("ix_calls_agent_id_started_at", table_name="calls")
    op.drop_table("calls")
    op.drop_index("ix_sms_messages_user_id_created_at", table_name="sms_messages")
    op.drop_index(
        "ix_sms_messages_unread",
        table_name="sms_messages",
        postgresql_where=sa.text("direction = 'inbound' AND read_at IS NULL"),
    )
    op.drop_table("sms_messages")
    op.drop_index("ix_magic_links_user_id", table_name="magic_links")
    op.drop_table("magic_links")
    op.drop_index("ix_callbacks_user_id", table_name="callbacks")
    op.drop_index(
        "ix_callbacks_pending_scheduled_for",
        table_name="callbacks",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("callbacks")
    op.drop_index(
        "ix_call_tasks_ready_queue_score",
        table_name="call_tasks",
        postgresql_where=sa.text("status = 'ready'"),
    )
    op.drop_index(
        "ix_call_tasks_claimed_by",
        table_name="call_tasks",
        postgresql_where=sa.text("claimed_by IS NOT NULL"),
    )
    op.drop_table("call_tasks")
    op.drop_index("ix_agent_state_changes_agent_id_at", table_name="agent_state_changes")
    op.drop_table("agent_state_changes")
    op.drop_index("ix_agent_sessions_agent_id", table_name="agent_sessions")
    op.drop_table("agent_sessions")
    op.drop_index("ix_suppressions_user_id", table_name="suppressions")
    op.drop_index("ix_suppressions_phone_number", table_name="suppressions")
    op.drop_table("suppressions")
    op.drop_table("cdc_offsets")
    op.drop_index(
        "ix_cdc_dead_letters_pending",
        table_name="cdc_dead_letters",
        postgresql_where=sa.text("replayed_at IS NULL"),
    )
    op.drop_table("cdc_dead_letters")
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("agents")
