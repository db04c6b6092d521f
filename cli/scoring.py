"""`dialler scoring`: explain a claimant's score; check a rules file against the local data;
the saved versions of the rules (the rules page's history, for operators).

dialler scoring explain USER_ID [--rules FILE]     why this claimant, why now, why this score
dialler scoring test [--rules FILE]                the top of each queue: rules in force vs FILE
dialler scoring rules-history                      the saved versions, newest first
dialler scoring rules-show [VERSION]               a version's text (default: the one in force)
dialler scoring rules-save FILE --note T --by N    save FILE as a new version and re-score
dialler scoring rules-rollout VERSION              start the re-scoring of a version again
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ai_presence import ai_presence
from adapters.databases import dialler_engine, replica_engine
from adapters.redis_client import connect_redis
from adapters.rules_file import RulesFileError, load_rules_file, read_rules_text, rules_source
from adapters.rules_source import RulesSource
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from domain.rules import DiallerRules
from schemas.outreach import Assessment
from services.rules_editing import Actor, DraftRefused, RulesEditor
from services.rules_preview import Ranked, RulesPreview
from workflows.rules_rollout_client import RolloutUnavailable, RulesRolloutClient

Result = TypeVar("Result")


def _file_rules(path: Path) -> DiallerRules:
    try:
        return load_rules_file(path)
    except RulesFileError as error:
        raise click.ClickException(str(error)) from None


def _run(
    settings: Settings, work: Callable[[AsyncEngine, AsyncEngine, RulesSource], Awaitable[Result]]
) -> Result:
    """`work` with the two databases and the rules in force (newest version, else the file)."""

    async def run() -> Result:
        dialler, replica = dialler_engine(settings, pool_size=8), replica_engine(settings)
        try:
            source = rules_source(dialler, settings.rules_file)
            await source.newest()
            return await work(dialler, replica, source)
        finally:
            await dialler.dispose()
            await replica.dispose()

    try:
        return asyncio.run(run())
    except RulesFileError as error:
        raise click.ClickException(str(error)) from None


def _print(assessment: Assessment) -> None:
    when = assessment.not_before.isoformat(timespec="minutes") if assessment.not_before else "never"
    click.echo(f"claimant {assessment.user_id}: stage {assessment.stage.value}")
    click.echo(f"  score {assessment.score:.1f}")
    for factor in assessment.factors:
        click.echo(f"    {factor.contribution:+7.1f}  {factor.name:<16} {factor.detail}")
    click.echo(f"  not before {when}: {assessment.not_before_reason}")
    if assessment.routing is not None:
        who = "the AI" if assessment.routing.to_ai else "a person"
        click.echo(f"  contact by {who}: {assessment.routing.reason}")


def _was(row: Ranked) -> str:
    if row.other_rank is None:
        return f"new ({row.other_note})" if row.other_note else "new"
    if row.movement == 0:
        return "="
    arrow = "up" if (row.movement or 0) > 0 else "down"
    return f"{arrow} {abs(row.movement or 0)} (was {row.other_rank})"


@click.group()
def scoring() -> None:
    """Priority scoring and contact rules."""


@scoring.command()
@click.argument("user_id", type=int)
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), default=None,
              help="A rules file to try instead of the rules in force.")  # fmt: skip
def explain(user_id: int, rules_path: Path | None) -> None:
    """Why this claimant, why now, why this score."""
    settings = settings_or_exit()
    tried = _file_rules(rules_path) if rules_path else None

    async def work(dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource) -> Assessment:
        rules = tried or await source.current()
        preview = RulesPreview(dialler, replica, ai=ai_presence(settings))
        return await preview.explain(user_id, rules)

    _print(_run(settings, work))


@scoring.command(name="test")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path), default=None,
              help="A rules file to check instead of RULES_FILE.")  # fmt: skip
@click.option("--top", default=5, show_default=True, help="Claimants shown per queue.")
@click.option("--candidates", default=200, show_default=True,
              help="Claimants assessed per queue (its best-scored ready tasks).")  # fmt: skip
def test_rules(rules_path: Path | None, top: int, candidates: int) -> None:
    """Validate a rules file, then show the top of each queue under it, and where each
    claimant stands under the rules in force (the rules page's preview)."""
    settings = settings_or_exit()
    path = rules_path or settings.rules_file
    tried = _file_rules(path)
    click.echo(f"rules file OK: {path}")

    async def work(dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource) -> None:
        in_force = await source.newest()
        preview = await RulesPreview(dialler, replica, candidates=candidates).compare(
            in_force.rules, tried, top=top
        )
        click.echo(
            f"compared with the rules in force (version {in_force.version}); "
            f"{preview.assessed} claimants assessed"
        )
        for queue in preview.queues:
            among = "ready tasks" if queue.from_tasks else "seed query, no tasks yet"
            shown = len(queue.after)
            click.echo(f"\n{queue.queue.value}: top {shown} of {queue.candidates} ({among})")
            for row in queue.after:
                click.echo(f"  {row.rank:>3}  {row.user_id:>8}  {row.score:7.1f}  {_was(row)}")

    _run(settings, work)


@scoring.command(name="rules-history")
@click.option("--limit", default=20, show_default=True, help="Versions shown.")
def rules_history(limit: int) -> None:
    """The saved versions of the rules, newest first, and the one in force."""
    settings = settings_or_exit()

    async def work(dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource) -> None:
        editor = RulesEditor(dialler, source, settings.rules_file, redis=None, rollout=None)
        in_force = await source.newest()
        click.echo(
            f"in force: version {in_force.version}"
            + (" (the rules file)" if in_force.version == 0 else "")
        )
        if source.rejected is not None:
            click.echo(
                f"version {source.rejected.version} is not in force: "
                + "; ".join(source.rejected.problems)
            )
        for version in await editor.history(limit):
            who = version.saved_by_name or "operator"
            click.echo(
                f"  {version.id:>5}  {version.created_at:%Y-%m-%d %H:%M}  {version.sha256[:12]}"
                f"  {who}: {version.note}"
            )
        click.echo("      0  the rules file")

    _run(settings, work)


@scoring.command(name="rules-show")
@click.argument("version", type=int, required=False)
def rules_show(version: int | None) -> None:
    """A version's text (0: the rules file; default: the version in force)."""
    settings = settings_or_exit()

    async def work(dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource) -> str:
        editor = RulesEditor(dialler, source, settings.rules_file, redis=None, rollout=None)
        shown = await (editor.in_force() if version is None else editor.shown(version))
        if shown is None:
            raise click.ClickException(f"no rules version {version}")
        return shown.text

    click.echo(_run(settings, work), nl=False)


@scoring.command(name="rules-save")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--note", required=True, help="Why the rules change (kept with the version).")
@click.option("--by", "by", required=True, help="Who saves it (written to the audit log).")
def rules_save(file: Path, note: str, by: str) -> None:
    """Save FILE as a new version of the rules (checked like the rules page does), put it in
    force in every process and re-score the queues."""
    settings = settings_or_exit()
    try:
        text = read_rules_text(file)
    except RulesFileError as error:
        raise click.ClickException(str(error)) from None

    async def work(dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource) -> None:
        redis = connect_redis(settings.redis_url)
        try:
            client = await connect_temporal(settings)
        except (RuntimeError, OSError) as error:  # saved all the same; re-scored later
            click.echo(f"Temporal is unavailable ({type(error).__name__})")
            rollout = None
        else:
            rollout = RulesRolloutClient.over(client, settings.temporal_task_queue)
        editor = RulesEditor(dialler, source, settings.rules_file, redis=redis, rollout=rollout)
        try:
            saved = await editor.save(
                text, note, actor=Actor("operator", by[:100]), base_version=None
            )
        except DraftRefused as refused:
            problems = [f"{field}: {p}" for field, ps in refused.problems.items() for p in ps]
            raise click.ClickException("not saved:\n  " + "\n  ".join(problems)) from None
        finally:
            await redis.aclose()
        click.echo(f"saved version {saved.version.id} ({saved.version.sha256[:12]})")
        if saved.rollout_id is not None:
            click.echo(f"re-scoring the queues: workflow {saved.rollout_id}")
        else:
            click.echo(f"re-scoring not started: {saved.rollout_problem}")
            click.echo(f"  run: dialler scoring rules-rollout {saved.version.id}")

    _run(settings, work)
    exit_after_temporal()


@scoring.command(name="rules-rollout")
@click.argument("version", type=int)
def rules_rollout(version: int) -> None:
    """Tell every claimant with a task to re-assess under VERSION, and wait until all are told."""
    settings = settings_or_exit()

    async def run() -> None:
        client = await connect_temporal(settings)
        result = await RulesRolloutClient.over(client, settings.temporal_task_queue).run(version)
        click.echo(
            f"rules version {result.version}: {result.told} of {result.claimants} claimants told "
            f"({result.not_running} without a running workflow, {result.refused} refused)"
        )

    try:
        asyncio.run(run())
    except RolloutUnavailable as error:
        raise click.ClickException(str(error)) from None
    exit_after_temporal()
