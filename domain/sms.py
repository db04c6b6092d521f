"""SMS rules: opt-out keywords, delivery-status order, number spellings, message templates.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

BRAND = "Resolve My Claim"
MAX_BODY_LENGTH = 1600  # Twilio's limit for one message (it splits it into segments)

# The keywords carriers and Twilio treat as opt-out / opt-in (whole message, any case).
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"


def keyword_of(body: str) -> Keyword | None:
    """STOP or START when the whole message (trimmed, any case) is one of their keywords."""
    word = body.strip().upper()
    if word in STOP_KEYWORDS:
        return Keyword.STOP
    if word in START_KEYWORDS:
        return Keyword.START
    return None


# --- delivery status ------------------------------------------------------------------------

# Twilio's message statuses in the order a message passes through them, plus the dialler's
# own "sending" (row written, provider not yet called). A callback may arrive late or twice:
# a status is applied only if it is further along than the one stored.
_STATUS_RANK = {
    "sending": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sent": 3,
    "delivery_unknown": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}
KNOWN_STATUSES = frozenset(_STATUS_RANK)


def status_advances(current: str, new: str) -> bool:
    """True if `new` should replace `current` (a later stage of the same message)."""
    if new not in _STATUS_RANK:
        return False
    return _STATUS_RANK[new] > _STATUS_RANK.get(current, -1)


# --- phone numbers ---------------------------------------------------------------------------


def normalise_number(number: str) -> str:
    """Digits and a leading +, nothing else ("+44 7700 900123" -> "+447700900123")."""
    text = number.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    return ("+" if text.startswith("+") else "") + digits


def number_spellings(number: str | None) -> frozenset[str]:
    """The ways one UK number may be stored: E.164 (+447...) and national (07...)."""
    if not number:
        return frozenset()
    plain = normalise_number(number)
    if not plain:
        return frozenset()
    spellings = {plain}
    if plain.startswith("+44"):
        spellings.add("0" + plain[3:])
    elif plain.startswith("0") and len(plain) > 1:
        spellings.add("+44" + plain[1:])
    return frozenset(spellings)


# --- templates -----------------------------------------------------------------------------

_REQUIREMENT_WORDS = {
    "bank_statements": "bank statements",
    "photo_id": "photo ID (passport or driving licence)",
    "proof_of_address": "proof of address",
    "finance_agreement": "your finance agreement",
    "signed_loa": "a signed letter of authority",
    "vehicle_details": "your vehicle details",
    "credit_report": "a copy of your credit report",
    "payslips": "recent payslips",
    "dsar_form": "a data request (DSAR) form",
    "income_expenditure": "an income and expenditure form",
}


def requirement_words(requirement_type: str) -> str:
    """A requirement type in words a claimant understands."""
    known = _REQUIREMENT_WORDS.get(requirement_type)
    return known or requirement_type.replace("_", " ").strip().lower() or "a document"


def _listing(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def document_reminder(first_name: str | None, requirement_types: Iterable[str]) -> str:
    """The "documents we still need" message, listing each outstanding type once."""
    words: list[str] = []
    for requirement_type in requirement_types:
        phrase = requirement_words(requirement_type)
        if phrase not in words:
            words.append(phrase)
    name = (first_name or "").strip()
    greeting = f"Hi {name}" if name else "Hello"
    needed = _listing(words) if words else "a few documents"
    return (
        f"{greeting}, this is {BRAND}. To move your claim forward we still need {needed}. "
        "Reply to this message or ask us for a secure upload link. Reply STOP to opt out."
    )
