"""The request-body and string guard: runs before every route (before access checks, which
read forms themselves), so no view sees input the databases or the JSON parser cannot take.

- Strings (path segments, query parameters, form fields, and every key and string inside a
  JSON body) may not hold control characters: PostgreSQL refuses NUL outright, and the
  others (escape sequences, DEL, C1 controls, lone surrogates) have no place in anything a
  person types. Tab, carriage return and line feed are allowed, for free text (notes, SMS).
  A refusal is a 400 naming the field.
- A JSON body is at most `MAX_JSON_BYTES` (413), valid UTF-8, valid JSON, and nested at
  most `MAX_JSON_DEPTH` deep (400 `invalid_json`): Python's parser would otherwise raise
  `UnicodeDecodeError` or `RecursionError`, neither of which the views expect.

Integers are bounded by the URL converter and `query_int` (web/converters.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from quart import Quart, current_app, request

from web.auth.access import access_of
from web.errors import APIError

MAX_JSON_BYTES = 64 * 1024  # the largest API body (a 4,000-character note) is well under
MAX_JSON_DEPTH = 32  # the API's bodies are flat; a response body is nested 4 deep at most
FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# C0 controls but tab, line feed and carriage return; DEL and the C1 controls; surrogates
# (only a lone one survives JSON decoding, and no database can store it)
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    return _FORBIDDEN.search(value) is not None


def _printable(name: str) -> str:
    """A field name fit to echo back (it may hold the very characters refused)."""
    return _FORBIDDEN.sub(lambda m: f"\\x{ord(m.group()):02x}", name)[:100] or "body"


def _refuse(fields: dict[str, str]) -> APIError:
    return APIError(400, "validation_error", "The request is not valid.", fields=fields)


def _check_pairs(pairs: Iterator[tuple[str, Any]]) -> None:
    for name, value in pairs:
        if has_control_characters(name):
            raise _refuse({_printable(name): "Field names may not hold control characters."})
        if isinstance(value, str) and has_control_characters(value):
            raise _refuse({name: "May not hold control characters (NUL, escape, ...)."})


def _json_strings(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every key and string in a parsed JSON document; a key is
    reported by its own text so that a bad key is named."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if has_control_characters(key):
                yield key, None  # named and refused by _check_pairs
            yield from _json_strings(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, str):
        yield path or "body", value


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings ignored), up
    to one past `MAX_JSON_DEPTH`; one linear pass without parsing, so a hostile body can
    exhaust neither the parser's stack nor the CPU."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # cannot be too deep: the exact figure is not needed
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                break
        elif char in "]}":
            depth -= 1
    return deepest


def _invalid_json(message: str) -> APIError:
    return APIError(400, "invalid_json", message)


async def _check_json_body() -> None:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise _too_large()
    data = await request.get_data(cache=True, as_text=False)
    raw = data.encode() if isinstance(data, str) else data  # always bytes with as_text=False
    if not raw:
        return  # an empty body: the route says whether it needs one
    if len(raw) > MAX_JSON_BYTES:
        raise _too_large()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid_json("The body is not valid UTF-8.") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise _invalid_json(f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise _invalid_json("The body is not valid JSON.") from None
    _check_pairs(_json_strings(document))


def _too_large() -> APIError:
    return APIError(
        413, "payload_too_large", f"A JSON body may be at most {MAX_JSON_BYTES:,} bytes."
    )


def scrub(value: str) -> str:
    """`value` with each control character replaced by U+FFFD, for what must be kept
    rather than refused (a claimant's SMS): the database can store the result."""
    return _FORBIDDEN.sub("\ufffd", value)


def _is_webhook() -> bool:
    access = access_of(current_app.view_functions.get(request.endpoint or ""))
    return access is not None and access.kind == "webhook"


async def guard_input() -> None:
    _check_pairs(iter((request.view_args or {}).items()))
    _check_pairs(iter(request.args.items(multi=True)))
    if request.is_json:
        await _check_json_body()
    elif request.mimetype in FORM_MIMETYPES and not _is_webhook():
        # A webhook's form is Twilio's (signed over the values as sent): refusing it would
        # lose a claimant's message, so `verified_form` scrubs it after the signature check.
        _check_pairs(iter((await request.form).items(multi=True)))


def install_input_guard(app: Quart) -> None:
    """Call before any other `before_request` hook is installed: hooks run in order."""
    app.before_request(guard_input)
