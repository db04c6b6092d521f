"""The TPS and CTPS lists in the dialler DB, and the screening of a number against them.

Owner of the TPS tables (migration 0006). The import (`dialler compliance tps-import`) and
the re-screening after a list changes live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class TpsScreening:
    listed: bool
    screened_at: datetime
    list_version: int | None  # None: no list has been imported yet


async def screening(conn: AsyncConnection, number_e164: str | None, now: datetime) -> TpsScreening:
    """Is this number on the TPS or CTPS list in force? `now` is the screening's time."""
    # Until the TPS tables exist (migration 0006), no list is in force.
    return TpsScreening(listed=False, screened_at=now, list_version=None)
