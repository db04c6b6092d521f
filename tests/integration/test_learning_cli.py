"""`dialler scoring learn` and `dialler scoring rates` through click's CliRunner against
scratch databases holding the fixed synthetic history of test_learning: nothing to show
before a version exists; `learn` runs the nightly job's steps now, saves a version and
prints every dimension's rates with their intervals and shrunk rates; `rates` shows the
newest version (or one dimension, or an older version, or the list of versions); bad input
exits with a usage error having saved nothing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import create_async_engine

from adapters import learned_rates as store
from cli.main import main
from schemas.learned_rates import RateVersion
from tests.conftest import REDIS_URL
from tests.integration.test_learning import NOW, History, write_history
from tests.workflows.conftest import scratch_databases


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[tuple[dict[str, str], History]]:
    async with scratch_databases("learningcli") as (dialler, replica):
        history = await write_history(dialler, replica)
        yield (
            {
                "DATABASE_URL": dialler.url.render_as_string(hide_password=False),
                "REPLICA_DATABASE_URL": replica.url.render_as_string(hide_password=False),
                "REDIS_URL": REDIS_URL,
                "TEMPORAL_ADDRESS": "127.0.0.1:1",  # never connected
            },
            history,
        )


def scoring(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["scoring", *args], env=env, catch_exceptions=False)


def versions(env: dict[str, str]) -> list[RateVersion]:
    async def read() -> list[RateVersion]:
        engine = create_async_engine(env["DATABASE_URL"])
        try:
            async with engine.connect() as conn:
                return await store.versions(conn)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _row(output: str, segment: str) -> str:
    [line] = [line for line in output.splitlines() if line.strip().startswith(segment + "  ")]
    return line


def test_learn_then_show_the_rates(env: tuple[dict[str, str], History]) -> None:
    settings, history = env
    nothing = scoring(settings, "rates")
    assert nothing.exit_code == 0 and "no learned rates yet" in nothing.output

    # a window reaching back over the whole synthetic history (it ends at NOW)
    days = (datetime.now(UTC) - NOW).days + 181
    learned = scoring(settings, "learn", "--days", str(days))
    assert learned.exit_code == 0, learned.output
    overall = history.truths[("overall", "all")]
    assert f"learned from {overall.attempts:,} attempts of 542 claimants" in learned.output
    [saved] = versions(settings)
    assert f"version {saved.id}, {saved.segments} segments" in learned.output
    assert saved.attempts == overall.attempts and saved.reached == overall.reached
    assert "region: shrunk with k = " in learned.output and "chosen by moments" in learned.output
    assert "all the way (no difference beyond chance)" in learned.output  # hours: none here
    for heading in ("overall", "channel", "queue", "region", "lender", "hour", "weekday"):
        assert f"\n{heading}\n" in learned.output, heading
    assert "\nage_band  (reporting only: never a factor of the score)\n" in learned.output

    shown = scoring(settings, "rates")
    assert shown.exit_code == 0
    assert f"learned rates, version {saved.id}" in shown.output
    scotland = history.truths[("region", "Scotland")]
    row = _row(shown.output, "Scotland")
    # attempts, the contact rate with its interval, shrunk; the same for conversions
    numbers = re.findall(r"[\d,]+(?:\.\d)?", row)
    assert numbers[0] == f"{scotland.attempts:,}"
    assert f"{100 * scotland.reached / scotland.attempts:5.1f}% (" in row
    hours = [line.split()[0] for line in shown.output.split("\nhour\n")[1].split("\n\n")[0]
             .splitlines()[1:]]  # fmt: skip
    assert hours == sorted(hours) and all(len(h) == 2 for h in hours)

    region_only = scoring(settings, "rates", "--dimension", "region")
    assert "\nregion\n" in region_only.output and "\nlender\n" not in region_only.output

    listed = scoring(settings, "rates", "--versions")
    assert listed.exit_code == 0
    assert re.search(rf"^\s*{saved.id}\s", listed.output, re.MULTILINE)
    assert f"{saved.attempts:>10,} attempts" in listed.output

    same = scoring(settings, "rates", "--version", str(saved.id))
    assert same.output == shown.output
    missing = scoring(settings, "rates", "--version", str(saved.id + 100))
    assert missing.exit_code == 1 and f"no learned rates version {saved.id + 100}" in missing.output


@pytest.mark.parametrize(
    "args",
    [("--days", "0"), ("--days", "many"), ("--prior-strength", "-1"), ("--dimension", "postcode")],
)
def test_bad_input_is_a_usage_error_and_saves_nothing(
    env: tuple[dict[str, str], History], args: tuple[str, str]
) -> None:
    settings, _ = env
    before = len(versions(settings))
    refused = scoring(settings, "learn", *args)
    assert refused.exit_code == 2, refused.output
    assert len(versions(settings)) == before
