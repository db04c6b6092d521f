"""`dialler compliance tps-import | tps-status | tps-rescreen`: the TPS and CTPS lists.

An import streams the file into PostgreSQL (`adapters.tps.import_list`); when it changed a
list, the claimants with a task (any status) whose listed status changed get a REFRESH
through the outreach workflow's door, so their workflow reloads its facts and screens the
number again. An import whose re-screening did not finish (Temporal away) is re-screened by
`tps-rescreen`, or by the next import.

Exit codes of tps-import: 0 imported (or nothing to change); 1 refused or failed, or the
re-screening did not finish; 3 imported, but some lines were rejected (they are listed).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TypeVar, cast

import click
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from adapters import tps
from adapters.databases import dialler_engine, replica_engine
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from services.tps_screening import Rescreened, RescreenUnfinished, rescreen_pending
from workflows.outreach_client import OutreachClient

EXIT_FAILED = 1
EXIT_REJECTED_LINES = 3


# --- the commands ---------------------------------------------------------------------------


@dataclass
class _Temporal:
    """Connects to Temporal only when a refresh is to be sent, and remembers that it did:
    a command that never connected may end normally (see `exit_after_temporal`)."""

    settings: Settings
    connected: bool = False

    async def __call__(self) -> Client:
        self.connected = True
        return await connect_temporal(self.settings)

    def outreach(self) -> OutreachClient:
        return OutreachClient(self, self.settings.temporal_task_queue)


T = TypeVar("T")


def _run_with_engines(
    settings: Settings, work: Callable[[AsyncEngine, AsyncEngine], Awaitable[T]]
) -> T:
    async def run() -> T:
        dialler = dialler_engine(settings, pool_size=2)
        replica = replica_engine(settings, pool_size=2)
        try:
            return await work(dialler, replica)
        finally:
            await dialler.dispose()
            await replica.dispose()

    return asyncio.run(run())


def _end(temporal: _Temporal, code: int) -> None:
    if temporal.connected:
        exit_after_temporal(code)
    sys.exit(code)


def _echo_rescreened(results: list[Rescreened]) -> None:
    for r in results:
        click.echo(
            f"Re-screened {r.with_task:,} claimants with a task ({r.with_number:,} with a "
            f"number) for import {r.version_id} ({r.list_name.upper()}): {r.changed:,} changed "
            f"({len(r.now_listed):,} now listed, {len(r.no_longer_listed):,} no longer "
            f"listed); a refresh was sent to each."
        )
        if r.refused:
            click.echo(f"  the workflow refused the refresh for {len(r.refused):,} of them")


@click.command("tps-import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_name", type=click.Choice(tps.LISTS), required=True, help="which list")
@click.option("--replace", is_flag=True, help="the file is the whole list: replace it atomically")
@click.option("--allow-empty", is_flag=True, help="with --replace: an empty file empties the list")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="write every rejected line here (line number, reason, excerpt)",
)
def tps_import(
    file: Path, list_name: str, replace: bool, allow_empty: bool, rejects: Path | None
) -> None:
    """Import a TPS or CTPS list (one number per line) into the dialler DB, then re-screen
    the queued claimants whose listed status it changed. Without --replace the numbers are
    added to the list. Importing the same file again changes nothing."""
    settings = settings_or_exit()
    temporal = _Temporal(settings)
    rejects_out: IO[str] | None = rejects.open("w", encoding="utf-8") if rejects else None

    def rejected(rejection: tps.Rejection) -> None:
        if rejects_out is not None:
            rejects_out.write(f"{rejection.line}\t{rejection.reason}\t{rejection.excerpt}\n")

    def work(stream: IO[bytes], bar: Callable[[int], None]) -> Callable[
        [AsyncEngine, AsyncEngine], Awaitable[int]
    ]:  # fmt: skip
        async def imported_then_rescreened(dialler: AsyncEngine, replica: AsyncEngine) -> int:
            report = await tps.import_list(
                dialler,
                stream,
                list_name=cast(tps.ListName, list_name),
                replace=replace,
                source=file.name,
                allow_empty=allow_empty,
                on_progress=bar,
                on_rejected=rejected,
            )
            _echo_report(report)
            try:
                results = await rescreen_pending(
                    dialler, replica, temporal.outreach(), datetime.now(UTC)
                )
            except RescreenUnfinished as error:
                click.echo(
                    f"Error: the list is imported, but not every claimant it changed could "
                    f"be told ({error}). Run `dialler compliance tps-rescreen` when Temporal "
                    "is back.",
                    err=True,
                )
                return EXIT_FAILED
            _echo_rescreened(results)
            return EXIT_REJECTED_LINES if report.rejected else 0

        return imported_then_rescreened

    try:
        with (
            file.open("rb") as stream,
            click.progressbar(
                length=file.stat().st_size, label=f"Reading {file.name}", file=sys.stderr
            ) as bar,
        ):
            code = _run_with_engines(settings, work(stream, bar.update))
    except tps.ImportRefused as error:
        click.echo(f"Error: {error}", err=True)
        code = EXIT_FAILED
    finally:
        if rejects_out is not None:
            rejects_out.close()
    _end(temporal, code)


def _echo_report(report: tps.ImportReport) -> None:
    name = report.list_name.upper()
    click.echo(
        f"{name}: {report.lines:,} lines read, {report.valid:,} numbers, "
        f"{report.rejected:,} lines rejected."
    )
    if report.rejections:
        shown = len(report.rejections)
        more = f" (the first {shown:,} of {report.rejected:,})" if report.rejected > shown else ""
        click.echo(f"Rejected lines{more}:")
        for rejection in report.rejections:
            click.echo(f"  line {rejection.line:,}: {rejection.reason}: {rejection.excerpt}")
    if not report.changed:
        exactly = "exactly " if report.replace else ""
        click.echo(
            f"Nothing changed: the {name} list in force already holds {exactly}these numbers."
        )
        return
    if report.replace:
        click.echo(
            f"{name} list replaced: version {report.version_id}, {report.numbers:,} numbers "
            f"({report.added:,} added, {report.removed:,} removed)."
        )
    else:
        click.echo(
            f"{name} list: {report.added:,} numbers added (version {report.version_id}); "
            f"{report.in_force:,} in force."
        )


@click.command("tps-rescreen")
def tps_rescreen() -> None:
    """Send the claimants whose listed status an import changed a refresh, for imports
    whose re-screening did not finish."""
    settings = settings_or_exit()
    temporal = _Temporal(settings)

    async def work(dialler: AsyncEngine, replica: AsyncEngine) -> int:
        try:
            results = await rescreen_pending(
                dialler, replica, temporal.outreach(), datetime.now(UTC)
            )
        except RescreenUnfinished as error:
            click.echo(f"Error: re-screening not finished ({error}); try again.", err=True)
            return EXIT_FAILED
        if not results:
            click.echo("Nothing to re-screen: every import has been.")
        _echo_rescreened(results)
        return 0

    _end(temporal, _run_with_engines(settings, work))


def _age(delta: timedelta) -> str:
    if delta.days >= 1:
        return f"{delta.days} d"
    hours = delta.seconds // 3600
    return f"{hours} h" if hours else f"{delta.seconds // 60} min"


@click.command("tps-status")
def tps_status() -> None:
    """The TPS and CTPS lists in force: version, numbers, when imported, age."""
    settings = settings_or_exit()

    async def work(dialler: AsyncEngine, _replica: AsyncEngine) -> list[tps.ListVersion]:
        return await tps.lists_in_force(dialler)

    versions = _run_with_engines(settings, work)
    if not versions:
        click.echo("No TPS or CTPS list imported: every number screens as not listed.")
        return
    now = datetime.now(UTC)
    click.echo(
        f"{'list':<5} {'version':>7} {'mode':<8} {'numbers':>12} {'rejected':>9} "
        f"{'imported at (UTC)':<17} {'age':>7}  re-screened"
    )
    for v in versions:
        click.echo(
            f"{v.list_name:<5} {v.version_id:>7} {v.mode:<8} {v.numbers:>12,} "
            f"{v.rejected_lines:>9,} {v.imported_at.astimezone(UTC):%Y-%m-%d %H:%M} "
            f"{_age(now - v.imported_at):>7}  {'yes' if v.rescreened else 'PENDING'}"
        )
    for name in tps.LISTS:
        total = sum(v.numbers for v in versions if v.list_name == name)
        if any(v.list_name == name for v in versions):
            click.echo(f"{name.upper()} in force: {total:,} numbers")
        else:
            click.echo(f"{name.upper()}: no list imported")
    if not all(v.rescreened for v in versions):
        click.echo("Some imports are not re-screened yet: run `dialler compliance tps-rescreen`.")


def register_tps_commands(group: click.Group) -> None:
    for command in (tps_import, tps_status, tps_rescreen):
        group.add_command(command)
