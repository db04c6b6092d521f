"""Read the rules file (TOML) that operations tune; refuse a bad one at start.

The file is "version 0": in force until a supervisor saves a version on the rules page
(`adapters.rules_source`), and what every process falls back to.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.rules_source import RulesSource
from domain.rules import DiallerRules, RulesError, parse_rules


class RulesFileError(Exception):
    """The rules file is missing or invalid; the message names the file and the key."""


def read_rules_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise RulesFileError(f"cannot read rules file {path}: {reason}") from None


def load_rules_file(path: Path) -> DiallerRules:
    text = read_rules_text(path)
    try:
        return parse_rules(text)
    except RulesError as error:
        raise RulesFileError(f"rules file {path}: {error}") from None


def rules_source(engine: AsyncEngine, path: Path) -> RulesSource:
    """The source a process holds: the newest saved version, else the file at `path`
    (read and checked now, so a bad file stops the process at start)."""
    return RulesSource(engine, load_rules_file(path))
