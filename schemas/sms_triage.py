"""The messages between `SmsTriageWorkflow` and its activities (`activities.ai_triage`), next
to the workflow's own input and result in `schemas.ai` (`TriageInput`, `TriageResult`).

Ids, the intent, a callback time and short reasons only: the message's text, the claimant's
name, number and claim details stay in the databases, read by the activities themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.ai import ClassifyMessage, TriageDecision, TriageIntent


@dataclass
class ClassifyAttempt:
    """One model call classifying the message. The first attempt opens the triage's
    conversation record; a second one (after output that failed its schema) carries its id
    and says what was wrong."""

    message: ClassifyMessage
    conversation_id: int | None = None
    correction: str | None = None


@dataclass
class TriageClassified:
    conversation_id: int
    decision: TriageDecision = field(
        default_factory=lambda: TriageDecision(intent=TriageIntent.OTHER)
    )
    # the output failed its schema, and why (the workflow may ask once more)
    malformed: str | None = None
    # the model was not asked, or could not answer (a STOP-style keyword, an opted-out or
    # vulnerable claimant, a refusal, a model outage): why a person reads it
    for_person: str | None = None


@dataclass
class BookTriageCallback:
    conversation_id: int
    message_id: int
    user_id: int
    at: datetime


@dataclass
class AnswerDocumentsQuestion:
    conversation_id: int
    message_id: int
    user_id: int


@dataclass
class LeaveForPerson:
    conversation_id: int
    message_id: int
    user_id: int
    intent: TriageIntent
    reason: str  # for the person, in the claimant's notes (no message text)


@dataclass
class TriageActionDone:
    """`done` False: the action could not be taken (a refused callback time, no claim to
    answer about, an opted-out claimant...), and `detail` says why: a person takes over."""

    done: bool
    detail: str = ""
