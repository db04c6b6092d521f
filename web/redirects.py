"""Where a user-supplied redirect target (`next=`) may send the browser: this site only.

Browsers are lenient with what they treat as an absolute URL: `//host`, `/\\host`, `\\\\host`
and `/<TAB>/host` (tabs, CR and LF are stripped before parsing) all leave the site. Rather
than list the dangerous shapes, a target is accepted only when it is plainly a local path:
it starts with one `/`, whose next character is neither `/` nor `\\`; it has no backslash,
control or whitespace character, nor a percent-encoded control character, backslash or
second slash; and `urlsplit` finds no scheme or host in it. Anything else is the default.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

DEFAULT_TARGET = "/console"
MAX_LENGTH = 2048

# Control characters (C0, DEL, C1) and the backslash, which browsers read as `/`; as sent,
# whitespace too (a space is fine once decoded: `?q=a%20b`)
_UNSAFE_DECODED = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
_UNSAFE_RAW = re.compile(r"[\x00-\x20\x7f-\x9f\\\s]")


def safe_next(raw: str | None, default: str = DEFAULT_TARGET) -> str:
    """`raw` if it is a same-site relative path, else `default`."""
    if not raw or len(raw) > MAX_LENGTH or not raw.startswith("/"):
        return default
    if raw[1:2] in ("/", "\\"):
        return default
    # Checked decoded too: `%09`, `%5C` or `%2F%2F` become dangerous if anything decodes once
    decoded = unquote(raw)
    if _UNSAFE_RAW.search(raw) or _UNSAFE_DECODED.search(decoded) or decoded[1:2] == "/":
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return default
    return raw
