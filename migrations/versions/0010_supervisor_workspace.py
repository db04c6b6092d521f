"""API tokens for AI agents and integrations, and saved versions of the rules file

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "label",
            sa.String(length=80),
            nullable=False,
            comment="what it is for, e.g. the AI worker",
        ),
        sa.Column(
            "token_hash", sa.String(length=64), nullable=False, comment="SHA-256; never the token"
        ),
        sa.Column(
            "prefix",
            sa.String(length=16),
            nullable=False,
            comment="the token's first characters, to tell tokens apart",
        ),
        sa.Column("issued_by", sa.BigInteger(), nullable=True, comment="NULL: issued from the CLI"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="NULL: until revoked",
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_api_tokens_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issued_by"],
            ["agents.id"],
            name=op.f("fk_api_tokens_issued_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index("ix_api_tokens_agent_id", "api_tokens", ["agent_id"])

    op.create_table(
        "rules_versions",
        sa.Column(
            "id", sa.BigInteger(), sa.Identity(), nullable=False, comment="the version number"
        ),
        sa.Column("text", sa.Text(), nullable=False, comment="the TOML as saved"),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("saved_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "note",
            sa.String(length=300),
            server_default="",
            nullable=False,
            comment="why it changed",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["saved_by"],
            ["agents.id"],
            name=op.f("fk_rules_versions_saved_by_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules_versions")),
    )


def downgrade() -> None:
    op.drop_table("rules_versions")
    op.drop_index("ix_api_tokens_agent_id", table_name="api_tokens")
    op.drop_table("api_tokens")
