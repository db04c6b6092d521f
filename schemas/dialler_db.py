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
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from schemas.attribution import ContactKind, ConversionKind, LinkEvent
from schemas.enums import (
    AgentRole,
    AgentState,
    CallbackStatus,
    ConsentChannel,
    LinkChannel,
    MessageDirection,
    Queue,
    RecordingStore,
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
    # each agent's changes in order, with their state: time in each state from the index
    # alone (analytics), and an agent's latest state (migration 0012)
    Index(
        "ix_agent_state_changes_agent_id_at_id",
        "agent_id",
        "at",
        "id",
        postgresql_include=["state"],
    ),
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
    Column(
        "ai_routed",
        Boolean,
        nullable=False,
        server_default=text("false"),
        comment="the AI's contact to make: people are offered it only once it waits too long",
    ),
    Column(
        "score_arm",
        String(16),
        nullable=True,
        comment="a live split's arm whose rules scored the task: control or candidate",
    ),
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
    # --- recordings and their retention (issue 11, migration 0008; owner adapters/call_log.py)
    Column(
        "recording_store",
        String(8),
        nullable=True,
        comment="where the recording is kept: twilio, s3 or local (NULL: nowhere)",
    ),
    Column(
        "recording_key",
        Text,
        nullable=True,
        comment="its key there: the RecordingSid, the S3 object key, the file under RECORDINGS_DIR",
    ),
    Column(
        "recording_deleted_at",
        DateTime(timezone=True),
        nullable=True,
        comment="the recording and transcript were deleted (end of retention)",
    ),
    Column("transcript", Text, nullable=True, comment="deleted with the recording"),
    Column(
        "direction",
        String(8),
        nullable=False,
        server_default="outbound",
        comment="outbound (we called) or inbound (the claimant rang back)",
    ),
    Column("score_arm", String(16), nullable=True, comment="the live split's arm when called"),
    _one_of("recording_store", RecordingStore),
    Index(
        "ix_calls_recording_retention",
        "started_at",
        postgresql_where=text(
            "recording_deleted_at IS NULL AND (recording_sid IS NOT NULL"
            " OR recording_store IS NOT NULL OR transcript IS NOT NULL)"
        ),
    ),
    # ---
    _one_of("queue", Queue),
    Index("ix_calls_user_id_started_at", "user_id", "started_at"),
    Index("ix_calls_to_number_started_at", "to_number", "started_at"),
    Index("ix_calls_phone_key_started_at", "phone_key", "started_at"),
    Index("ix_calls_agent_id_started_at", "agent_id", "started_at"),
    Index("ix_calls_started_at_id", "started_at", "id"),  # the calls list, newest first
    # a range of calls with every column the analytics count: read from the index alone
    # (services.analytics, call_log.call_breakdown; migration 0012)
    Index(
        "ix_calls_started_at_figures",
        "started_at",
        postgresql_include=[
            "agent_id",
            "queue",
            "disposition",
            "user_id",
            "provider",
            "answered_at",
            "answered_by",
            "agent_seconds",
        ],
    ),
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
        "token_hash",
        String(64),
        nullable=True,
        unique=True,
        comment="SHA-256; never the token. NULL once purged after expiry (the row stays)",
    ),
    Column("channel", String(8), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("created_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    Column("clicks", Integer, nullable=False, server_default=text("0")),
    Column("last_clicked_at", DateTime(timezone=True), nullable=True),
    # --- attribution (issue 11, migration 0009; owner adapters/magic_links.py) ---
    Column("source_kind", String(8), nullable=True, comment="the contact it was sent from"),
    Column(
        "source_ref",
        String(64),
        nullable=True,
        comment="calls.id or sms_messages.id as text, or the AI activity's id",
    ),
    _one_of("source_kind", ContactKind),
    CheckConstraint("(source_kind IS NULL) = (source_ref IS NULL)", name="source_complete"),
    Index("ix_magic_links_created_at", "created_at"),
    # ---
    _one_of("channel", LinkChannel),
    Index("ix_magic_links_user_id", "user_id"),
)

# Opt-outs are final: rows are only ever added (a trigger forbids DELETE). An imported one
# (reason 'list') ends only by a dated, audited row in `suppression_removals`.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=True),
    Column("phone_number", String(20), nullable=True),
    Column("reason", String(32), nullable=False, comment="sms_stop, do_not_call, list, ..."),
    Column("source", String(64), nullable=False),
    _created_at(),
    Column("email", String(254), nullable=True, comment="lower-case; imported lists"),
    Column("note", Text, nullable=True, comment="an imported list's reason, as written"),
    CheckConstraint(
        "user_id IS NOT NULL OR phone_number IS NOT NULL OR email IS NOT NULL", name="has_subject"
    ),
    Index("ix_suppressions_user_id", "user_id"),
    Index("ix_suppressions_phone_number", "phone_number"),
    Index("ix_suppressions_email", "email"),
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
    Index("ix_audit_log_at_id", "at", "id"),  # the audit viewer, newest first
    Index("ix_audit_log_action_at", "action", "at"),  # its action filter and list
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


# --- TPS/CTPS lists (adapters/tps.py) ---------------------------------------------------------
# A list in force is the versions of it not retired: the last full import (`replace`) and the
# imports added to it since (`add`, each holding only numbers the list did not have). A
# version becomes visible when its import commits; a replace retires the list's versions in
# the same transaction, so a reader sees the old list or the new one, never a mix.
tps_list_versions = Table(
    "tps_list_versions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("list", String(4), nullable=False, comment="tps or ctps"),
    Column("mode", String(8), nullable=False, comment="replace: the whole list; add: additions"),
    Column("source", String(255), nullable=False, comment="the imported file's name"),
    Column("numbers", BigInteger, nullable=False, comment="its rows in tps_numbers"),
    Column("rejected_lines", BigInteger, nullable=False, server_default=text("0")),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True), nullable=True, comment="a replace superseded it"),
    Column("numbers_dropped_at", DateTime(timezone=True), nullable=True),
    Column(
        "screened_before",
        JSONB,
        nullable=False,
        comment="the version ids in force (both lists) before this import",
    ),
    Column("screened_after", JSONB, nullable=False, comment="... and after it"),
    Column(
        "rescreened_at",
        DateTime(timezone=True),
        nullable=True,
        comment="the claimants whose screening it changed were sent a refresh",
    ),
    CheckConstraint("list IN ('tps', 'ctps')", name="list"),
    CheckConstraint("mode IN ('replace', 'add')", name="mode"),
    Index("ix_tps_list_versions_list", "list", postgresql_where=text("retired_at IS NULL")),
)

# One row per number per version; no foreign key (a check per row of a 20-million-row import).
tps_numbers = Table(
    "tps_numbers",
    metadata,
    Column("number", BigInteger, primary_key=True, comment="E.164 digits without the +"),
    Column("version_id", BigInteger, primary_key=True, comment="tps_list_versions.id"),
)


# --- compliance: suppression import (issue 11, part A) --------------------------------------
# Owner: adapters/suppressions.py. The dated, audited end of an imported suppression; rows
# are only added (a trigger forbids UPDATE, DELETE and TRUNCATE), one per suppression.
suppression_removals = Table(
    "suppression_removals",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "suppression_id",
        BigInteger,
        ForeignKey("suppressions.id"),
        nullable=False,
        unique=True,
        comment="an imported suppression (reason 'list'); removed once",
    ),
    Column("effective_at", DateTime(timezone=True), nullable=False, comment="not in the future"),
    Column("removed_by", String(120), nullable=False, comment="the operator who removed it"),
    Column("reason", Text, nullable=False, comment="why, as the operator wrote it"),
    _created_at(),
)


# --- compliance: attribution (issue 11, call -> magic link -> signed) ------------------------
# Owners: adapters/magic_links.py (magic_link_events), adapters/conversions.py (conversions).
# Kept for compliance.recording_retention_months, then deleted by the daily clean-up.
magic_link_events = Table(
    "magic_link_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("link_id", BigInteger, ForeignKey("magic_links.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(8), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _one_of("event", LinkEvent),
    Index("ix_magic_link_events_link_id_event", "link_id", "event"),
)

# One row per conversion seen by CDC, credited to the last contact within the attribution
# window (compliance.attribution_window) and to the link used, if any. Written once per
# change event (event_id) and once per subject (a claimant's signature, a requirement).
conversions = Table(
    "conversions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", String(200), nullable=False, unique=True, comment="the CDC change event"),
    Column(
        "subject_key",
        String(64),
        nullable=False,
        unique=True,
        comment="signature:<user id> or requirement:<requirement id>: counted once",
    ),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("claim_id", BigInteger, nullable=True),
    Column("requirement_id", BigInteger, nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False, comment="the replica's commit"),
    Column("contact_kind", String(8), nullable=True, comment="NULL: no contact in the window"),
    Column("contact_ref", String(64), nullable=True),
    Column("contact_at", DateTime(timezone=True), nullable=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("queue", String(16), nullable=True, comment="the credited call's queue"),
    Column("link_id", BigInteger, ForeignKey("magic_links.id", ondelete="SET NULL"), nullable=True),
    Column("attributed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    _one_of("kind", ConversionKind),
    _one_of("contact_kind", ContactKind),
    _one_of("queue", Queue),
    Index("ix_conversions_occurred_at", "occurred_at"),
)


# --- supervisor workspace (issue 12) ---------------------------------------------------------

# API tokens for AI agents and integrations, issued by a supervisor (or `dialler agents
# token`). Shown once; only the SHA-256 is kept. Owner: adapters/api_tokens.py.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(80), nullable=False, comment="what it is for, e.g. the AI worker"),
    Column(
        "token_hash", String(64), nullable=False, unique=True, comment="SHA-256; never the token"
    ),
    Column(
        "prefix",
        String(16),
        nullable=False,
        comment="the token's first characters, to tell tokens apart",
    ),
    Column(
        "issued_by",
        BigInteger,
        ForeignKey("agents.id", ondelete="SET NULL"),
        nullable=True,
        comment="NULL: issued from the CLI",
    ),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=True, comment="NULL: until revoked"),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_api_tokens_agent_id", "agent_id"),
)

# Every saved version of the rules file; the newest is in force. Workers and the web app
# read the newest (falling back to the file in the repository when there is none) and pick
# up a new one without a restart. Owner: adapters/rules_versions.py.
rules_versions = Table(
    "rules_versions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True, comment="the version number"),
    Column("text", Text, nullable=False, comment="the TOML as saved"),
    Column("sha256", String(64), nullable=False),
    Column("saved_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("note", String(300), nullable=False, server_default="", comment="why it changed"),
    _created_at(),
)


# --- analytics: the counts of settled days (issue 12, migration 0012) --------------------------
# The supervisor analytics count a settled UK day (`domain.analytics.settled_days`) once and
# keep it, so a 90-day report reads the kept rows and counts only the last days live. A
# day's marker row says it has been counted (a day with nothing to count has one too).

# Owner: adapters/call_log.py. The calls started on a day, by the groups the analytics show.
call_days = Table(
    "call_days",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("day", Date, nullable=False, comment="the UK day the calls started"),
    Column(
        "grouping",
        SmallInteger,
        nullable=False,
        comment="0: the day's total (its marker), 1: by agent and outcome, "
        "2: by queue and outcome, 3: by the hour of the day",
    ),
    Column("agent_id", BigInteger, nullable=True),
    Column("queue", String(16), nullable=True),
    Column("disposition", String(32), nullable=True),
    Column("hour", SmallInteger, nullable=True, comment="UK hour of the day, 0-23"),
    Column("calls", Integer, nullable=False),
    Column("reached", Integer, nullable=False),
    Column("talk_seconds", BigInteger, nullable=False),
    Index("ix_call_days_day", "day"),
)

# Owner: adapters/agent_store.py. Each agent's time in each state within a day.
agent_state_days = Table(
    "agent_state_days",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("day", Date, nullable=False, comment="the UK day"),
    Column(
        "agent_id",
        BigInteger,
        ForeignKey("agents.id", ondelete="CASCADE"),
        nullable=True,
        comment="NULL: the day's marker",
    ),
    Column("state", String(16), nullable=True),
    Column("seconds", Float, nullable=False),
    Index("ix_agent_state_days_day", "day"),
)

# Owner: adapters/magic_links.py. The links sent on a day, by who sent them, how and from
# which contact, with what became of them: kept once every link of the day has expired
# (a link is opened and used only while it is usable, so its figures are final then).
link_days = Table(
    "link_days",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("day", Date, nullable=False, comment="the UK day the links were created"),
    Column("agent_id", BigInteger, nullable=True),
    Column("channel", String(8), nullable=True, comment="NULL: the day's marker"),
    Column("source_kind", String(8), nullable=True),
    Column("queue", String(16), nullable=True, comment="the queue of the call it came from"),
    Column("sent", Integer, nullable=False),
    Column("opened", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    Index("ix_link_days_day", "day"),
)


# --- AI agents (issue 13, migration 0013; owner adapters/ai_conversations.py) ----------------

ai_conversations = Table(
    "ai_conversations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False, comment="replica users.id"),
    Column("agent_id", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("channel", String(8), nullable=False, comment="voice, sms or triage"),
    Column("queue", String(16), nullable=True),
    Column("workflow_id", String(200), nullable=False, unique=True),
    Column("call_id", BigInteger, ForeignKey("calls.id", ondelete="SET NULL"), nullable=True),
    Column("status", String(16), nullable=False, server_default="active"),
    Column("disposition", String(32), nullable=True, comment="the typed outcome it recorded"),
    Column("handoff_reason", String(32), nullable=True),
    Column("summary", Text, nullable=True, comment="for the person who takes over"),
    Column("turns", Integer, nullable=False, server_default=text("0")),
    Column("prompt_tokens", Integer, nullable=False, server_default=text("0")),
    Column("completion_tokens", Integer, nullable=False, server_default=text("0")),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column(
        "transcript_deleted_at",
        DateTime(timezone=True),
        nullable=True,
        comment="the steps' text was deleted (end of the recording retention)",
    ),
    _one_of("queue", Queue),
    Index("ix_ai_conversations_user_id_started_at", "user_id", "started_at"),
    Index("ix_ai_conversations_started_at", "started_at"),
    # the claimant's live SMS conversation, for an inbound text to reach
    Index(
        "ix_ai_conversations_active",
        "user_id",
        postgresql_where=text("status = 'active'"),
    ),
)

ai_steps = Table(
    "ai_steps",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "conversation_id",
        BigInteger,
        ForeignKey("ai_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(16), nullable=False, comment="claimant, assistant, tool or model"),
    Column("text", Text, nullable=True, comment="deleted at the end of retention"),
    Column("tool_name", String(64), nullable=True),
    Column("detail", JSONB, nullable=True, comment="tool arguments and result; refusals"),
    Column("latency_ms", Integer, nullable=True, comment="a model call's"),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    _created_at(),
    Index("ix_ai_steps_conversation_id_id", "conversation_id", "id"),
)


# --- learned rates and live splits (issue 14, migration 0014) ------------------------------------

# Owner: adapters/learned_rates.py. One version per nightly run; the scorer reads the newest.
rate_versions = Table(
    "rate_versions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("computed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("reached", Integer, nullable=False),
    Column("conversions", Integer, nullable=False),
    Column("seconds", Float, nullable=False, comment="how long the run took"),
)

# Owner: adapters/learned_rates.py. A rate per segment of a dimension, with its interval and
# the rate shrunk towards the overall one (small segments say little).
learned_rates = Table(
    "learned_rates",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "version_id",
        BigInteger,
        ForeignKey("rate_versions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("dimension", String(32), nullable=False, comment="region, lender, queue, hour, ..."),
    Column("segment", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("reached", Integer, nullable=False),
    Column("conversions", Integer, nullable=False),
    Column("contact_rate", Float, nullable=False),
    Column("contact_low", Float, nullable=False),
    Column("contact_high", Float, nullable=False),
    Column("conversion_rate", Float, nullable=False),
    Column("conversion_low", Float, nullable=False),
    Column("conversion_high", Float, nullable=False),
    Column("shrunk_contact_rate", Float, nullable=False),
    Column("shrunk_conversion_rate", Float, nullable=False),
    UniqueConstraint("version_id", "dimension", "segment"),
)

# Owner: adapters/scoring_splits.py. A live split: a share of claimants scored by a candidate
# rules version; at most one running (ended_at NULL).
scoring_splits = Table(
    "scoring_splits",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "rules_version_id",
        BigInteger,
        ForeignKey("rules_versions.id", ondelete="RESTRICT"),
        nullable=False,
        comment="the candidate rules",
    ),
    Column("share", Float, nullable=False, comment="of claimants in the candidate arm"),
    Column("note", String(300), nullable=False, server_default=""),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("ended_by", BigInteger, ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    Index(
        "ix_scoring_splits_one_running",
        text("(ended_at IS NULL)"),
        unique=True,
        postgresql_where=text("ended_at IS NULL"),
    ),
)
