"""`dialler report`: reports over the dialler's data (the supervisor analytics read the same
services)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime

import click

from adapters.databases import dialler_engine, replica_engine
from cli.common import settings_or_exit
from config.settings import Settings
from domain.attribution import report_period
from schemas.attribution import FunnelGrouping, FunnelReport, FunnelRow
from services.funnel import STAGES, funnel, total

HEADINGS = {
    "called": "called",
    "reached": "reached",
    "link_sent": "link sent",
    "link_opened": "link opened",
    "link_used": "link used",
    "signed": "signed",
    "documents_received": "documents received",
}


def _day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30",
            param_hint=option,
        ) from None


async def _funnel(
    settings: Settings, start: datetime, end: datetime, by: FunnelGrouping
) -> FunnelReport:
    dialler = dialler_engine(settings, pool_size=1)
    replica = replica_engine(settings, pool_size=1) if by is FunnelGrouping.LENDER else None
    try:
        return await funnel(dialler, replica, start, end, by)
    finally:
        await dialler.dispose()
        if replica is not None:
            await replica.dispose()


def _csv(report: FunnelReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.grouping.value, *STAGES])
    for row in report.rows:
        writer.writerow([row.group, *(getattr(row, stage) for stage in STAGES)])
    return out.getvalue()


def _table(report: FunnelReport) -> str:
    rows: list[FunnelRow] = list(report.rows)
    if report.grouping is not FunnelGrouping.TOTAL:
        rows.append(total(report.rows))
    width = max([len(report.grouping.value), *(len(r.group) for r in rows)])
    head = f"{report.grouping.value:<{width}}" + "".join(
        f"  {HEADINGS[stage]:>{max(len(HEADINGS[stage]), 7)}}" for stage in STAGES
    )
    lines = [head]
    for row in rows:
        lines.append(
            f"{row.group:<{width}}"
            + "".join(
                f"  {getattr(row, stage):>{max(len(HEADINGS[stage]), 7)},}" for stage in STAGES
            )
        )
    if report.grouping is FunnelGrouping.LENDER:
        lines.append("(a claimant with claims against several lenders counts under each)")
    return "\n".join(lines)


@click.group()
def report() -> None:
    """Reports: the conversion funnel."""


@report.command("funnel")
@click.option("--from", "first", required=True, metavar="DATE", help="First day, YYYY-MM-DD.")
@click.option("--to", "last", required=True, metavar="DATE", help="Last day (included).")
@click.option(
    "--by",
    type=click.Choice([g.value for g in FunnelGrouping if g is not FunnelGrouping.TOTAL]),
    default=None,
    help="One row per agent, queue, lender or channel (default: one total row).",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout (stage names as headers).")
def funnel_command(first: str, last: str, by: str | None, as_csv: bool) -> None:
    """Called -> reached -> link sent -> link opened -> link used -> signed / documents
    received, over the days --from to --to (both included, UK time).

    \b
    called      calls started in the period (dialled or recorded by hand; person or AI)
    reached     of those, answered by a person (not a machine) with the agent's leg
                connected; a call recorded by hand: its outcome says someone spoke
    link sent   magic links handed to the SMS/email provider in the period
    link opened of those, the landing page shown at least once (or used), up to now
    link used   of those, confirmed by the claimant, up to now
    signed      signatures added (seen by CDC) in the period, once per claimant
    documents   requirements that became RECEIVED or APPROVED in the period, once each

    \b
    --by agent    the agent who called / sent the link / of the credited contact
    --by queue    the call's queue / the queue of the call the link was sent from / of
                  the credited call
    --by channel  call or ai / the link's source contact (call, ai, sms) else its
                  delivery (sms, email) / the credited contact (call, ai, sms, (none))
    --by lender   the lenders of the claimant's claims (a requirement: its claim's)

    Conversions are credited to the claimant's last contact within the attribution window
    (rules file: compliance.attribution_window).
    """
    first_day, last_day = _day("--from", first), _day("--to", last)
    try:
        start, end = report_period(first_day, last_day)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--to") from None
    grouping = FunnelGrouping(by) if by else FunnelGrouping.TOTAL
    settings = settings_or_exit()
    result = asyncio.run(_funnel(settings, start, end, grouping))
    if as_csv:
        click.echo(_csv(result), nl=False)
        return
    click.echo(f"funnel {first_day} to {last_day} (UK time), by {grouping.value}")
    click.echo(_table(result))
