"""`dialler scoring evaluate` on a FIXED synthetic history, against the real databases: the
claimants who converted share a trait (a lender outside the lender matrix) that one rule set
rewards (`default_lender_boost = 40`) and the rules file does not (its matrix lenders score
higher), so the replay ranks the rewarding rules above the file's, with an interval above 0;
swapped, below 0; the same rules, no evidence. Deterministic: a seeded generator picks the
converters, the bootstrap has a fixed seed.

History: 10 UK days (2029-03-05 to 2029-03-14, GMT), 24 unsigned claimants called a day,
each once, by hand with an outcome. A third have lender Monzo (unlisted), the rest Santander
(in the matrix). Monzo claimants converted with probability 0.5, the others 0.05: a
signature credited to the call a day later. The converters are signed today (the replay
rewinds them). Databases of their own: the CLI reads the rules in force from the dialler DB."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import conversions
from adapters.rules_file import load_rules_file
from cli.main import main
from config.settings import Settings
from domain.attribution import Attribution, Contact, Conversion
from domain.rules import parse_rules
from schemas import dialler_db as db
from schemas.attribution import ContactKind, ConversionKind
from services.scoring_evaluation import ScoringEvaluation
from tests.factories import add_claimant
from tests.workflows.conftest import scratch_databases

FIRST = date(2029, 3, 5)
DAYS = 10
PER_DAY = 24
REWARDING = "[scoring]\ndefault_lender_boost = 40\n"  # unlisted lenders (Monzo) first


@dataclass
class History:
    dialler: AsyncEngine
    replica: AsyncEngine
    converters: int
    contacts: int


@pytest.fixture(scope="module")
async def history() -> AsyncIterator[History]:
    rng = np.random.default_rng(1414)
    converters = 0
    async with scratch_databases("evaluate") as (dialler, replica):
        async with dialler.begin() as conn:
            agent_id = int(
                await conn.scalar(
                    insert(db.agents)
                    .values(email="evaluate@example.com", display_name="Eve", role="agent")
                    .returning(db.agents.c.id)
                )
                or 0
            )
        attributions = []
        for day in range(DAYS):
            for n in range(PER_DAY):
                trait = n % 3 == 0
                converted = bool(rng.random() < (0.5 if trait else 0.05))
                converters += converted
                user_id = await add_claimant(
                    replica,
                    signed=converted,  # signed since: the replay must rewind it
                    lender="Monzo" if trait else "Santander",
                    born=date(1940 + int(rng.integers(0, 50)), 6, 1),
                    claim_created=datetime(2028, 1, 1) + timedelta(days=int(rng.integers(0, 300))),
                )
                called = datetime.combine(FIRST + timedelta(days=day), datetime.min.time(), UTC)
                called += timedelta(hours=9, minutes=10 * n)
                async with dialler.begin() as conn:
                    call_id = await conn.scalar(
                        insert(db.calls)
                        .values(
                            user_id=user_id, agent_id=agent_id, queue="unsigned",
                            provider="manual", to_number="+447700900001", status="completed",
                            started_at=called, ended_at=called,
                            disposition="promised_to_sign" if converted else "no_answer",
                        )
                        .returning(db.calls.c.id)
                    )  # fmt: skip
                if converted:
                    signed_at = called + timedelta(days=1)
                    attributions.append(
                        Attribution(
                            Conversion(f"evaluate-{user_id}", user_id, ConversionKind.SIGNED,
                                       f"signature:{user_id}", signed_at),
                            Contact(user_id, ContactKind.CALL, str(call_id), called, agent_id,
                                    "unsigned"),
                            None,
                        )
                    )  # fmt: skip
        async with dialler.begin() as conn:
            await conversions.record(conn, attributions)
        yield History(dialler, replica, converters, DAYS * PER_DAY)


def _evaluate(history: History, rules: Path, *args: str) -> Any:
    env = {
        "DATABASE_URL": history.dialler.url.render_as_string(hide_password=False),
        "REPLICA_DATABASE_URL": history.replica.url.render_as_string(hide_password=False),
        "ENVIRONMENT": os.environ.get("ENVIRONMENT", "test"),
    }
    last = FIRST + timedelta(days=DAYS - 1)
    return CliRunner().invoke(
        main,
        ["scoring", "evaluate", "--rules", str(rules), "--from", str(FIRST), "--to", str(last),
         "--resamples", "1000", *args],
        env=env,
        catch_exceptions=False,
    )  # fmt: skip


def test_the_rules_rewarding_the_converters_trait_rank_them_higher(
    history: History, tmp_path: Path
) -> None:
    rules = tmp_path / "new.toml"
    rules.write_text(REWARDING, encoding="utf-8")
    result = _evaluate(history, rules)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "the rules in force (version 0) vs NEW" in out
    assert f"{history.contacts} calls with an outcome = {history.contacts} contacts" in out
    assert "0 could not be replayed" in out
    overall = next(line for line in out.splitlines() if line.startswith("overall"))
    # 240 contacts over 10 days: k = 24
    assert overall.split()[1:5] == [str(history.contacts), str(history.converters), "10", "24"]
    verdict = next(line for line in out.splitlines() if line.startswith(("NEW", "no evidence")))
    assert verdict.startswith("NEW ranks converters higher: lift +"), out
    assert "callback" in out and "no contacts replayed" in out
    assert "percentile" in out and "bootstrap" in out  # the method, said plainly
    print(out)  # for people reading the test log: -s


def test_the_same_rules_are_no_evidence_of_a_difference(
    history: History, settings: Settings
) -> None:
    result = _evaluate(history, settings.rules_file)
    assert result.exit_code == 0, result.output
    assert "\nno evidence of a difference: lift +0.0 pp [+0.0, +0.0]\n" in result.output


async def test_the_worse_rules_rank_them_lower(history: History, settings: Settings) -> None:
    better = parse_rules(REWARDING)
    worse = load_rules_file(settings.rules_file)
    found = await ScoringEvaluation(history.dialler, history.replica).run(
        better, worse, FIRST, FIRST + timedelta(days=DAYS - 1), resamples=1000
    )
    overall = found.evaluation.overall
    assert overall.high is not None and overall.high < 0
    assert overall.verdict.startswith("NEW ranks converters lower: lift -")
    unsigned = next(q for q in found.evaluation.queues if q.name == "unsigned")
    assert unsigned.current_rate is not None and unsigned.new_rate is not None
    assert unsigned.current_rate > unsigned.new_rate


def test_bad_dates_are_refused_clearly(history: History, tmp_path: Path) -> None:
    rules = tmp_path / "new.toml"
    rules.write_text(REWARDING, encoding="utf-8")
    env = {"ENVIRONMENT": os.environ.get("ENVIRONMENT", "test")}
    backwards = ["--from", "2029-03-10", "--to", "2029-03-01"]
    result = CliRunner().invoke(
        main, ["scoring", "evaluate", "--rules", str(rules), *backwards], env=env
    )
    assert result.exit_code == 2 and "is before --from" in result.output
    result = CliRunner().invoke(
        main, ["scoring", "evaluate", "--rules", str(rules), "--from", "5 March", "--to", "x"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 2 and "is not a date" in result.output
