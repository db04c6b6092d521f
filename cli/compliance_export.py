"""`dialler compliance export USER_ID [--out FILE] [--by NAME] [--reason TEXT]`: everything
the dialler holds on one claimant, as JSON (`services.subject_access`). The export is
audited (who ran it: `--by`, or the OS user). Exit codes: 0 exported; 2 no such claimant
(nothing written, nothing audited) or the file cannot be written."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

import click

from adapters.databases import dialler_engine, replica_engine
from cli.common import settings_or_exit
from config.settings import Settings
from services.subject_access import SubjectAccess, UnknownClaimant, to_json

EXIT_NOTHING_DONE = 2


async def _export(settings: Settings, user_id: int, by: str, reason: str | None) -> dict[str, Any]:
    dialler = dialler_engine(settings, pool_size=2)
    replica = replica_engine(settings, pool_size=2)
    try:
        return await SubjectAccess(dialler, replica).export(user_id, by=by, reason=reason)
    finally:
        await dialler.dispose()
        await replica.dispose()


def _write_private(path: Path, text: str) -> None:
    """Personal data: the file is readable by its owner only, from its first byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


@click.command("export")
@click.argument("user_id", type=click.IntRange(min=1))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="write the JSON here (mode 0600) instead of to standard output",
)
@click.option("--by", help="who runs the export (audited; default: the OS user)")
@click.option("--reason", help="why, e.g. the request's reference (audited)")
def export(user_id: int, out: Path | None, by: str | None, reason: str | None) -> None:
    """Everything the dialler holds on one claimant, as JSON: the replica's claimant,
    claims and consents; the task; calls (outcomes, notes, recordings' metadata and
    transcripts), callbacks and notes; texts; magic links (never a token or its hash);
    consents captured by agents; suppressions of the claimant, their number or address,
    with removals; and the audit of access to all of it. The export is audited."""
    operator = (by or "").strip()
    if not operator:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):
            raise click.UsageError("say who you are with --by NAME") from None
    settings = settings_or_exit()
    if out is not None and out.exists() and out.is_dir():
        raise click.UsageError(f"{out} is a directory")
    try:
        document = asyncio.run(_export(settings, user_id, operator, reason))
    except UnknownClaimant as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_NOTHING_DONE)
    text = to_json(document)
    if out is None:
        click.echo(text)
        return
    try:
        _write_private(out, text)
    except OSError as error:
        click.echo(
            f"error: cannot write {out}: {error.strerror} (the export was audited as "
            f"entry {document['export_audit_id']})",
            err=True,
        )
        sys.exit(EXIT_NOTHING_DONE)
    click.echo(f"claimant {user_id} exported to {out} (audit entry {document['export_audit_id']})")
