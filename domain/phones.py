"""Phone numbers as keys: contact caps count per number without the number itself
travelling through workflow histories."""

from __future__ import annotations

import hashlib


def phone_key(number: str | None) -> str | None:
    if not number:
        return None
    normalised = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return hashlib.sha256(normalised.encode()).hexdigest()
