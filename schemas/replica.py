"""The main app's tables as the dialler reads them from the MySQL/MariaDB replica.

The dialler never writes to the replica. These definitions exist so the dialler can build
typed queries, and so development and tests can create a local replica with demo data.
Column names follow the main (Laravel) app.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    func,
)
from sqlalchemy.dialects.mysql import BIGINT

metadata = MetaData()

_ID = BIGINT(unsigned=True)


def _timestamps() -> tuple[Column[object], Column[object]]:
    return (
        Column("created_at", DateTime, nullable=False, server_default=func.now()),
        Column(
            "updated_at",
            DateTime,
            nullable=False,
            server_default=func.now(),
            # Laravel maintains updated_at; the catch-up sync reads it as a watermark.
            onupdate=func.now(),
        ),
    )


lenders = Table(
    "lenders",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False, unique=True),
    *_timestamps(),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

users = Table(
    "users",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("first_name", String(80), nullable=False),
    Column("last_name", String(80), nullable=False),
    Column("email", String(254), nullable=True),
    Column("phone_number", String(20), nullable=True, comment="E.164, +447..."),
    Column("date_of_birth", Date, nullable=True),
    Column("postcode", String(10), nullable=True),
    Column("current_signature_file_id", BigInteger, nullable=True),
    Column("is_enabled", Boolean, nullable=False, default=True),
    Column("status", String(20), nullable=False, default="active"),
    Column("is_vulnerable", Boolean, nullable=False, default=False),
    Column("preferred_call_start", Time, nullable=True, comment="claimant's preferred window"),
    Column("preferred_call_end", Time, nullable=True),
    *_timestamps(),
    Index("ix_users_updated_at", "updated_at"),
    Index("ix_users_phone_number", "phone_number"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

claims = Table(
    "claims",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("user_id", _ID, ForeignKey("users.id"), nullable=False),
    Column("lender_id", _ID, ForeignKey("lenders.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("estimated_value", Numeric(10, 2), nullable=True, comment="GBP"),
    *_timestamps(),
    Index("ix_claims_user_id_status", "user_id", "status"),
    Index("ix_claims_updated_at", "updated_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

claim_requirements = Table(
    "claim_requirements",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("claim_id", _ID, ForeignKey("claims.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    *_timestamps(),
    Index("ix_claim_requirements_claim_id_status", "claim_id", "status"),
    Index("ix_claim_requirements_updated_at", "updated_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# Marketing consent as the main app records it: one row per grant, `withdrawn_at` set when
# the claimant withdraws it. `channel` is live_call, automated_call, sms or email.
consents = Table(
    "consents",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("user_id", _ID, ForeignKey("users.id"), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("source", String(40), nullable=False, comment="web_form, signup, phone, paper"),
    Column("wording", String(500), nullable=False, comment="the statement agreed to"),
    Column("evidence_ref", String(200), nullable=True, comment="form id, recording, scan"),
    Column("given_at", DateTime, nullable=False),
    Column("withdrawn_at", DateTime, nullable=True),
    *_timestamps(),
    Index("ix_consents_user_id", "user_id"),
    Index("ix_consents_updated_at", "updated_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
