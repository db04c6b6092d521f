"""`dialler compliance suppress FILE` and `dialler compliance unsuppress`: imported
suppression lists, final until a dated, audited removal (`services.suppression_lists`).

Exit codes (as `tps-import`): 0 done; 1 done, but some claimants' workflows could not be
told (Temporal away: run the same import again, it adds nothing and tells them); 2 nothing
done (the file's header, an unreadable file, a refused removal); 3 imported, but some lines
were rejected (each is listed with its line number).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from temporalio.client import Client

from adapters.databases import dialler_engine, replica_engine
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from domain.suppressions import ImportHeaderError
from services.suppression_lists import (
    ImportReport,
    RemovalRefused,
    RemovalReport,
    SuppressionLists,
    Telling,
    physical_lines,
)
from workflows.outreach_client import OutreachClient

EXIT_NOT_TOLD = 1
EXIT_NOTHING_DONE = 2
EXIT_REJECTED_LINES = 3
LONDON = ZoneInfo("Europe/London")
REJECTED_SHOWN = 200  # lines listed on the terminal; the count is always complete


@dataclass
class _Temporal:
    """Connects on the first workflow call and keeps the client; remembers whether it
    connected (a command that never did may end normally, see `exit_after_temporal`)."""

    settings: Settings
    client: Client | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def __call__(self) -> Client:
        async with self.lock:
            if self.client is None:
                self.client = await connect_temporal(self.settings)
        return self.client

    def outreach(self) -> OutreachClient:
        return OutreachClient(self, self.settings.temporal_task_queue)


def _end(temporal: _Temporal, code: int) -> None:
    if temporal.client is not None:
        exit_after_temporal(code)
    sys.exit(code)


def _operator(by: str | None) -> str:
    if by and by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise click.UsageError("say who you are with --by NAME") from None


def _echo_telling(telling: Telling, verb: str) -> None:
    click.echo(
        f"{telling.claimants:,} claimant(s) have these numbers or addresses; "
        f"{telling.running:,} workflow(s) {verb}."
    )
    if telling.not_told:
        click.echo(
            f"error: {telling.not_told:,} claimant(s)' workflows were not told "
            f"({telling.error}); run the command again to tell them",
            err=True,
        )


async def _import(settings: Settings, temporal: _Temporal, file: Path, by: str) -> ImportReport:
    dialler = dialler_engine(settings, pool_size=2)
    replica = replica_engine(settings, pool_size=2)
    try:
        lists = SuppressionLists(dialler, replica, temporal.outreach())
        with file.open("rb") as handle:
            return await lists.import_lines(
                physical_lines(handle), source=f"import:{file.name}", by=by
            )
    finally:
        await dialler.dispose()
        await replica.dispose()


@click.command("suppress")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", help="who imports the list (audited; default: the OS user)")
def suppress(file: Path, by: str | None) -> None:
    """Import a suppression list: a UTF-8 CSV whose header names its columns, in any order,
    from: number, email, reason (a 'reason' and at least one of the others; an unknown
    column is refused). Each line names a number (any UK or international spelling; kept
    in E.164), an email address (kept lower-case), or both, and why (free text, up to 500
    characters). Every number and address becomes a final opt-out: no SMS START lifts it,
    only `dialler compliance unsuppress`. Re-importing a file adds nothing new. A bad line
    (a number that cannot be a phone number, a bad address, malformed CSV, a NUL byte, a
    line over 4,096 bytes) is listed with its line number and the rest imports.

    \b
    number,email,reason
    07700 900123,,complaint 2026-11-02
    ,someone@example.com,asked not to be contacted
    """
    operator = _operator(by)
    settings = settings_or_exit()
    temporal = _Temporal(settings)
    try:
        report = asyncio.run(_import(settings, temporal, file, operator))
    except ImportHeaderError as error:
        click.echo(f"error: {file.name}: {error}; nothing was imported", err=True)
        _end(temporal, EXIT_NOTHING_DONE)
        return
    except OSError as error:
        click.echo(f"error: cannot read {file}: {error.strerror}", err=True)
        _end(temporal, EXIT_NOTHING_DONE)
        return
    click.echo(
        f"{report.lines:,} line(s) read: {report.added:,} suppression(s) added, "
        f"{report.already:,} already held, {len(report.rejected):,} line(s) rejected "
        f"(audit entry {report.audit_id})."
    )
    for rejected in report.rejected[:REJECTED_SHOWN]:
        click.echo(f"  rejected: {rejected.error}", err=True)
    if len(report.rejected) > REJECTED_SHOWN:
        more = len(report.rejected) - REJECTED_SHOWN
        click.echo(f"  ... and {more:,} more rejected line(s)", err=True)
    _echo_telling(report.telling, "running were told")
    if report.telling.not_told:
        _end(temporal, EXIT_NOT_TOLD)
    _end(temporal, EXIT_REJECTED_LINES if report.rejected else 0)


async def _remove(
    settings: Settings,
    temporal: _Temporal,
    suppression_id: int,
    reason: str,
    by: str,
    effective: datetime | None,
) -> RemovalReport:
    dialler = dialler_engine(settings, pool_size=2)
    replica = replica_engine(settings, pool_size=2)
    try:
        lists = SuppressionLists(dialler, replica, temporal.outreach())
        return await lists.remove(suppression_id, reason=reason, by=by, effective_at=effective)
    finally:
        await dialler.dispose()
        await replica.dispose()


@click.command("unsuppress")
@click.option("--id", "suppression_id", type=int, required=True, help="the suppression's id")
@click.option("--reason", required=True, help="why it is removed (audited)")
@click.option("--by", help="who removes it (audited; default: the OS user)")
@click.option(
    "--effective",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    help="when the removal took effect, Europe/London (default: now; never in the future)",
)
def unsuppress(
    suppression_id: int, reason: str, by: str | None, effective: datetime | None
) -> None:
    """End an imported suppression: a dated removal and an audit entry, both kept for
    good. The claimants with that number or address are refreshed (their outreach starts
    again where nothing else stops it). Other opt-outs (SMS STOP, do-not-call) cannot be
    removed here."""
    operator = _operator(by)
    settings = settings_or_exit()
    temporal = _Temporal(settings)
    when = effective.replace(tzinfo=LONDON) if effective is not None else None
    try:
        report = asyncio.run(_remove(settings, temporal, suppression_id, reason, operator, when))
    except RemovalRefused as error:
        click.echo(f"error: {error}; nothing was recorded", err=True)
        _end(temporal, EXIT_NOTHING_DONE)
        return
    click.echo(
        f"suppression {report.suppression_id} removed (removal {report.removal_id}, "
        f"audit entry {report.audit_id})."
    )
    _echo_telling(report.telling, "were refreshed")
    _end(temporal, EXIT_NOT_TOLD if report.telling.not_told else 0)


def register_suppress_commands(group: click.Group) -> None:
    for command in (suppress, unsuppress):
        group.add_command(command)
