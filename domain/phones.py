"""Phone numbers: as keys (contact caps count per number without the number itself
travelling through workflow histories) and in E.164, the one spelling the TPS screening,
suppression imports and the replica's numbers are compared in."""

from __future__ import annotations

import hashlib

import phonenumbers

_UK = "GB"
_SEPARATORS = str.maketrans("", "", " -().\t")


def phone_key(number: str | None) -> str | None:
    if not number:
        return None
    normalised = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return hashlib.sha256(normalised.encode()).hexdigest()


def _uk_fast(digits: str) -> str | None:
    """The common UK spellings without a full parse: 07..., 447..., +447..., 00447..."""
    if digits.startswith("+44"):
        national = digits[3:]
    elif digits.startswith("0044"):
        national = digits[4:]
    elif digits.startswith("44") and len(digits) in (11, 12):
        national = digits[2:]
    elif digits.startswith("0") and not digits.startswith("00"):
        national = digits[1:]
    else:
        return None
    if national.startswith("0"):
        national = national[1:]  # "+44 (0)20 ..." written with the trunk zero
    if national.isdigit() and len(national) in (9, 10) and national[0] in "1235789":
        return "+44" + national
    return None


def to_e164(number: str | None) -> str | None:
    """The number in E.164 (+447700900123), read as a UK number unless it says otherwise;
    None when it is not a possible phone number."""
    if not number:
        return None
    text = number.strip().translate(_SEPARATORS)
    if not text or len(text) > 20:
        return None
    fast = _uk_fast(text)
    if fast is not None:
        return fast
    try:
        parsed = phonenumbers.parse(text, _UK)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
