"""Enumerations shared by the database, the domain rules and the web app."""

from enum import StrEnum


class Queue(StrEnum):
    """The three specialised call queues of the seed."""

    UNSIGNED = "unsigned"
    OUTSTANDING = "outstanding"
    CALLBACK = "callback"


class AgentRole(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class AgentState(StrEnum):
    READY = "ready"
    PAUSED = "paused"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    OFFLINE = "offline"


class TaskStatus(StrEnum):
    READY = "ready"
    CLAIMED = "claimed"
    WITHDRAWN = "withdrawn"
    COMPLETED = "completed"


class CallbackStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ConsentChannel(StrEnum):
    """What a claimant can consent to being contacted by (PECR regulations 19, 21A, 22)."""

    LIVE_CALL = "live_call"  # a person calls (regulation 21A for claims management)
    AUTOMATED_CALL = "automated_call"  # a recorded or AI voice (regulation 19)
    SMS = "sms"
    EMAIL = "email"


class LinkChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class RequirementStatus(StrEnum):
    """Statuses of `claim_requirements.status` in the main app."""

    PENDING = "PENDING"
    RECEIVED = "RECEIVED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    WAIVED = "WAIVED"


class ClaimStatus(StrEnum):
    """Statuses of `claims.status` in the main app."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    COMPLETE = "complete"


class UserStatus(StrEnum):
    """Statuses of `users.status` in the main app."""

    ACTIVE = "active"
    PENDING = "pending"
    INACTIVE = "inactive"


class RecordingStore(StrEnum):
    """Where a call's recording is kept (`calls.recording_store`)."""

    TWILIO = "twilio"  # at the provider, by its RecordingSid
    S3 = "s3"  # a copy in the recordings bucket, by its object key
    LOCAL = "local"  # a file under RECORDINGS_DIR (the simulated telephony, in development)
