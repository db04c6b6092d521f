"""The rules page (/supervisor/rules): a supervisor sees the version in force and its history;
an edit that is not valid rules or crosses a compliance limit comes back in the editor with
its message (422), unchanged, and nothing is saved; the preview shows the top of each queue
before and after; saving (only a previewed text, only over the version edited) writes a
version and its audit entry and puts it in force; any version can be viewed, with its
differences, and loaded back into the editor. Agents are refused.

The app runs on databases of its own: the versions saved here must not become the rules of
the other web tests."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from adapters import rules_versions
from adapters.rules_versions import sha256_of
from config.settings import Settings
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.factories import add_claimant
from tests.web.conftest import Staff, make_staff, sign_in
from tests.workflows.conftest import scratch_databases, terminate_running, typed_client
from web import create_app
from web.services import EXTENSION_KEY, WebServices

SHIPPED = (Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml").read_text(
    encoding="utf-8"
)
_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
_BASE = re.compile(r'name="base_version" value="(\d*)"')
_PREVIEWED = re.compile(r'name="previewed" value="([0-9a-f]*)"')


@dataclass
class World:
    app: Quart
    dialler: AsyncEngine
    replica: AsyncEngine
    task_queue: str


@pytest.fixture(scope="module")
async def world(
    settings: Settings, temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    task_queue = f"rules-web-{uuid.uuid4().hex[:8]}"  # no worker: a rollout only starts
    async with scratch_databases("rulesweb") as (dialler, replica):
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
            yield World(app, dialler, replica, task_queue)
        await terminate_running(typed_client(temporal_env), task_queue)


async def _signed_in(world: World, role: AgentRole = AgentRole.SUPERVISOR) -> tuple[Client, Staff]:
    staff = await make_staff(
        world.dialler, role, Queue.UNSIGNED if role is AgentRole.AGENT else None
    )
    client = world.app.test_client()
    assert await sign_in(client, staff) == 303
    return client, staff


async def _versions(dialler: AsyncEngine) -> int:
    async with dialler.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(db.rules_versions)) or 0)


async def _form(client: Client) -> dict[str, str]:
    """The editor as the page shows it now: text in force, its base version, a CSRF token."""
    page = await (await client.get("/supervisor/rules")).get_data(as_text=True)
    text = re.search(r'<textarea id="rules-text"[^>]*>(.*?)</textarea>', page, re.S)
    assert text is not None
    return {
        "csrf_token": _CSRF.findall(page)[-1],
        "base_version": _BASE.search(page).group(1),  # type: ignore[union-attr]
        "text": _unescape(text.group(1)),
        "note": "",
        "previewed": "",
    }


def _unescape(html: str) -> str:
    return (
        html.replace("&#34;", '"').replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
        .replace("&amp;", "&")
    )  # fmt: skip


def _edited(text: str, key: str, value: str) -> str:
    edited, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
    assert count == 1, key
    return edited


async def _preview(client: Client, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    response = await client.post("/supervisor/rules/preview", form=form)
    page = await response.get_data(as_text=True)
    previewed = _PREVIEWED.search(page)
    after = dict(form, previewed=previewed.group(1) if previewed else "")
    return response.status_code, page, after


async def _save(client: Client, form: dict[str, str], note: str) -> tuple[int, str, str]:
    status, page, previewed = await _preview(client, form)
    assert status == 200, page
    response = await client.post("/supervisor/rules", form=dict(previewed, note=note))
    return response.status_code, response.headers.get("Location", ""), previewed["text"]


def _rows(page: str, table_id: str) -> list[int]:
    table = re.search(rf'<table class="data" id="{table_id}">(.*?)</table>', page, re.S)
    assert table is not None, f"no table {table_id}"
    return [int(u) for u in re.findall(r'<tr data-user-id="(\d+)"', table.group(1))]


# --- viewing ----------------------------------------------------------------------------------


async def test_a_supervisor_sees_the_rules_in_force_and_agents_are_refused(world: World) -> None:
    client, _ = await _signed_in(world)
    response = await client.get("/supervisor/rules")
    page = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert "In force: version" in page
    assert "[scoring.lenders]" in page  # the text in the editor
    assert 'data-version="0"' in page  # the file is version 0 of the history
    assert "Save as a new version" not in page  # only after a preview
    agent, _ = await _signed_in(world, AgentRole.AGENT)
    for path in ("/supervisor/rules", "/supervisor/rules/versions/0"):
        assert (await agent.get(path)).status_code == 403
    form = await _form(client)
    form["csrf_token"] = _CSRF.findall(await (await agent.get("/console")).get_data(as_text=True))[
        0
    ]
    for path in ("/supervisor/rules/preview", "/supervisor/rules"):
        assert (await agent.post(path, form=form)).status_code == 403


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("[scoring.lenders]", "[scoring.lenders"), "not valid TOML"),
        (
            lambda t: _edited(t, "weekday_open", '"07:00"'),
            "calling_windows: weekday_open may not be before 08:00 (DMA hours)",
        ),
        (
            lambda t: _edited(t, "abandoned_call_lock_hours", "48"),
            "contact.abandoned_call_lock_hours",
        ),
        (
            lambda t: _edited(t, "recording_retention_months", "6"),
            "compliance.recording_retention_months",
        ),
        (
            lambda t: _edited(t, "tps_screening_max_age", "{ days = 60 }"),
            "compliance.tps_screening_max_age: at most 28 days",
        ),
        (lambda t: _edited(t, "Santander", '"lots"'), "scoring.lenders.Santander"),
        (lambda t: "", "the rules are empty"),
        (lambda t: t + "# pasted twice\n" * 10_000, "at most 100,000"),
    ],
)
async def test_an_invalid_edit_comes_back_with_its_message_and_nothing_is_saved(
    world: World, change: object, message: str
) -> None:
    client, _ = await _signed_in(world)
    form = await _form(client)
    before = await _versions(world.dialler)
    form["text"] = change(form["text"])  # type: ignore[operator]
    form["note"] = "a try"
    status, page, previewed = await _preview(client, form)
    assert status == 422, page
    assert message in _unescape(page)
    assert 'id="rules-problems"' in page and 'aria-invalid="true"' in page
    assert previewed["previewed"] == ""  # nothing to save from here
    if form["text"]:
        assert form["text"][:2000] in _unescape(page)  # the edit is kept
    # a save posted all the same (a forged form) is refused too
    forged = dict(form, previewed=sha256_of(form["text"]))
    response = await client.post("/supervisor/rules", form=forged)
    assert response.status_code == 422
    assert message in _unescape(await response.get_data(as_text=True))
    assert await _versions(world.dialler) == before


async def test_nul_bytes_are_refused_before_the_page_and_nothing_is_saved(world: World) -> None:
    """The input guard (web/input_guard.py) refuses control characters in any form field,
    naming it, before any view runs; TOML refuses them too (tests/unit/test_rules_limits)."""
    client, _ = await _signed_in(world)
    form = await _form(client)
    before = await _versions(world.dialler)
    form["text"] = form["text"].replace("default_lender_boost = 0", "default_lender_boost = 0\x00")
    form["previewed"] = sha256_of(form["text"])
    form["note"] = "nul"
    for path in ("/supervisor/rules/preview", "/supervisor/rules"):
        response = await client.post(path, form=form, headers={"Accept": "application/json"})
        assert response.status_code == 400
        body = await response.get_json()
        assert "text" in body["error"]["fields"]
    assert await _versions(world.dialler) == before


async def test_a_megabyte_of_text_is_refused_before_the_page_and_nothing_is_saved(
    world: World,
) -> None:
    """Past 100,000 characters a draft comes back with its message (above); a field past
    the form parser's limit (500 kB) is refused before any view runs (413)."""
    client, _ = await _signed_in(world)
    form = await _form(client)
    before = await _versions(world.dialler)
    form["text"] += "#" * 1_000_000
    form["previewed"] = sha256_of(form["text"])
    form["note"] = "huge"
    for path in ("/supervisor/rules/preview", "/supervisor/rules"):
        response = await client.post(path, form=form, headers={"Accept": "application/json"})
        assert response.status_code == 413
    assert await _versions(world.dialler) == before


async def test_a_save_needs_a_preview_of_that_text_a_note_and_a_change(world: World) -> None:
    client, _ = await _signed_in(world)
    form = await _form(client)
    before = await _versions(world.dialler)
    edited = dict(form, text=_edited(form["text"], "conversion_weight", "21"), note="why not")
    # never previewed
    response = await client.post("/supervisor/rules", form=edited)
    assert response.status_code == 422
    assert "preview the queues with this text" in await response.get_data(as_text=True)
    # previewed, then changed again
    _, _, previewed = await _preview(client, edited)
    changed = dict(previewed, text=_edited(edited["text"], "conversion_weight", "22"))
    response = await client.post("/supervisor/rules", form=changed)
    assert response.status_code == 422
    # previewed but no note
    response = await client.post("/supervisor/rules", form=dict(previewed, note=" "))
    assert response.status_code == 422
    assert "say why the rules change" in await response.get_data(as_text=True)
    # the text in force, unchanged
    _, _, same = await _preview(client, dict(form, note="no change"))
    response = await client.post("/supervisor/rules", form=same)
    assert response.status_code == 422
    assert "nothing changed" in await response.get_data(as_text=True)
    assert await _versions(world.dialler) == before


async def test_a_save_over_a_version_saved_meanwhile_is_refused(world: World) -> None:
    first, _ = await _signed_in(world)
    second, _ = await _signed_in(world)
    first_form, second_form = await _form(first), await _form(second)
    status, _, _ = await _save(
        first, dict(first_form, text=_edited(first_form["text"], "conversion_weight", "23")), "one"
    )
    assert status == 303
    count = await _versions(world.dialler)
    text = _edited(second_form["text"], "conversion_weight", "24")
    status, page, previewed = await _preview(second, dict(second_form, text=text))
    response = await second.post("/supervisor/rules", form=dict(previewed, note="two"))
    page = await response.get_data(as_text=True)
    assert response.status_code == 422
    assert "was saved after version" in page
    assert "conversion_weight = 24" in page  # their edit is kept
    assert await _versions(world.dialler) == count


# --- preview and save -------------------------------------------------------------------------


async def _ready_task(dialler: AsyncEngine, user_id: int, score: float) -> None:
    async with dialler.begin() as conn:
        await conn.execute(
            insert(db.call_tasks).values(
                user_id=user_id,
                workflow_id=f"outreach-{user_id}",
                queue=Queue.UNSIGNED.value,
                score=score,
                not_before=func.now(),
                status="ready",
                version=1,
            )
        )


async def test_the_preview_shows_each_queue_before_and_after_and_saving_puts_it_in_force(
    world: World,
) -> None:
    # Two unsigned claimants alike but for their lender: Barclays (+15, listed) ahead of a
    # lender the matrix does not list, until the default boost for unlisted lenders is 40.
    listed = await add_claimant(world.replica, signed=False, pending=1, lender="Barclays")
    unlisted = await add_claimant(world.replica, signed=False, pending=1, lender="Monzo")
    await _ready_task(world.dialler, listed, 90)
    await _ready_task(world.dialler, unlisted, 75)
    client, supervisor = await _signed_in(world)
    form = await _form(client)
    form["text"] = _edited(form["text"], "default_lender_boost", "40")
    form["note"] = "unlisted lenders first for a week"

    status, page, previewed = await _preview(client, form)
    assert status == 200, page
    assert _rows(page, "preview-unsigned-before") == [listed, unlisted]
    assert _rows(page, "preview-unsigned-after") == [unlisted, listed]
    after = re.search(r'id="preview-unsigned-after">(.*?)</table>', page, re.S)
    assert after is not None and "▲ 1" in after.group(1) and "▼ 1" in after.group(1)
    outstanding = re.search(r'id="preview-outstanding"(.*?)</section>', page, re.S)
    assert outstanding is not None and "Nobody in this queue" in outstanding.group(1)
    assert previewed["previewed"] == sha256_of(form["text"])
    assert "Save as a new version" in page
    assert "default_lender_boost = 40" in page  # the draft stays in the editor

    count = await _versions(world.dialler)
    response = await client.post("/supervisor/rules", form=previewed)
    assert response.status_code == 303
    version = count + 1
    assert response.headers["Location"] == f"/supervisor/rules?saved={version}&rollout=started"
    async with world.dialler.connect() as conn:
        row = (
            await conn.execute(select(db.rules_versions).where(db.rules_versions.c.id == version))
        ).one()
        audit = (
            await conn.execute(
                select(db.audit_log).where(
                    db.audit_log.c.action == "rules_saved",
                    db.audit_log.c.subject_id == str(version),
                )
            )
        ).one()
    assert row.text == form["text"] and row.sha256 == sha256_of(form["text"])
    assert row.saved_by == supervisor.id and row.note == form["note"]
    assert (audit.actor_type, audit.actor_id) == ("agent", str(supervisor.id))
    assert audit.subject_type == "rules_version"
    assert audit.detail == {"version": version, "sha256": row.sha256, "note": form["note"]}
    assert "default_lender_boost" not in str(audit.detail)  # never the text
    # in force in this process at once
    deps = world.app.extensions[EXTENSION_KEY]
    assert isinstance(deps, WebServices)
    assert deps.rules().scoring.default_lender_boost == 40
    page = await (await client.get(response.headers["Location"])).get_data(as_text=True)
    assert f"Version {version} is saved and in force" in page
    assert f"In force: version {version}" in page
    assert f"rules-rollout-{version}" in page.replace("%27", "'").replace("%20", " ")
    # the queues now rank under it (preview of the same text: no movement)
    _, page, _ = await _preview(client, dict(await _form(client), note="again"))
    assert _rows(page, "preview-unsigned-before") == [unlisted, listed]


async def test_the_history_lists_versions_and_each_can_be_viewed_diffed_and_loaded(
    world: World,
) -> None:
    client, _ = await _signed_in(world)
    form = await _form(client)
    first_text = _edited(form["text"], "conversion_weight", "31")
    status, _, _ = await _save(client, dict(form, text=first_text), "history one")
    assert status == 303
    form = await _form(client)
    status, _, _ = await _save(
        client, dict(form, text=_edited(form["text"], "conversion_weight", "32")), "history two"
    )
    assert status == 303
    newest = await _versions(world.dialler)
    page = await (await client.get("/supervisor/rules")).get_data(as_text=True)
    listed = [int(v) for v in re.findall(r'<tr data-version="(\d+)"', page)]
    assert listed[:2] == [newest, newest - 1] and listed[-1] == 0
    assert listed == sorted(listed, reverse=True)
    assert "history two" in page and "history one" in page and "Test supervisor" in page

    older = await client.get(f"/supervisor/rules/versions/{newest - 1}")
    older_page = _unescape(await older.get_data(as_text=True))
    assert older.status_code == 200
    assert '<span class="diff-remove">-conversion_weight = 32</span>' in older_page
    assert '<span class="diff-add">+conversion_weight = 31</span>' in older_page
    file_page = await (await client.get("/supervisor/rules/versions/0")).get_data(as_text=True)
    assert "the rules file" in file_page
    assert (await client.get(f"/supervisor/rules/versions/{newest + 1}")).status_code == 404
    assert (await client.get("/supervisor/rules/versions/99999999999999999999")).status_code == 404

    # going back: the older text loads into the editor, over the newest version
    loaded = await client.get(f"/supervisor/rules?from={newest - 1}")
    loaded_page = _unescape(await loaded.get_data(as_text=True))
    assert "conversion_weight = 31" in loaded_page
    assert f'name="base_version" value="{newest}"' in loaded_page
    assert (await client.get("/supervisor/rules?from=99999999")).status_code == 404


async def test_a_newest_version_that_cannot_be_in_force_is_shown_and_can_be_fixed(
    world: World,
) -> None:
    """A version written past the editor (by hand in the database, or saved before a check
    was added to parse_rules): the page says why it is not in force, and saving the rules in
    force over it puts things right."""
    client, _ = await _signed_in(world)
    in_force = await _form(client)
    async with world.dialler.begin() as conn:
        broken = await rules_versions.save_version(
            conn, "[compliance]\nrecording_retention_months = 3\n", saved_by=None,
            note="by hand", base_version=None,
        )  # fmt: skip
    page = _unescape(await (await client.get("/supervisor/rules")).get_data(as_text=True))
    assert 'id="rules-rejected"' in page
    assert f"Version {broken.id} is the newest saved version but it cannot be put in force" in page
    assert "compliance.recording_retention_months" in page
    assert f"In force: version {in_force['base_version']}" in page

    form = await _form(client)
    assert form["base_version"] == str(broken.id)  # a save goes over the broken version
    status, location, _ = await _save(client, dict(form, text=in_force["text"]), "restore")
    assert status == 303, location
    page = await (await client.get(location)).get_data(as_text=True)
    assert f"In force: version {broken.id + 1}" in page
    assert 'id="rules-rejected"' not in page
