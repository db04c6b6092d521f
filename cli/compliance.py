"""`dialler compliance`: the TPS/CTPS lists, suppression imports and subject access."""

from __future__ import annotations

import click


@click.group()
def compliance() -> None:
    """Consent, TPS/CTPS screening, suppressions and subject access (docs/compliance.md)."""
