"""The rules: view the version in force and its history, edit with validation, preview the
queues, save as a new version.

- `GET /supervisor/rules`: the version in force (who saved it, when, why), the editor
  (`?from=N` loads version N's text into it, to go back to it), and the history.
- `POST /supervisor/rules/preview`: checks the draft, then shows the top of each queue under
  the rules in force and under the draft, side by side (`services.rules_preview`).
- `POST /supervisor/rules`: saves the draft as a new version (`services.rules_editing`):
  only a draft whose preview was shown (its sha256 comes back with the form) and only over
  the version it was edited from. Then 303 back to the page, which says the version is in
  force and links to the re-scoring in the Temporal UI.
- `GET /supervisor/rules/versions/<n>`: any version's text (0: the rules file) and its
  differences from the version in force.
- `POST /supervisor/rules/splits`: start a live split of the score (`services.live_split`): a
  saved version other than the one in force scores a share of claimants; 303 back to the
  page's split panel, which links to the re-scoring and to the arms on the analytics page.
  A form that cannot be used comes back with its problems (422); a split already running,
  409. `POST /supervisor/rules/splits/<id>/end` ends it (409 when it is not running).

A draft that cannot be saved comes back in the editor, unchanged, with every problem (422).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, redirect, render_template, request
from quart.typing import ResponseReturnValue

from adapters.rules_source import FILE_VERSION
from adapters.rules_versions import sha256_of
from services.live_split import SplitRefused
from services.rules_editing import Actor, DraftRefused, Shown, check_draft
from services.rules_preview import Preview
from web.auth.access import supervisor
from web.auth.identity import require_agent
from web.converters import query_int
from web.errors import APIError
from web.services import services
from web.temporal_links import visibility_url
from workflows.rules_rollout_client import rollout_id_for, split_rollout_id_for

blueprint = Blueprint("supervisor_rules", __name__)

HISTORY_SHOWN = 100
MAX_VERSION = 2**63 - 1


@dataclass(frozen=True)
class Draft:
    text: str
    note: str
    base_version: int | None  # None: the form did not say (a stale or forged form)
    previewed: str  # the sha256 of the text last previewed, "" for none


@dataclass(frozen=True)
class SplitForm:
    """The split panel's form as it was sent (shown again with its problems)."""

    version: int | None = None
    share: str = "10"
    note: str = ""


@dataclass(frozen=True)
class SplitNotice:
    """What the page says after a split started or ended."""

    split_id: int
    change: str  # "started" or "ended"
    rollout_started: bool
    rollout_url: str


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "hunk", "file" or "same"
    text: str


def _diff(old: Shown, new: Shown) -> list[DiffLine]:
    lines = difflib.unified_diff(
        old.text.splitlines(),
        new.text.splitlines(),
        fromfile=f"version {old.version} (in force)",
        tofile=f"version {new.version}",
        lineterm="",
    )
    kinds = {"+++": "file", "---": "file", "@@": "hunk", "+": "add", "-": "remove"}
    shown = []
    for line in lines:
        kind = next((k for prefix, k in kinds.items() if line.startswith(prefix)), "same")
        shown.append(DiffLine(kind, line))
    return shown


def _base_version(in_force: Shown) -> int:
    """What a save must be made over: the newest saved version, which is the one in force
    unless it could not be put in force (then a fix is saved over it)."""
    rejected = services().rules_source().rejected
    return max(in_force.version, rejected.version) if rejected else in_force.version


def _rollout_url(version: int) -> str:
    settings = services().settings
    return visibility_url(settings, f"WorkflowId = '{rollout_id_for(version)}'")


async def _draft() -> Draft:
    form = await request.form
    base = _version_of(str(form.get("base_version", "")))
    return Draft(
        text=str(form.get("text", "")).replace("\r\n", "\n"),
        note=str(form.get("note", "")),
        base_version=base,
        previewed=str(form.get("previewed", "")),
    )


def _version_of(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _split_notice() -> SplitNotice | None:
    split_id = query_int("split", 0, maximum=MAX_VERSION)
    change = request.args.get("change", "")
    if not split_id or change not in ("started", "ended"):
        return None
    query = f"WorkflowId = '{split_rollout_id_for(split_id, change)}'"
    return SplitNotice(
        split_id,
        change,
        request.args.get("rollout") == "started",
        visibility_url(services().settings, query),
    )


async def _page(
    draft: Draft | None = None,
    *,
    status: int = 200,
    problems: dict[str, list[str]] | None = None,
    preview: Preview | None = None,
    loaded_from: int | None = None,
    saved: int | None = None,
    rollout: str | None = None,
    split_form: SplitForm | None = None,
    split_problems: dict[str, list[str]] | None = None,
    split_notice: SplitNotice | None = None,
) -> Response:
    deps = services()
    editor = deps.rules_editor()
    in_force = await editor.in_force()
    if draft is None:
        draft = Draft(in_force.text, "", _base_version(in_force), "")
    splits = await deps.live_splits().overview()
    page = await render_template(
        "supervisor/rules.html",
        section="rules",
        in_force=in_force,
        rejected=deps.rules_source().rejected,
        history=await editor.history(HISTORY_SHOWN),
        draft=draft,
        problems=problems or {},
        preview=preview,
        loaded_from=loaded_from,
        saved=saved,
        rollout=rollout,
        rollout_url=_rollout_url(saved) if saved is not None else None,
        file_version=FILE_VERSION,
        splits=splits,
        split_form=split_form or SplitForm(),
        split_problems=split_problems or {},
        split_notice=split_notice,
    )
    return Response(page, status=status, mimetype="text/html")


@blueprint.get("/supervisor/rules")
@supervisor()
async def rules_page() -> ResponseReturnValue:
    saved = query_int("saved", 0, maximum=MAX_VERSION) or None
    rollout = request.args.get("rollout") if saved else None
    loaded_from = query_int("from", -1, maximum=MAX_VERSION)
    if loaded_from < 0:
        return await _page(saved=saved, rollout=rollout, split_notice=_split_notice())
    editor = services().rules_editor()
    shown = await editor.shown(loaded_from)
    if shown is None:
        raise APIError(404, "not_found", f"There is no rules version {loaded_from}.")
    in_force = await editor.in_force()
    draft = Draft(shown.text, f"back to version {shown.version}", _base_version(in_force), "")
    return await _page(draft, loaded_from=shown.version)


@blueprint.post("/supervisor/rules/preview")
@supervisor()
async def preview() -> ResponseReturnValue:
    draft = await _draft()
    try:
        edited = check_draft(draft.text)
    except DraftRefused as refused:
        return await _page(draft, status=422, problems=refused.problems)
    deps = services()
    in_force = await deps.rules_source().newest()
    result = await deps.rules_preview().compare(in_force.rules, edited)
    previewed = Draft(draft.text, draft.note, draft.base_version, sha256_of(draft.text))
    return await _page(previewed, preview=result)


@blueprint.post("/supervisor/rules")
@supervisor()
async def save() -> ResponseReturnValue:
    draft = await _draft()
    agent = require_agent()
    problems: dict[str, list[str]] = {}
    if draft.base_version is None:
        problems["text"] = ["the form is out of date: reload the page and edit again"]
    elif draft.previewed != sha256_of(draft.text):
        problems["text"] = ["preview the queues with this text before saving it"]
    if problems:
        return await _page(draft, status=422, problems=problems)
    actor = Actor("agent", str(agent.id), agent_id=agent.id, ip_address=request.remote_addr)
    try:
        saved = (
            await services()
            .rules_editor()
            .save(draft.text, draft.note, actor=actor, base_version=draft.base_version)
        )
    except DraftRefused as refused:
        kept = Draft(draft.text, draft.note, draft.base_version, "")
        return await _page(kept, status=422, problems=refused.problems)
    rollout = "started" if saved.rollout_id is not None else "failed"
    return redirect(f"/supervisor/rules?saved={saved.version.id}&rollout={rollout}", 303)


@blueprint.get("/supervisor/rules/versions/<int:version_id>")
@supervisor()
async def version_page(version_id: int) -> ResponseReturnValue:
    editor = services().rules_editor()
    shown = await editor.shown(version_id)
    if shown is None:
        raise APIError(404, "not_found", f"There is no rules version {version_id}.")
    in_force = await editor.in_force()
    context: dict[str, Any] = {
        "section": "rules",
        "shown": shown,
        "in_force": in_force,
        "diff": [] if shown.version == in_force.version else _diff(in_force, shown),
    }
    return await render_template("supervisor/rules_version.html", **context)


def _actor() -> Actor:
    agent = require_agent()
    return Actor("agent", str(agent.id), agent_id=agent.id, ip_address=request.remote_addr)


def _changed(split_id: int, change: str, rollout_id: str | None) -> ResponseReturnValue:
    rollout = "started" if rollout_id is not None else "failed"
    return redirect(
        f"/supervisor/rules?split={split_id}&change={change}&rollout={rollout}#rules-split", 303
    )


@blueprint.post("/supervisor/rules/splits")
@supervisor()
async def start_split() -> ResponseReturnValue:
    form = await request.form
    sent = SplitForm(
        _version_of(str(form.get("version", ""))),
        str(form.get("share", ""))[:20],
        str(form.get("note", "")),
    )
    try:
        changed = (
            await services()
            .live_splits()
            .start(sent.version, sent.share, sent.note, actor=_actor())
        )
    except SplitRefused as refused:
        return await _page(status=refused.status, split_form=sent, split_problems=refused.problems)
    return _changed(changed.split.id, "started", changed.rollout_id)


@blueprint.post("/supervisor/rules/splits/<int:split_id>/end")
@supervisor()
async def end_split(split_id: int) -> ResponseReturnValue:
    try:
        changed = await services().live_splits().end(split_id, actor=_actor())
    except SplitRefused as refused:
        return await _page(status=refused.status, split_problems=refused.problems)
    return _changed(changed.split.id, "ended", changed.rollout_id)
