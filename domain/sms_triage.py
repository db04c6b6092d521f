"""Triage of an inbound SMS by the model: the classification prompt and its JSON schema, the
parsing of the model's answer (retry once, then a person), and what is done per intent.

STOP-style keywords never reach here: the fixed rules (`domain.sms.keyword_of`) handle them
before anything else, and `needs_no_model` keeps them from the model even if a triage were
started for one. The model only classifies: it sees the message and the time, never the
claimant's name, number or claims. What the claimant is told is written here from their own
claim context (lenders, missing documents), so a model cannot invent it.

Pure: the time and the zone are passed in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from domain.callback_booking import refuse_callback
from domain.calling_windows import format_local
from domain.rules import CallingWindows
from domain.sms import BRAND, MAX_BODY_LENGTH, keyword_of, requirement_words
from schemas.ai import ContextAnswer, TriageDecision, TriageIntent

# A second attempt after output that failed its schema; then a person reads the message.
MAX_ATTEMPTS = 2
CALLBACK_DAYS = 7  # today and the next six days, as agents book them
NOTE_PREFIX = "AI triage: needs a person"

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": [intent.value for intent in TriageIntent]},
        "callback_at": {
            "type": ["string", "null"],
            "description": (
                "For callback_request only: the UK local date and time the claimant asked "
                "to be called, as YYYY-MM-DDTHH:MM; null when they gave no time."
            ),
        },
    },
    "required": ["intent", "callback_at"],
    "additionalProperties": False,
}

_SYSTEM = """You sort text messages sent by claimants to {brand}, a UK claims management \
company. You do not reply to the claimant. Classify the message into exactly one intent:

- "callback_request": the claimant asks to be phoned back at a time they give (a day and/or \
time). Resolve relative times ("tomorrow at 3", "Monday morning" = 10:00) against the \
current UK time below.
- "documents_question": the claimant asks which documents or information are still needed \
for their claim, or what is happening with their documents.
- "other": anything else, including complaints, bereavement, distress, requests to stop, \
questions about money or fees, and anything unclear. When in doubt, answer "other".

The current UK local time is {now} ({weekday}).
Answer with one JSON object and nothing else, matching this JSON schema:
{schema}"""

_CORRECTION = (
    "Your previous answer could not be used: {why}. Answer again with only the JSON "
    "object described above."
)


def classification_messages(
    body: str, now: datetime, zone: tzinfo, correction: str | None = None
) -> list[dict[str, Any]]:
    """The chat messages for one classification: the instructions (with the time), the
    claimant's text as the user's message (cut to one SMS's length), and on a second
    attempt what was wrong with the first."""
    local = now.astimezone(zone)
    system = _SYSTEM.format(
        brand=BRAND,
        now=local.strftime("%Y-%m-%dT%H:%M"),
        weekday=local.strftime("%A"),
        schema=json.dumps(TRIAGE_SCHEMA),
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": body[:MAX_BODY_LENGTH]},
    ]
    if correction:
        messages.append({"role": "system", "content": _CORRECTION.format(why=correction)})
    return messages


def needs_no_model(body: str) -> str | None:
    """Why the message must not go to the model (a person or the fixed rules read it), or
    None. STOP / START keywords are the fixed rules'; an empty message says nothing."""
    if keyword_of(body) is not None:
        return "an opt-out or opt-in keyword (handled by the fixed rules)"
    if not body.strip():
        return "an empty message"
    return None


# --- the model's answer --------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """The parsed answer; `malformed` says why it failed its schema (then the rest is
    unset)."""

    intent: TriageIntent | None = None
    callback_at: datetime | None = None
    malformed: str | None = None


def _malformed(why: str) -> Classification:
    return Classification(malformed=why)


def parse_local_time(raw: str, zone: tzinfo) -> datetime | None:
    """A time the model wrote as YYYY-MM-DDTHH:MM (UK local; an explicit offset is kept), in
    UTC; None when it is not one."""
    text = raw.strip()
    if not text or len(text) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def parse_classification(content: str | None, zone: tzinfo) -> Classification:
    """The model's JSON answer checked against `TRIAGE_SCHEMA`."""
    if content is None or not content.strip():
        return _malformed("the answer was empty")
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return _malformed("the answer was not valid JSON")
    if not isinstance(data, dict):
        return _malformed("the answer was not a JSON object")
    raw_intent = data.get("intent")
    try:
        intent = TriageIntent(raw_intent) if isinstance(raw_intent, str) else None
    except ValueError:
        intent = None
    if intent is None:
        allowed = ", ".join(f'"{i.value}"' for i in TriageIntent)
        return _malformed(f'"intent" must be one of {allowed}')
    raw_at = data.get("callback_at")
    if intent is not TriageIntent.CALLBACK_REQUEST or raw_at is None:
        return Classification(intent=intent)
    if not isinstance(raw_at, str):
        return _malformed('"callback_at" must be a string YYYY-MM-DDTHH:MM or null')
    at = parse_local_time(raw_at, zone)
    if at is None:
        return _malformed('"callback_at" must be a UK local time written YYYY-MM-DDTHH:MM')
    return Classification(intent=intent, callback_at=at)


def retry_after(attempt: int, malformed: str | None) -> bool:
    """Ask the model once more: the `attempt`-th answer (1-based) failed its schema
    (`malformed` says why) and an attempt is left."""
    return malformed is not None and attempt < MAX_ATTEMPTS


# --- what is done ------------------------------------------------------------------------


class TriageAction(StrEnum):
    BOOK_CALLBACK = "book_callback"
    ANSWER = "answer"
    PERSON = "person"


# TriageResult.action, for the record and the Temporal UI
DONE_LABELS = {
    TriageAction.BOOK_CALLBACK: "callback booked",
    TriageAction.ANSWER: "answered",
    TriageAction.PERSON: "left for a person",
}


@dataclass(frozen=True)
class TriagePlan:
    action: TriageAction
    callback_at: datetime | None = None
    reason: str = ""  # why a person reads it (for their note)


def plan_for(decision: TriageDecision) -> TriagePlan:
    """A callback request with a time is booked; a documents question is answered; the rest
    (and a callback request without a time) goes to a person."""
    if decision.intent is TriageIntent.CALLBACK_REQUEST:
        if decision.callback_at is None:
            return TriagePlan(TriageAction.PERSON, reason="a callback request without a time")
        return TriagePlan(TriageAction.BOOK_CALLBACK, callback_at=decision.callback_at)
    if decision.intent is TriageIntent.DOCUMENTS_QUESTION:
        return TriagePlan(TriageAction.ANSWER)
    return TriagePlan(TriageAction.PERSON, reason="not something the AI answers")


def person_note(reason: str) -> str:
    """The claimant note a person finds (no message text: they read it in the inbox)."""
    return f"{NOTE_PREFIX} ({reason})." if reason else f"{NOTE_PREFIX}."


def callback_refusal(at: datetime, now: datetime, windows: CallingWindows) -> str | None:
    """Why a callback at `at` may not be booked now (past, too far ahead, outside the
    calling windows), as agents' bookings are checked; None when it may."""
    refused = refuse_callback(at, now, windows, days_ahead=CALLBACK_DAYS)
    return None if refused is None else refused.reason


# --- what the claimant is told -----------------------------------------------------------


def _listing(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _greeting(first_name: str | None) -> str:
    name = (first_name or "").strip()
    return f"Hi {name}" if name else "Hello"


def documents_answer(first_name: str | None, context: ContextAnswer) -> str | None:
    """The answer to "what do you still need?" from the claimant's own claims: which
    lenders, which documents are missing, and whether they have signed. None when they have
    no claim to answer about (a person replies)."""
    if not context.lenders:
        return None
    lenders = _listing(list(dict.fromkeys(context.lenders)))
    missing: list[str] = []
    for requirement_type in context.missing_documents:
        words = requirement_words(requirement_type)
        if words not in missing:
            missing.append(words)
    claims = "claim" if len(set(context.lenders)) == 1 else "claims"
    text = f"{_greeting(first_name)}, this is {BRAND}'s automated assistant. "
    if missing:
        text += f"For your {claims} against {lenders} we still need {_listing(missing)}. "
    else:
        text += f"We don't need any documents from you for your {claims} against {lenders} now. "
    if not context.signed:
        text += "We also need you to sign your claim form. "
    if missing:
        text += "Reply to ask for a secure upload link. "
    return text + "Reply STOP to opt out."


def callback_confirmation(first_name: str | None, at: datetime, zone: tzinfo) -> str:
    local = format_local(at, zone)
    return (
        f"{_greeting(first_name)}, this is {BRAND}'s automated assistant. We'll call you "
        f"back at {local}. Reply STOP to opt out."
    )
