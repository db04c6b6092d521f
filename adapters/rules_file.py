"""Read the rules file (TOML) that operations tune; refuse a bad one at start."""

from __future__ import annotations

from pathlib import Path

from domain.rules import DiallerRules, RulesError, parse_rules


class RulesFileError(Exception):
    """The rules file is missing or invalid; the message names the file and the key."""


def load_rules_file(path: Path) -> DiallerRules:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RulesFileError(f"cannot read rules file {path}: {error.strerror}") from None
    try:
        return parse_rules(text)
    except RulesError as error:
        raise RulesFileError(f"rules file {path}: {error}") from None
