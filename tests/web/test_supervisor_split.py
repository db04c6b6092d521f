"""The live split on the rules page (/supervisor/rules) and its arms on the analytics page: a
supervisor starts a split for a saved version other than the one in force with a share and a
note (audited, the queues re-scored by a rollout workflow of its own), sees it running, and
ends it (audited, re-scored again); a form that cannot be used comes back with its problems
(422) and nothing is written; a second split while one runs, or ending one that is not
running, is 409. The arms' page shows each arm's contacts, reached and conversions with
statsmodels' difference, interval and p-value. Agents are refused everywhere.

The app runs on databases of its own: the versions saved here must not become the rules of
the other web tests."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from temporalio.client import Client as TemporalClient
from temporalio.testing import WorkflowEnvironment

from adapters import conversions, rules_versions, scoring_splits
from config.settings import Settings
from domain.attribution import Attribution, Contact, Conversion
from schemas import dialler_db as db
from schemas.attribution import ContactKind, ConversionKind
from schemas.enums import AgentRole, Queue
from services.funnel import split_arms
from tests.factories import next_id
from tests.web.conftest import Staff, make_staff, sign_in
from tests.workflows.conftest import scratch_databases, terminate_running, typed_client
from web import create_app

SHIPPED = (Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml").read_text(
    encoding="utf-8"
)
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@dataclass
class World:
    app: Quart
    dialler: AsyncEngine
    temporal: TemporalClient
    candidate: int  # a saved version, not in force
    in_force: int


def _with(key: str, value: str) -> str:
    line = next(line for line in SHIPPED.splitlines() if line.startswith(f"{key} = "))
    return SHIPPED.replace(line, f"{key} = {value}", 1)


@pytest.fixture(scope="module")
async def world(
    settings: Settings, temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    task_queue = f"split-web-{uuid.uuid4().hex[:8]}"  # no worker: a re-scoring only starts
    async with scratch_databases("splitweb") as (dialler, replica):
        versions = []
        for text, note in ((_with("default_lender_boost", "40"), "unlisted lenders first"),
                           (SHIPPED, "back to the shipped rules")):  # fmt: skip
            async with dialler.begin() as conn:
                saved = await rules_versions.save_version(
                    conn, text, saved_by=None, note=note, base_version=None
                )
            versions.append(saved.id)
        app_settings = settings.model_copy(
            update={
                "database_url": dialler.url.render_as_string(hide_password=False),
                "replica_database_url": replica.url.render_as_string(hide_password=False),
                "temporal_address": temporal_env.client.service_client.config.target_host,
                "temporal_task_queue": task_queue,
                "recordings_dir": tmp_path_factory.mktemp("recordings"),
            }
        )
        app = create_app(app_settings)
        async with app.test_app():
            yield World(app, dialler, typed_client(temporal_env), versions[0], versions[1])
        await terminate_running(typed_client(temporal_env), task_queue)


async def _signed_in(world: World, role: AgentRole = AgentRole.SUPERVISOR) -> tuple[Client, Staff]:
    staff = await make_staff(
        world.dialler, role, Queue.UNSIGNED if role is AgentRole.AGENT else None
    )
    client = world.app.test_client()
    assert await sign_in(client, staff) == 303
    return client, staff


async def _csrf(client: Client) -> str:
    page = await (await client.get("/supervisor/rules")).get_data(as_text=True)
    return str(_CSRF.findall(page)[-1])


async def _audits(dialler: AsyncEngine, action: str) -> list[Any]:
    async with dialler.connect() as conn:
        rows = await conn.execute(
            select(db.audit_log).where(db.audit_log.c.action == action).order_by(db.audit_log.c.id)
        )
        return list(rows)


async def _splits(dialler: AsyncEngine) -> int:
    async with dialler.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(db.scoring_splits)) or 0)


async def _running(dialler: AsyncEngine) -> scoring_splits.Split | None:
    async with dialler.connect() as conn:
        return await scoring_splits.running(conn)


async def test_a_supervisor_starts_sees_and_ends_a_split(world: World) -> None:
    client, supervisor = await _signed_in(world)
    page = await (await client.get("/supervisor/rules")).get_data(as_text=True)
    assert 'id="split-form"' in page
    # the candidates: saved versions other than the one in force
    assert f'<option value="{world.candidate}"' in page
    assert f'<option value="{world.in_force}"' not in page

    form = {"csrf_token": await _csrf(client), "version": str(world.candidate), "share": "20",
            "note": "try unlisted lenders first on a fifth"}  # fmt: skip
    response = await client.post("/supervisor/rules/splits", form=form)
    assert response.status_code == 303
    running = await _running(world.dialler)
    assert running is not None
    assert (running.rules_version_id, running.share, running.started_by) == (
        world.candidate, 0.2, supervisor.id)  # fmt: skip
    assert response.headers["Location"] == (
        f"/supervisor/rules?split={running.id}&change=started&rollout=started#rules-split"
    )
    (audit,) = await _audits(world.dialler, "scoring_split_started")
    assert (audit.actor_type, audit.actor_id, audit.subject_id) == (
        "agent", str(supervisor.id), str(running.id))  # fmt: skip
    assert audit.detail == {"split": running.id, "version": world.candidate, "share": 0.2,
                            "note": form["note"]}  # fmt: skip
    # the re-scoring: the rules rollout workflow, a run of its own for this split
    rollout = world.temporal.get_workflow_handle(f"split-rollout-{running.id}-started")
    assert (await rollout.describe()).workflow_type == "RulesRollout"

    page = await (await client.get(response.headers["Location"].split("#")[0])).get_data(
        as_text=True
    )
    assert f"Split {running.id} started." in page
    assert f"split-rollout-{running.id}-started" in page.replace("%27", "'").replace("%20", " ")
    assert 'id="split-running"' in page and 'id="split-form"' not in page
    assert "scores 20 % of claimants" in page
    assert f'href="/supervisor/analytics/splits/{running.id}"' in page

    # a second split while one runs
    again = await client.post(
        "/supervisor/rules/splits", form=dict(form, csrf_token=await _csrf(client))
    )
    assert again.status_code == 409
    assert f"split {running.id} is running" in await again.get_data(as_text=True)
    assert await _splits(world.dialler) == 1

    ended = await client.post(
        f"/supervisor/rules/splits/{running.id}/end", form={"csrf_token": await _csrf(client)}
    )
    assert ended.status_code == 303
    assert ended.headers["Location"] == (
        f"/supervisor/rules?split={running.id}&change=ended&rollout=started#rules-split"
    )
    assert await _running(world.dialler) is None
    (audit,) = await _audits(world.dialler, "scoring_split_ended")
    assert audit.subject_id == str(running.id) and audit.actor_id == str(supervisor.id)
    await world.temporal.get_workflow_handle(f"split-rollout-{running.id}-ended").describe()
    twice = await client.post(
        f"/supervisor/rules/splits/{running.id}/end", form={"csrf_token": await _csrf(client)}
    )
    assert twice.status_code == 409
    assert f"split {running.id} is not running" in await twice.get_data(as_text=True)
    assert len(await _audits(world.dialler, "scoring_split_ended")) == 1
    page = await (await client.get("/supervisor/rules")).get_data(as_text=True)
    assert 'id="split-form"' in page and f'<tr data-split="{running.id}">' in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"share": "80"}, "between 1% and 50%"),
        ({"share": "ten"}, "a percentage between 1% and 50%"),
        ({"share": "nan"}, "a percentage between 1% and 50%"),
        ({"note": "  "}, "say why"),
        ({"note": "two\nlines"}, "one line of plain text"),
        ({"version": "in force"}, "is in force already"),
        ({"version": "999999"}, "no saved rules version 999999"),
        ({"version": "x' OR 1=1"}, "choose the saved version to try"),
    ],
)
async def test_a_form_that_cannot_be_used_changes_nothing(
    world: World, changes: dict[str, str], message: str
) -> None:
    client, _ = await _signed_in(world)
    form = {"csrf_token": await _csrf(client), "version": str(world.candidate), "share": "10",
            "note": "a fair trial"}  # fmt: skip
    if changes.get("version") == "in force":
        changes = {"version": str(world.in_force)}
    before = await _splits(world.dialler)
    response = await client.post("/supervisor/rules/splits", form=dict(form, **changes))
    page = await response.get_data(as_text=True)
    assert response.status_code == 422, page
    assert message in page.replace("&#39;", "'")
    assert 'id="split-problems"' in page
    assert await _splits(world.dialler) == before


async def test_agents_are_refused(world: World) -> None:
    agent, _ = await _signed_in(world, AgentRole.AGENT)
    assert (await agent.get("/supervisor/analytics/splits/1")).status_code == 403
    before = await _splits(world.dialler)
    token = _CSRF.findall(await (await agent.get("/console")).get_data(as_text=True))
    form = {"csrf_token": token[-1] if token else "", "version": str(world.candidate),
            "share": "10", "note": "sneaky"}  # fmt: skip
    assert (await agent.post("/supervisor/rules/splits", form=form)).status_code == 403
    assert (await agent.post("/supervisor/rules/splits/1/end", form=form)).status_code == 403
    assert await _splits(world.dialler) == before


# --- the arms ---------------------------------------------------------------------------------


async def _arm_calls(
    dialler: AsyncEngine, arm: str, claimants: int, reached: int, converted: int, at: datetime
) -> None:
    """`claimants` claimants of `arm` called twice each (the first call answered and bridged
    for the `reached` first ones), with a signature credited to the first call of the
    `converted` first ones."""
    async with dialler.begin() as conn:
        attributions = []
        for n in range(claimants):
            user_id = next_id()
            for call in range(2):
                answered = call == 0 and n < reached
                call_id = await conn.scalar(
                    insert(db.calls)
                    .values(user_id=user_id, queue="unsigned", provider="twilio",
                            to_number="+447700900001", status="completed",
                            started_at=at + timedelta(minutes=n, seconds=call),
                            answered_at=at if answered else None,
                            agent_seconds=60 if answered else 0,
                            disposition="no_answer", score_arm=arm)
                    .returning(db.calls.c.id)
                )  # fmt: skip
                if call == 0 and n < converted:
                    attributions.append(Attribution(
                        Conversion(f"split-{user_id}", user_id, ConversionKind.SIGNED,
                                   f"signature:{user_id}", at + timedelta(hours=1)),
                        Contact(user_id, ContactKind.CALL, str(call_id), at), None))  # fmt: skip
        await conversions.record(conn, attributions)
        # a call from no split, and one of the arm before the split started: in no arm
        for started, score_arm in ((at, None), (at - timedelta(hours=3), arm)):
            await conn.execute(insert(db.calls).values(
                user_id=next_id(), queue="unsigned", provider="manual", to_number="+4477009002",
                status="completed", started_at=started, disposition="no_answer",
                score_arm=score_arm))  # fmt: skip


async def test_the_arms_page_compares_the_arms_with_statsmodels(world: World) -> None:
    async with world.dialler.begin() as conn:
        split = await scoring_splits.start(
            conn, rules_version_id=world.candidate, share=0.25, note="arms", started_by=None
        )
        started = datetime.now(UTC) - timedelta(days=2)
        await conn.execute(update(db.scoring_splits).where(db.scoring_splits.c.id == split.id)
                           .values(started_at=started))  # fmt: skip
        moved = await scoring_splits.split(conn, split.id)
    assert moved is not None
    split = moved
    try:
        at = started + timedelta(hours=1)
        await _arm_calls(world.dialler, "control", 300, reached=150, converted=30, at=at)
        await _arm_calls(world.dialler, "candidate", 100, reached=60, converted=20, at=at)
        found = await split_arms(world.dialler, split, datetime.now(UTC))
        control, candidate = found.comparison.control, found.comparison.candidate
        assert (control.claimants, control.reached_claimants, control.converted_claimants) == (
            300, 150, 30)  # fmt: skip
        assert (control.calls, control.reached_calls, control.conversions) == (600, 150, 30)
        assert (candidate.claimants, candidate.converted_claimants, candidate.calls) == (
            100, 20, 200)  # fmt: skip
        converted = found.comparison.converted
        assert converted.difference == pytest.approx(0.2 - 0.1)
        low, high = confint_proportions_2indep(20, 100, 30, 300, compare="diff")
        assert (converted.low, converted.high) == pytest.approx((low, high))
        assert converted.p_value == pytest.approx(proportions_ztest([20, 30], [100, 300])[1])
        assert converted.significant  # 20 % vs 10 %: the interval is above 0

        client, _ = await _signed_in(world)
        response = await client.get(f"/supervisor/analytics/splits/{split.id}")
        page = await response.get_data(as_text=True)
        assert response.status_code == 200, page
        rows = re.findall(r'<tr data-arm="(\w+)">(.*?)</tr>', page, re.S)
        cells = {arm: re.findall(r'<td class="number">([^<]*)</td>', row) for arm, row in rows}
        assert cells["control"] == ["300", "150", "50.0 %", "30", "10.0 %", "600", "150", "30"]
        assert cells["candidate"] == ["100", "60", "60.0 %", "20", "20.0 %", "200", "60", "20"]
        measure = re.search(r'<tr data-measure="converted">(.*?)</tr>', page, re.S)
        assert measure is not None
        assert "+10.0 pp" in measure.group(1)
        assert f"[{low * 100:+.1f}, {high * 100:+.1f}] pp" in measure.group(1)
        assert "higher for the candidate" in measure.group(1)
        assert "statsmodels" in page
        listed = await (await client.get("/supervisor/analytics")).get_data(as_text=True)
        assert f'href="/supervisor/analytics/splits/{split.id}"' in listed
        assert (await client.get("/supervisor/analytics/splits/999999")).status_code == 404
    finally:
        async with world.dialler.begin() as conn:
            await scoring_splits.end(conn, split.id, ended_by=None)
