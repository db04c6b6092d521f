"""`dialler compliance`: the TPS/CTPS lists, suppression imports and subject access."""

from __future__ import annotations

import click

from cli.compliance_export import export
from cli.compliance_suppress import register_suppress_commands
from cli.compliance_tps import register_tps_commands


@click.group()
def compliance() -> None:
    """Consent, TPS/CTPS screening, suppressions and subject access (docs/compliance.md)."""


register_tps_commands(compliance)
register_suppress_commands(compliance)
compliance.add_command(export)
