"""Tables of the dialler's own PostgreSQL database.

The migrations in `migrations/versions` create exactly these tables; a test compares the
two so they cannot drift. Enumerated columns are text with CHECK constraints (cheap to
extend in a migration, readable in psql).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from schemas.enums import (
    AgentRole,
    AgentState,
    CallbackStatus,
    ConsentChannel,
    LinkChannel,
    MessageDirection,
    Queue,
    TaskStatus,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _one_of(column: str, values: type[StrEnum], name: str | None = None) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


agents = Table(
    "agents",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("display_name", String(120), nullable=False),
    Column("role", String(16), nullable=False),
    Column("queue", String(16), nullable=True, comment="the one queue this agent works"),
    Column("password_hash", Text, nullable=True, comment="Argon2id; NULL for AI agents"),
    Column("is_ai", Boolean, nullable=False, server_default=text("false")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _one_of("role", AgentRole),
    _one_of("queue", Queue),
)

agent_sessions = Table(
    "agent_sessions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True, comment="SHA-256 of the cookie"),
    _created_at(),
    Column("last_seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False, comment="absolute lifetime"),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("ip_address", String(45), nullable=True),
    Column("user_agent", String(300), nullable=True),
    Index("ix_agent_sessions_agent_id", "agent_id"),
)

agent_state_changes = Table(
    "agent_state_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),
    Column("reason", String(200), nullable=True, comment="why paused"),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _one_of("state", AgentState),
    Index("ix_agent_state_changes_agent_id_at", "agent_id", "at"),
)

# The claimable queue: a projection of the outreach workflows, one row per claimant.
call_tasks = Table(
    "call_tasks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False, unique=True, comment="replica users.id"),
    Column("workflow_id", String(100), nullable=False),
    Column("queue", String(16), nullable=False),
    Column("score", Numeric(10, 3), nullable=False),
    Column("score_breakdown", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("not_before", DateTime(timezone=True), nullable=False),
    Column("not_before_reason", String(200), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("claimed_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column(
        "version",
        BigInteger,
        nullable=False,
        comment="monotonic per workflow: an older write never overwrites a newer one",
    ),
    Column("route_to_people_only", Boolean, nullable=False, server_default=text("false")),
    Column(
        "owner_agent_id",
        BigInteger,
        ForeignKey("agents.id", ondelete="SET NULL"),
        nullable=True,
        comment="a personal callback's owner: only they are offered it until held_until",
    ),
    Column("held_until", DateTime(timezone=True), nullable=True),
    _created_at(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _one_of("queue", Queue),
    _one_of("status", TaskStatus),
    # claim-next: WHERE status='ready' AND queue=$1 AND not_before<=now() ORDER BY score DESC
    Index(
        "ix_call_tasks_ready_queue_score",
        "queue",
        text("score DESC"),
        "not_before",
        postgresql_where=text("status = 'ready'"),
    ),
    Index(
        "ix_call_tasks_claimed_by", "claimed_by", postgresql_where=text("claimed_by IS NOT NULL")
    ),
    # claim-next first looks for the agent's own personal callbacks
    Index(
        "ix_call_tasks_ready_owner",
        "owner_agent_id",
        postgresql_where=text("status = 'ready' AND owner_agent_id IS NOT NULL"),
    ),
)

calls = Table(
    "calls",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("task_id", BigInteger, ForeignKey("call_tasks.id", ondelete="SET NULL"), nullable=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("queue", String(16), nullable=True),
    Column("provider", String(16), nullable=False, comment="twilio or simulated"),
    Column("provider_call_sid", String(64), nullable=True, unique=True),
    Column("to_number", String(20), nullable=False),
    Column("phone_key", String(64), nullable=True, comment="SHA-256 of to_number: per-number caps"),
    Column("from_number", String(20), nullable=True),
    Column("status", String(20), nullable=False, server_default="initiated"),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("duration_seconds", Integer, nullable=True),
    Column("abandoned", Boolean, nullable=False, server_default=text("false")),
    Column("answered_by", String(32), nullable=True, comment="Twilio AnsweredBy: human, machine_*"),
    Column("agent_left_at", DateTime(timezone=True), nullable=True, comment="agent's leg ended"),
    Column(
        "agent_seconds",
        Integer,
        nullable=True,
        comment="how long the agent's leg was connected (bridged) to the claimant",
    ),
    Column("disposition", String(32), nullable=True),
    Column("notes", Text, nullable=True),
    Column("recording_sid", String(64), nullable=True),
    Column("recording_url", Text, nullable=True),
    Column("recording_duration_seconds", Integer, nullable=True),
    Column("recording_notice_played", Boolean, nullable=False, server_default=text("false")),
    Column(
        "outcome_key",
        String(96),
        nullable=True,
        unique=True,
        comment="the claim whose outcome this is: a retried outcome is written once",
    ),
    _one_of("queue", Queue),
    Index("ix_calls_user_id_started_at", "user_id", "started_at"),
    Index("ix_calls_to_number_started_at", "to_number", "started_at"),
    Index("ix_calls_phone_key_started_at", "phone_key", "started_at"),
    Index("ix_calls_agent_id_started_at", "agent_id", "started_at"),
)

callbacks = Table(
    "callbacks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column(
        "owner_agent_id",
        BigInteger,
        ForeignKey("agents.id", ondelete="SET NULL"),
        nullable=True,
        comment="NULL: the shared callback pool",
    ),
    Column("scheduled_for", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default=CallbackStatus.PENDING.value),
    Column("notes", Text, nullable=True),
    Column("created_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    _created_at(),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    _one_of("status", CallbackStatus),
    Index(
        "ix_callbacks_pending_scheduled_for",
        "scheduled_for",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_callbacks_user_id", "user_id"),
)

claimant_notes = Table(
    "claimant_notes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("body", Text, nullable=False),
    _created_at(),
    Index("ix_claimant_notes_user_id_created_at", "user_id", "created_at"),
)

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=True, comment="NULL when the sender is unknown"),
    Column("direction", String(8), nullable=False),
    Column("provider_sid", String(64), nullable=True, unique=True),
    Column("from_number", String(20), nullable=False),
    Column("to_number", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("read_at", DateTime(timezone=True), nullable=True),
    _created_at(),
    _one_of("direction", MessageDirection),
    Index("ix_sms_messages_user_id_created_at", "user_id", "created_at"),
    Index(
        "ix_sms_messages_unread",
        "user_id",
        postgresql_where=text("direction = 'inbound' AND read_at IS NULL"),
    ),
)

magic_links = Table(
    "magic_links",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column(
        "token_hash", String(64), nullable=False, unique=True, comment="SHA-256; never the token"
    ),
    Column("channel", String(8), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("clicks", Integer, nullable=False, server_default=text("0")),
    Column("last_clicked_at", DateTime(timezone=True), nullable=True),
    _one_of("channel", LinkChannel),
    Index("ix_magic_links_user_id", "user_id"),
)

# Opt-outs are final: rows are only ever added (a trigger forbids DELETE).
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=True),
    Column("phone_number", String(20), nullable=True),
    Column("reason", String(32), nullable=False, comment="sms_stop, do_not_call, list, ..."),
    Column("source", String(64), nullable=False),
    _created_at(),
    CheckConstraint("user_id IS NOT NULL OR phone_number IS NOT NULL", name="has_subject"),
    Index("ix_suppressions_user_id", "user_id"),
    Index("ix_suppressions_phone_number", "phone_number"),
)

# Append-only: a trigger rejects UPDATE and DELETE (see the migration).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor_type", String(16), nullable=False, comment="agent, system, workflow, claimant"),
    Column("actor_id", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", String(64), nullable=True),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("ip_address", String(45), nullable=True),
    Index("ix_audit_log_subject", "subject_type", "subject_id", "at"),
    Index("ix_audit_log_actor", "actor_type", "actor_id", "at"),
)

cdc_offsets = Table(
    "cdc_offsets",
    metadata,
    Column("source", String(32), primary_key=True, comment="binlog or sqs"),
    Column("position", JSONB, nullable=False),
    Column("events_applied", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

cdc_dead_letters = Table(
    "cdc_dead_letters",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("source", String(32), nullable=False),
    Column("raw_payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("replayed_at", DateTime(timezone=True), nullable=True),
    Column("replay_count", Integer, nullable=False, server_default=text("0")),
    Index(
        "ix_cdc_dead_letters_pending",
        "received_at",
        postgresql_where=text("replayed_at IS NULL"),
    ),
)


# --- compliance (issue 11) ------------------------------------------------------------------
# Each group below has one owner module in `adapters/` (tests/unit/test_layering.py).

# Consent the dialler captured itself ("consent confirmed on this call"); the main app's
# consents are read from the replica. Rows are only added: a withdrawal is a row too.
consent_records = Table(
    "consent_records",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("given", Boolean, nullable=False, comment="false: withdrawn"),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("call_id", BigInteger, ForeignKey("calls.id", ondelete="SET NULL"), nullable=True),
    Column("source", String(64), nullable=False, comment="console, api, ..."),
    Column("wording", Text, nullable=False, comment="what the claimant agreed to, as read"),
    _one_of("channel", ConsentChannel),
    Index("ix_consent_records_user_id_at", "user_id", "at"),
)
