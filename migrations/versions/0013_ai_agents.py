"""AI agents (issue 13): their conversations and steps, and tasks routed to the AI

- call_tasks.ai_routed: the routing policy (domain.ai_routing) gave the contact to the AI;
  people's claims skip the task unless the AI leaves it waiting.
- ai_conversations: one per AI contact (an automated call, an SMS conversation, the triage
  of an inbound text), with its outcome, hand-off summary and token counts.
- ai_steps: what was said, each model call (latency, tokens) and each tool call; the text
  falls under the recording retention.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.add_column(
        "call_tasks",
        sa.Column(
            "ai_routed",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="the AI's contact to make: people are offered it only once it waits too long",
        ),
    )
    op.create_table(
        "ai_conversations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, comment="replica users.id"),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False, comment="voice, sms or triage"),
        sa.Column("queue", sa.String(length=16), nullable=True),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column(
            "disposition",
            sa.String(length=32),
            nullable=True,
            comment="the typed outcome it recorded",
        ),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True, comment="for the person who takes over"),
        sa.Column("turns", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "transcript_deleted_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="the steps' text was deleted (end of the recording retention)",
        ),
        sa.CheckConstraint(
            "queue IN ('unsigned', 'outstanding', 'callback')",
            name=op.f("ck_ai_conversations_queue"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_ai_conversations_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_ai_conversations_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_conversations")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_ai_conversations_workflow_id")),
    )
    op.create_index(
        "ix_ai_conversations_user_id_started_at", "ai_conversations", ["user_id", "started_at"]
    )
    op.create_index("ix_ai_conversations_started_at", "ai_conversations", ["started_at"])
    op.create_index(
        "ix_ai_conversations_active",
        "ai_conversations",
        ["user_id"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "ai_steps",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.String(length=16),
            nullable=False,
            comment="claimant, assistant, tool or model",
        ),
        sa.Column("text", sa.Text(), nullable=True, comment="deleted at the end of retention"),
        sa.Column("tool_name", sa.String(length=64), nullable=True),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="tool arguments and result; refusals",
        ),
        sa.Column("latency_ms", sa.Integer(), nullable=True, comment="a model call's"),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["ai_conversations.id"],
            name=op.f("fk_ai_steps_conversation_id_ai_conversations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_steps")),
    )
    op.create_index("ix_ai_steps_conversation_id_id", "ai_steps", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_ai_steps_conversation_id_id", table_name="ai_steps")
    op.drop_table("ai_steps")
    op.drop_index("ix_ai_conversations_active", table_name="ai_conversations")
    op.drop_index("ix_ai_conversations_started_at", table_name="ai_conversations")
    op.drop_index("ix_ai_conversations_user_id_started_at", table_name="ai_conversations")
    op.drop_table("ai_conversations")
    op.drop_column("call_tasks", "ai_routed")
