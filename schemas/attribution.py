"""Attribution (issue 11): which contact a magic link came from, what happened to the link,
and which contact a signature or a completed requirement is credited to.

The rules are in `domain.attribution`; the tables in `schemas.dialler_db` (magic_links'
source columns, `magic_link_events`, `conversions`); the funnel in `services.funnel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ContactKind(StrEnum):
    """A contact with a claimant that a link or a conversion can be credited to."""

    CALL = "call"  # calls.id
    SMS = "sms"  # sms_messages.id of an outbound message (or the thread's latest message)
    AI = "ai"  # the AI activity's id (the AI-agents issue)


class LinkEvent(StrEnum):
    SENT = "sent"
    OPENED = "opened"  # the landing page was shown (GET /m/<token>)
    USED = "used"  # the claimant confirmed and was handed to the main app


class ConversionKind(StrEnum):
    SIGNED = "signed"  # users.current_signature_file_id became set
    DOCUMENTS = "documents"  # a requirement became RECEIVED or APPROVED


class FunnelGrouping(StrEnum):
    TOTAL = "total"
    AGENT = "agent"
    QUEUE = "queue"
    LENDER = "lender"
    CHANNEL = "channel"


@dataclass(frozen=True)
class LinkSource:
    """The contact a link was sent from."""

    kind: ContactKind
    ref: str  # calls.id / sms_messages.id as text, or the AI activity's id


@dataclass(frozen=True)
class FunnelRow:
    """One group of the funnel (`services.funnel.funnel` says what each stage counts)."""

    group: str
    called: int = 0
    reached: int = 0
    link_sent: int = 0
    link_opened: int = 0
    link_used: int = 0
    signed: int = 0
    documents_received: int = 0


@dataclass(frozen=True)
class FunnelReport:
    start: datetime  # inclusive
    end: datetime  # exclusive
    grouping: FunnelGrouping
    rows: list[FunnelRow]
