"""Indexes for the supervisors' calls list and audit viewer: newest-first pages and UK-day
ranges over the whole of `calls` and `audit_log`, and the audit log's actions (its filter,
and the list of actions read by a skip scan)

At a million calls, the calls list's first page without a filter took 0.5 s (every row read
and sorted) and 6 ms with ix_calls_started_at_id; the audit viewer's likewise, and its list
of actions 550 ms without ix_audit_log_action_at and 3 ms with it (docs/benchmarks.md).
Built concurrently: the tables are written all day.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_calls_started_at_id", "calls", ["started_at", "id"]),
    ("ix_audit_log_at_id", "audit_log", ["at", "id"]),
    ("ix_audit_log_action_at", "audit_log", ["action", "at"]),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns in INDEXES:
            op.create_index(name, table, columns, postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True)
