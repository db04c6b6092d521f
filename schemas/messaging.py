"""Inputs and outputs of the messaging activities (SMS, magic links).

The caller (a workflow or the web app) loads the phone number or email address from the
replica and passes it in; the activities use it to deliver and never copy it into the audit
log. Nothing here ever carries a magic-link token: it exists only inside the activity that
creates and sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.attribution import ContactKind
from schemas.enums import LinkChannel


@dataclass
class SendSms:
    user_id: int
    to_number: str  # E.164, e.g. +447700900123
    body: str
    agent_id: int | None = None  # the agent who sent it; None for automated messages


@dataclass
class SmsSent:
    message_id: int  # sms_messages.id
    provider_sid: str  # Twilio's message SID ("SMsim..." when simulated)
    status: str  # the provider's status at send time (queued, accepted, sent, ...)


@dataclass
class CreateMagicLink:
    user_id: int
    channel: LinkChannel
    purpose: str  # signature, documents, callback, ... (max 32 characters)
    created_by: int | None = None  # agents.id; None when a workflow sends it
    to_number: str | None = None  # required for channel=sms
    to_email: str | None = None  # required for channel=email
    first_name: str | None = None  # for the greeting only
    # the contact the link is sent from (attribution): a call, an SMS, an AI activity
    source_kind: ContactKind | None = None
    source_ref: str | None = None  # calls.id / sms_messages.id as text, or the AI activity id


@dataclass
class MagicLinkCreated:
    link_id: int
    expires_at: datetime
    delivered_via: LinkChannel
    provider_id: str | None  # SMS SID, SendGrid message id or outbox file name
