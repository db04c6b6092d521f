"""`dialler scoring`: explain a claimant's score; check a rules file against the demo data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import click

from activities.outreach import OutreachActivities
from adapters.databases import dialler_engine, replica_engine
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from adapters.rules_file import RulesFileError, load_rules_file
from cli.common import settings_or_exit
from config.settings import Settings
from domain.rules import DiallerRules
from schemas.outreach import Assessment, AssessRequest, LoadFactsRequest


def _rules(settings: Settings, path: Path | None) -> DiallerRules:
    try:
        return load_rules_file(path or settings.rules_file)
    except RulesFileError as error:
        raise click.ClickException(str(error)) from None


async def _assess_many(
    settings: Settings, rules: DiallerRules, user_ids: list[int]
) -> list[Assessment]:
    dialler, replica = dialler_engine(settings, pool_size=4), replica_engine(settings, pool_size=4)
    activities = OutreachActivities(dialler, replica, rules)
    now = datetime.now(UTC)
    try:
        results = []
        for user_id in user_ids:
            facts = await activities.load_facts(LoadFactsRequest(user_id))
            results.append(await activities.assess(AssessRequest(facts, now)))
        return results
    finally:
        await dialler.dispose()
        await replica.dispose()


def _print(assessment: Assessment) -> None:
    when = assessment.not_before.isoformat(timespec="minutes") if assessment.not_before else "never"
    click.echo(f"claimant {assessment.user_id}: stage {assessment.stage.value}")
    click.echo(f"  score {assessment.score:.1f}")
    for factor in assessment.factors:
        click.echo(f"    {factor.contribution:+7.1f}  {factor.name:<16} {factor.detail}")
    click.echo(f"  not before {when}: {assessment.not_before_reason}")
    if assessment.people_only:
        click.echo("  routed to people only (vulnerable)")


@click.group()
def scoring() -> None:
    """Priority scoring and contact rules."""


@scoring.command()
@click.argument("user_id", type=int)
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), default=None,
              help="A rules file to try instead of RULES_FILE.")  # fmt: skip
def explain(user_id: int, rules_path: Path | None) -> None:
    """Why this claimant, why now, why this score."""
    settings = settings_or_exit()
    (assessment,) = asyncio.run(_assess_many(settings, _rules(settings, rules_path), [user_id]))
    _print(assessment)


@scoring.command(name="test")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), default=None,
              help="A rules file to check instead of RULES_FILE.")  # fmt: skip
@click.option("--top", default=5, show_default=True, help="Claimants shown per queue.")
@click.option("--candidates", default=200, show_default=True,
              help="Claimants assessed per queue (lowest ids first).")  # fmt: skip
def test_rules(rules_path: Path | None, top: int, candidates: int) -> None:
    """Validate the rules file, then print the top of each queue on the local data."""
    settings = settings_or_exit()
    rules = _rules(settings, rules_path)
    click.echo(f"rules file OK: {rules_path or settings.rules_file}")

    async def run() -> dict[str, list[Assessment]]:
        dialler, replica = dialler_engine(settings, pool_size=2), replica_engine(settings)
        try:
            members = {
                "callback": await due_callback_user_ids(dialler, replica, datetime.now(UTC)),
                "unsigned": await unsigned_user_ids(replica),
                "outstanding": await outstanding_user_ids(replica),
            }
        finally:
            await dialler.dispose()
            await replica.dispose()
        ranked = {}
        for queue, ids in members.items():
            assessed = await _assess_many(settings, rules, sorted(ids)[:candidates])
            in_queue = [a for a in assessed if a.stage.value == queue]
            ranked[queue] = sorted(in_queue, key=lambda a: a.score, reverse=True)[:top]
        return ranked

    for queue, best in asyncio.run(run()).items():
        click.echo(f"\n{queue}: top {len(best)}")
        for assessment in best:
            factors = ", ".join(
                f"{f.name} {f.contribution:+.0f}" for f in assessment.factors if f.contribution
            )
            click.echo(f"  {assessment.user_id:>8}  {assessment.score:7.1f}  {factors}")
