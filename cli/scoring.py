"""`dialler scoring`: explain a claimant's score; check a rules file against the local data;
the saved versions of the rules (the rules page's history, for operators).

dialler scoring explain USER_ID [--rules FILE]     why this claimant, why now, why this score
dialler scoring test [--rules FILE]                the top of each queue: rules in force vs FILE
dialler scoring evaluate --rules FILE --from D --to D   past contacts replayed: in force vs FILE
dialler scoring rules-history                      the saved versions, newest first
dialler scoring rules-show [VERSION]               a version's text (default: the one in force)
dialler scoring rules-save FILE --note T --by N    save FILE as a new version and re-score
dialler scoring rules-rollout VERSION              start the re-scoring of a version again
dialler scoring learn [--days N]                   learn the contact and conversion rates now
dialler scoring rates [--dimension D] [--versions] the newest learned rates, with intervals
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.learning import LearningActivities
from adapters import learned_rates
from adapters.ai_presence import ai_presence
from adapters.databases import dialler_engine, replica_engine
from adapters.redis_client import connect_redis
from adapters.rules_file import RulesFileError, load_rules_file, read_rules_text, rules_source
from adapters.rules_source import RulesSource
from adapters.scoring_splits import SplitSource
from adapters.temporal import connect_temporal
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import Settings
from domain.attribution import report_period
from domain.learned_rates import K_MAX, WEEKDAYS
from domain.rules import DiallerRules
from domain.scoring_evaluation import RESAMPLES, SEED, Lift
from schemas.learned_rates import (
    EMPTY,
    REPORTING_ONLY,
    Dimension,
    LearnedRate,
    LearnRatesInput,
    LearnRatesResult,
    RateTable,
    RateVersion,
)
from schemas.outreach import Assessment
from services.rules_editing import Actor, DraftRefused, RulesEditor
from services.rules_preview import Ranked, RulesPreview
from services.scoring_evaluation import EvaluationReport, ScoringEvaluation
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
    if assessment.score_arm is not None:
        scored = (
            "the candidate rules" if assessment.score_arm == "candidate" else "the rules in force"
        )
        click.echo(f"  live split: {assessment.score_arm} arm (scored by {scored})")
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
        # the rules in force are explained as the worker applies them, live split included
        splits = None if tried else SplitSource(dialler)
        preview = RulesPreview(dialler, replica, ai=ai_presence(settings), splits=splits)
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


def _day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30",
            param_hint=option,
        ) from None


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _lift_row(lift: Lift) -> str:
    if lift.lift is None or lift.low is None or lift.high is None:
        shown, interval = "-", lift.note
    else:
        shown = f"{lift.lift * 100:+.1f}"
        interval = f"[{lift.low * 100:+.1f}, {lift.high * 100:+.1f}]"
    return (
        f"{lift.name:<12}{lift.contacts:>9,}{lift.converters:>10,}{lift.days:>6}{lift.k:>7,}"
        f"{_percent(lift.current_rate):>12}{_percent(lift.new_rate):>10}{shown:>11}  {interval}"
    )


def _print_evaluation(report: EvaluationReport, version: int, path: Path) -> None:
    e = report.evaluation
    click.echo(
        f"scoring evaluate {report.first_day} to {report.last_day} (UK days): "
        f"the rules in force (version {version}) vs NEW ({path})"
    )
    click.echo(
        f"{report.calls:,} calls with an outcome = {report.contacts:,} contacts "
        f"(a claimant called in a queue on a day); {e.skipped:,} could not be replayed"
    )
    click.echo(
        f"\n{'queue':<12}{'contacts':>9}{'converted':>10}{'days':>6}{'k':>7}"
        f"{'top-k now':>12}{'top-k NEW':>10}{'lift (pp)':>11}  {e.confidence:.0%} interval"
    )
    for lift in [*e.queues, e.overall]:
        click.echo(_lift_row(lift))
    click.echo(f"\n{e.overall.verdict}")
    click.echo(
        "\nk: a queue's contacts per day. top-k: the share of converters among the k best "
        "scores of\nthe range's contacts, ordered by each rule set (ties share their places). "
        "lift: NEW minus\nnow, in percentage points; overall adds up each queue's top k. "
        f"interval: a percentile\nbootstrap of the lift over {e.resamples:,} resamples of the "
        f"contacts within each queue (seed {e.seed}).\nConverted: a signature or document "
        "credited to one of the contact's calls. The claimants'\nfacts are read today and "
        "rewound to the contact; their contact history is today's."
    )


@scoring.command(name="evaluate")
@click.option("--rules", "rules_path", required=True, type=click.Path(path_type=Path),
              help="The new rules file (NEW) to compare with the rules in force.")  # fmt: skip
@click.option("--from", "first", required=True, metavar="DATE", help="First day, YYYY-MM-DD.")
@click.option("--to", "last", required=True, metavar="DATE", help="Last day (included).")
@click.option("--resamples", default=RESAMPLES, show_default=True,
              type=click.IntRange(100, 100_000), help="Bootstrap resamples.")  # fmt: skip
@click.option("--seed", default=SEED, show_default=True, help="The bootstrap's random seed.")
def evaluate(rules_path: Path, first: str, last: str, resamples: int, seed: int) -> None:
    """Replay the contacts made --from to --to (UK days, both included) under the rules in
    force and under NEW: which ordering puts the claimants who converted first? Per queue
    and overall: each ordering's top-k conversion rate (k = the queue's contacts per day),
    the lift of NEW in percentage points with a 95% bootstrap interval, and a verdict.
    See services/scoring_evaluation.py for the method and its limits."""
    first_day, last_day = _day("--from", first), _day("--to", last)
    try:
        report_period(first_day, last_day)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--to") from None
    settings = settings_or_exit()
    new = _file_rules(rules_path)

    async def work(
        dialler: AsyncEngine, replica: AsyncEngine, source: RulesSource
    ) -> tuple[EvaluationReport, int]:
        in_force = await source.newest()
        evaluation = ScoringEvaluation(dialler, replica)
        found = await evaluation.run(
            in_force.rules, new, first_day, last_day, resamples=resamples, seed=seed
        )
        return found, in_force.version

    found, version = _run(settings, work)
    _print_evaluation(found, version, rules_path)


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


# --- the learned rates (issue 14): `learn` and `rates` -----------------------------------------


def _learning_databases(
    settings: Settings, work: Callable[[AsyncEngine, AsyncEngine], Awaitable[Result]]
) -> Result:
    """`work` with the two databases (no rules needed)."""

    async def run() -> Result:
        dialler, replica = dialler_engine(settings, pool_size=4), replica_engine(settings)
        try:
            return await work(dialler, replica)
        finally:
            await dialler.dispose()
            await replica.dispose()

    return asyncio.run(run())


def _k(strength: float) -> str:
    if strength >= K_MAX:
        return "all the way (no difference beyond chance)"
    return f"{strength:,.0f} attempts"


def _share(rate: float) -> str:
    return f"{rate * 100:5.1f}%"


def _rate_with_interval(rate: float, low: float, high: float) -> str:
    return f"{_share(rate)} ({low * 100:4.1f}-{high * 100:5.1f})"


def _segment_order(dimension: str, rates: list[LearnedRate]) -> list[LearnedRate]:
    """Hours and weekdays in their own order; other segments by attempts, most first."""
    if dimension == Dimension.HOUR.value:
        return sorted(rates, key=lambda r: r.segment)
    if dimension == Dimension.WEEKDAY.value:
        return sorted(rates, key=lambda r: WEEKDAYS.index(r.segment) if r.segment in
                      WEEKDAYS else len(WEEKDAYS))  # fmt: skip
    return rates


def _print_rates(table: RateTable, only: str | None = None) -> None:
    computed = f"{table.computed_at:%Y-%m-%d %H:%M %Z}" if table.computed_at else "?"
    click.echo(f"learned rates, version {table.version_id} (computed {computed})")
    click.echo(
        "contact: reached the claimant; conversion: a signature or documents credited; "
        "95% intervals (Jeffreys) in brackets; shrunk: towards the overall rate"
    )
    header = (
        f"  {'segment':<32}{'attempts':>10}  {'contact':<22}{'shrunk':>7}  "
        f"{'conversion':<22}{'shrunk':>7}"
    )
    dimensions = [d.value for d in Dimension if only is None or d.value == only]
    for dimension in dimensions:
        rates = _segment_order(dimension, table.dimension(dimension))
        if not rates:
            continue
        only_shown = dimension in REPORTING_ONLY
        note = "  (reporting only: never a factor of the score)" if only_shown else ""
        click.echo(f"\n{dimension}{note}")
        click.echo(header)
        for r in rates:
            click.echo(
                f"  {r.segment[:32]:<32}{r.attempts:>10,}  "
                f"{_rate_with_interval(r.contact_rate, r.contact_low, r.contact_high):<22}"
                f"{_share(r.shrunk_contact_rate):>7}  "
                f"{_rate_with_interval(r.conversion_rate, r.conversion_low, r.conversion_high):<22}"
                f"{_share(r.shrunk_conversion_rate):>7}"
            )


@scoring.command(name="learn")
@click.option("--days", type=click.IntRange(min=1, max=3650), default=180, show_default=True,
              help="The window: attempts of the last DAYS days.")  # fmt: skip
@click.option("--prior-strength", type=click.FloatRange(min=0, max=1e6), default=None,
              help="Shrink every dimension with this k (attempts) instead of one chosen "
                   "from the data.")  # fmt: skip
@click.option("--dimension", type=click.Choice([d.value for d in Dimension]), default=None,
              help="Print only this dimension's rates.")  # fmt: skip
def learn(days: int, prior_strength: float | None, dimension: str | None) -> None:
    """Learn the contact and conversion rates now, as the nightly job does (its three
    steps, run in this process), save them as a new version and print them."""
    settings = settings_or_exit()

    async def work(
        dialler: AsyncEngine, replica: AsyncEngine
    ) -> tuple[LearnRatesResult, RateTable]:
        given = LearnRatesInput(window_days=days, prior_strength=prior_strength)
        result = await LearningActivities(dialler, replica).run_now(given, datetime.now(UTC))
        async with dialler.connect() as conn:
            return result, await learned_rates.rates_of(conn, result.version_id)

    result, table = _learning_databases(settings, work)
    click.echo(
        f"learned from {result.attempts:,} attempts of {result.claimants:,} claimants "
        f"({result.window_start:%Y-%m-%d} to {result.window_end:%Y-%m-%d}) "
        f"in {result.seconds:.1f}s: version {result.version_id}, {result.segments} segments"
    )
    for prior in result.priors:
        click.echo(
            f"  {prior.dimension}: shrunk with k = {_k(prior.contact)} (contact), "
            f"{_k(prior.conversion)} (conversion), chosen by {prior.chosen_by}"
        )
    click.echo("")
    _print_rates(table, dimension)


@scoring.command(name="rates")
@click.option("--dimension", type=click.Choice([d.value for d in Dimension]), default=None,
              help="Show only this dimension.")  # fmt: skip
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="A saved version instead of the newest.")  # fmt: skip
@click.option("--versions", "list_versions", is_flag=True,
              help="List the saved versions, newest first, instead.")  # fmt: skip
def rates(dimension: str | None, version: int | None, list_versions: bool) -> None:
    """The newest learned rates (what the scorer reads), each with its 95% interval and
    the rate shrunk towards the overall one."""
    settings = settings_or_exit()

    async def work(
        dialler: AsyncEngine, replica: AsyncEngine
    ) -> tuple[RateTable, list[RateVersion]]:
        async with dialler.connect() as conn:
            if list_versions:
                return EMPTY, await learned_rates.versions(conn, limit=50)
            if version is not None:
                return await learned_rates.rates_of(conn, version), []
            return await learned_rates.newest_rates(conn), []

    table, versions = _learning_databases(settings, work)
    if list_versions:
        if not versions:
            click.echo("no learned rates saved yet")
        for v in versions:
            click.echo(
                f"{v.id:>6}  {v.computed_at:%Y-%m-%d %H:%M %Z}  {v.window_start:%Y-%m-%d} to "
                f"{v.window_end:%Y-%m-%d}  {v.attempts:>10,} attempts  {v.segments:>4} segments"
                f"  {v.seconds:7.1f}s"
            )
        return
    if table.version_id is None:
        if version is not None:
            raise click.ClickException(f"no learned rates version {version}")
        click.echo(
            "no learned rates yet: the nightly job saves them (or run `dialler scoring learn`)"
        )
        return
    _print_rates(table, dimension)
