"""Integers from the outside world, bounded to what the databases hold.

Every id the app looks up is a PostgreSQL `bigint` (schemas/dialler_db.py) or a MySQL
`BIGINT UNSIGNED` in the replica (schemas/replica.py); one value outside the smaller of the
two reaches the driver as an overflow, a 500. So ids are bounded once, here:

- `<int:...>` in every route is `BoundedInt` (registered on the app's url_map before any
  blueprint): an id above `MAX_ID` does not match the route, which is a 404.
- `query_int` reads a query integer such as `page=`; a value past its bound is a 404 too.
- `parse_id` and `parse_count` read integers from Twilio's forms and URLs, where an
  unusable value must not fail the webhook (Twilio retries and alerts on errors).
"""

from __future__ import annotations

from typing import Any

from quart import request
from werkzeug.routing import IntegerConverter, Map

from web.errors import APIError

MAX_ID = 2**63 - 1  # PostgreSQL bigint; every table's id and user_id (schemas/dialler_db.py)
MAX_COUNT = 2**31 - 1  # PostgreSQL integer: durations and counters
_MAX_DIGITS = len(str(MAX_ID))


class BoundedInt(IntegerConverter):
    """Werkzeug's unsigned `int` converter, bounded to the database's bigint by default
    (`<int(max=...):name>` still narrows it). Only ASCII digits: `\\d` would also match
    other scripts' digits, which no client of ours sends."""

    regex = rf"[0-9]{{1,{_MAX_DIGITS}}}"

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def _digits(raw: str | None, bound: int) -> int | None:
    """`raw` as a non-negative integer no greater than `bound`, else None."""
    if not raw or len(raw) > len(str(bound)) or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= bound else None


def parse_id(raw: str | None) -> int | None:
    """A database id from text sent by a provider; None when it cannot be one."""
    return _digits(raw, MAX_ID)


def parse_count(raw: str | None, bound: int = MAX_COUNT) -> int | None:
    """A count (seconds, clicks) sent by a provider; None when absent or not a number,
    capped at the column's largest value when it overflows it."""
    if not raw or not (raw.isascii() and raw.isdigit()):
        return None
    return bound if len(raw) > len(str(bound)) else min(int(raw), bound)


def query_int(name: str, default: int, *, maximum: int = MAX_ID) -> int:
    """Query parameter `name` as an integer: `default` when absent or not a number (a
    stale or hand-edited link still shows something), 404 when past `maximum` (no such
    page or record can exist)."""
    raw = request.args.get(name)
    if not raw or not (raw.isascii() and raw.isdigit()):
        return default
    value = _digits(raw, maximum)
    if value is None:
        raise APIError(404, "not_found", f"No such {name}.")
    return value
