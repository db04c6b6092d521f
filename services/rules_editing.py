"""Editing the rules: check a draft, save it as a new version, put it in force everywhere.

A draft is saved only if `parse_rules` accepts it (which enforces the compliance limits: DMA
hours, Ofcom's 72-hour lock, retention, TPS screening, PECR 21A) and it differs from the
rules in force; every problem is reported at once, each naming its key. Saving, in one
transaction, appends the version (`adapters.rules_versions`, refused if another version was
saved since the one edited) and its audit entry (version, sha256 and note, never the text).
Then every process is told (`adapters.rules_source.announce_saved`; each also re-checks every
few seconds), and the rollout workflow tells every claimant with a task to re-assess
(`workflows.rules_rollout_client`), so the queues re-order without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger

from adapters import rules_versions
from adapters.audit_log import append_audit
from adapters.rules_file import RulesFileError, read_rules_text
from adapters.rules_source import FILE_VERSION, RulesSource, announce_saved
from adapters.rules_versions import NOTE_MAX_CHARS, RulesVersion, StaleBase, sha256_of
from domain.rules import MAX_RULES_CHARS, DiallerRules, RulesError, parse_rules
from workflows.rules_rollout_client import RolloutUnavailable, RulesRolloutClient

log = get_logger(__name__)

AUDIT_ACTION = "rules_saved"
AUDIT_SUBJECT = "rules_version"


class DraftRefused(Exception):
    """The draft cannot be saved; `problems` maps "text" or "note" to what is wrong."""

    def __init__(self, problems: dict[str, list[str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(p for ps in problems.values() for p in ps))


@dataclass(frozen=True)
class Shown:
    """A version as the rules page shows it; version 0 is the rules file."""

    version: int
    text: str
    sha256: str
    saved_by_name: str | None
    note: str
    saved_at: datetime | None

    @property
    def is_file(self) -> bool:
        return self.version == FILE_VERSION


@dataclass(frozen=True)
class Saved:
    version: RulesVersion
    rollout_id: str | None  # the rollout workflow's id; None when it could not start
    rollout_problem: str | None = None


@dataclass(frozen=True)
class Actor:
    """Who saves: a signed-in supervisor (agent id) or an operator at the command line."""

    audit_type: str  # "agent" or "operator"
    audit_id: str
    agent_id: int | None = None
    ip_address: str | None = None


def check_draft(text: str) -> DiallerRules:
    """The rules a draft text parses to; raises DraftRefused listing every problem (TOML
    itself refuses control characters such as NUL, naming the line and column)."""
    problems: list[str] = []
    if not text.strip():
        problems.append("the rules are empty (an empty file would mean the built-in defaults)")
    elif len(text) > MAX_RULES_CHARS:
        problems.append(f"the text is {len(text):,} characters; at most {MAX_RULES_CHARS:,}")
    if problems:
        raise DraftRefused({"text": problems})
    try:
        return parse_rules(text)
    except RulesError as error:
        raise DraftRefused({"text": error.problems}) from None


def check_note(note: str) -> str:
    note = note.strip()
    if not note:
        raise DraftRefused({"note": ["say why the rules change (it is kept with the version)"]})
    if len(note) > NOTE_MAX_CHARS:
        raise DraftRefused({"note": [f"at most {NOTE_MAX_CHARS} characters"]})
    if not note.isprintable():
        raise DraftRefused({"note": ["one line of plain text (no line breaks or control codes)"]})
    return note


class RulesEditor:
    def __init__(
        self,
        dialler: AsyncEngine,
        source: RulesSource,
        rules_file: Path,
        *,
        redis: Redis | None,
        rollout: RulesRolloutClient | None,
    ) -> None:
        self._dialler = dialler
        self._source = source
        self._rules_file = rules_file
        self._redis = redis
        self._rollout = rollout

    async def in_force(self) -> Shown:
        """The version in force (as this process sees it, checked now) with its text."""
        version = (await self._source.newest()).version
        shown = await self.shown(version)
        assert shown is not None  # the source only puts stored versions in force
        return shown

    async def shown(self, version: int) -> Shown | None:
        """Any version, 0 being the rules file; None when there is no such version."""
        if version == FILE_VERSION:
            try:
                text = read_rules_text(self._rules_file)
            except RulesFileError:
                return None
            return Shown(FILE_VERSION, text, sha256_of(text), None, "the rules file", None)
        async with self._dialler.connect() as conn:
            stored = await rules_versions.version(conn, version)
        if stored is None:
            return None
        return Shown(
            stored.id,
            stored.text,
            stored.sha256,
            stored.saved_by_name,
            stored.note,
            stored.created_at,
        )

    async def history(self, limit: int = 100) -> list[rules_versions.VersionSummary]:
        async with self._dialler.connect() as conn:
            return await rules_versions.history(conn, limit=limit)

    async def save(self, text: str, note: str, *, actor: Actor, base_version: int | None) -> Saved:
        """Check and save the draft as a new version, put it in force in this process, tell
        the others, and start the re-scoring. `base_version` is the version the draft was
        edited from (None: save over whatever is newest)."""
        problems: dict[str, list[str]] = {}
        try:
            check_draft(text)
        except DraftRefused as refused:
            problems.update(refused.problems)
        try:
            note = check_note(note)
        except DraftRefused as refused:
            problems.update(refused.problems)
        if problems:
            raise DraftRefused(problems)
        current = await self.in_force()
        # Over a newest version that could not be put in force, the text in force is a fix.
        if sha256_of(text) == current.sha256 and self._source.rejected is None:
            raise DraftRefused({"text": [f"nothing changed: this is version {current.version}"]})
        try:
            async with self._dialler.begin() as conn:
                saved = await rules_versions.save_version(
                    conn, text, saved_by=actor.agent_id, note=note, base_version=base_version
                )
                await append_audit(
                    conn,
                    actor_type=actor.audit_type,
                    actor_id=actor.audit_id,
                    action=AUDIT_ACTION,
                    subject_type=AUDIT_SUBJECT,
                    subject_id=str(saved.id),
                    detail={"version": saved.id, "sha256": saved.sha256, "note": note},
                    ip_address=actor.ip_address,
                )
        except StaleBase as stale:
            raise DraftRefused(
                {"text": [f"{stale}: review the rules in force, then save again"]}
            ) from None
        log.info("rules version saved", version=saved.id, by=actor.audit_type)
        await self._source.newest()  # in force here at once
        if self._redis is not None:
            await announce_saved(self._redis, saved.id)
        return await self._roll_out(saved)

    async def roll_out(self, version: int) -> str:
        """Start (again) the re-scoring of `version`; the rollout workflow's id."""
        if self._rollout is None:
            raise RolloutUnavailable("no Temporal connection in this process")
        return await self._rollout.start(version)

    async def _roll_out(self, saved: RulesVersion) -> Saved:
        try:
            return Saved(saved, await self.roll_out(saved.id))
        except RolloutUnavailable as error:
            # The version is saved and in force: workflows use it at their next change or
            # re-score; `dialler scoring rules-rollout` starts the re-scoring again.
            log.warning("rules rollout not started", version=saved.id, error=str(error))
            return Saved(saved, None, str(error))
