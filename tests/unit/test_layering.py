"""One owner per table, one door per workflow (issue 17), checked by reading the source.

Every product module (the packages the project ships, less `schemas/`, which defines the
tables, and `migrations/`, which changes them) is parsed with `ast`, and fails when:

- it uses a table object whose owner it is not: `from schemas.dialler_db import call_tasks`,
  `db.call_tasks` after `from schemas import dialler_db as db`, `replica.users`...;
- it is in `web/` or `services/` and imports `temporalio`, or a workflow module other than
  a workflow client (`workflows/*_client.py`): the web app and the services reach
  workflows through the client modules only.

It sees table objects only: statements written as SQL text are not seen (today
`adapters/queue_queries.py`, the seed's queue queries over the replica's users, claims and
requirements, and the owners' own SQL text: the task store's claim-next reservation, the call
log's due callbacks and abandon counts).

The pairs still to migrate are listed in PENDING_MIGRATION. It must be empty when issue 17
closes; until then it can only shrink: a listed pair that no longer violates fails the test
too, so whoever migrates a module deletes its pairs here.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Table

from schemas import dialler_db, replica

ROOT = Path(__file__).resolve().parents[2]

# table -> the module(s) that may use its table object
OWNERS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("lenders", "users", "claims", "claim_requirements", "consents"),
        frozenset({"adapters/replica_reader.py"}),
    ),
    **dict.fromkeys(("cdc_offsets", "cdc_dead_letters"), frozenset({"adapters/cdc_store.py"})),
    "call_tasks": frozenset({"adapters/task_store.py"}),
    **dict.fromkeys(("calls", "callbacks", "claimant_notes"), frozenset({"adapters/call_log.py"})),
    **dict.fromkeys(
        ("agents", "agent_sessions", "agent_state_changes"),
        frozenset({"adapters/agent_store.py"}),
    ),
    "sms_messages": frozenset({"adapters/sms_outbox.py"}),
    **dict.fromkeys(
        ("suppressions", "suppression_removals"), frozenset({"adapters/suppressions.py"})
    ),
    **dict.fromkeys(("magic_links", "magic_link_events"), frozenset({"adapters/magic_links.py"})),
    "conversions": frozenset({"adapters/conversions.py"}),
    "audit_log": frozenset({"adapters/audit_log.py"}),
    "consent_records": frozenset({"adapters/consents.py"}),
    **dict.fromkeys(("tps_list_versions", "tps_numbers"), frozenset({"adapters/tps.py"})),
    "api_tokens": frozenset({"adapters/api_tokens.py"}),
    "call_days": frozenset({"adapters/call_log.py"}),
    "agent_state_days": frozenset({"adapters/agent_store.py"}),
    "link_days": frozenset({"adapters/magic_links.py"}),
    "rules_versions": frozenset({"adapters/rules_versions.py"}),
    **dict.fromkeys(("ai_conversations", "ai_steps"), frozenset({"adapters/ai_conversations.py"})),
    **dict.fromkeys(("rate_versions", "learned_rates"), frozenset({"adapters/learned_rates.py"})),
    "scoring_splits": frozenset({"adapters/scoring_splits.py"}),
}

TEMPORALIO = "temporalio"  # the pseudo-table of the "one door per workflow" rule
WORKFLOW_DOORS = ("workflows/",)  # the workflow modules web/ and services/ may import...
WORKFLOW_DOOR_SUFFIX = "_client.py"  # ...are the client modules
TEMPORAL_FREE = ("web/", "services/")

PRODUCT_PACKAGES = (
    "activities",
    "adapters",
    "cli",
    "config",
    "demo",
    "domain",
    "services",
    "web",
    "workers",
    "workflows",
)  # pyproject's packages, less schemas (the tables' definitions) and migrations

# (module, table or TEMPORALIO) pairs not migrated yet. MUST BE EMPTY WHEN ISSUE 17 CLOSES;
# delete a pair as soon as its module goes through the owner (the test fails until you do).
PENDING_MIGRATION: frozenset[tuple[str, str]] = frozenset()

TABLE_MODULES = {"schemas.dialler_db": dialler_db, "schemas.replica": replica}


def _tables() -> dict[str, str]:
    """Every table object's name -> the schemas module defining it."""
    found: dict[str, str] = {}
    for module_name, module in TABLE_MODULES.items():
        for attribute, value in vars(module).items():
            if isinstance(value, Table):
                assert attribute not in found, f"two schemas define a table named {attribute}"
                found[attribute] = module_name
    return found


TABLES = _tables()


def product_modules() -> Iterator[Path]:
    for package in PRODUCT_PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _is_workflow_door(module: str) -> bool:
    path = module.replace(".", "/") + ".py"
    return path.startswith(WORKFLOW_DOORS) and path.endswith(WORKFLOW_DOOR_SUFFIX)


def uses(source: str) -> set[str]:
    """The table names and TEMPORALIO / workflow modules one module's source reaches."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # a local name bound to a schemas module -> that module
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.name in TABLE_MODULES:
                    # `import schemas.replica` is used as `schemas.replica`; `... as x` as x
                    aliases[name.asname or name.name] = name.name
                if name.name.split(".")[0] == TEMPORALIO:
                    found.add(TEMPORALIO)
                elif name.name.startswith("workflows.") and not _is_workflow_door(name.name):
                    found.add(name.name)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            if node.module in TABLE_MODULES:
                found.update(n.name for n in node.names if n.name in TABLES)
            for name in node.names:
                full = f"{node.module}.{name.name}"
                if full in TABLE_MODULES:
                    aliases[name.asname or name.name] = full
            if node.module.split(".")[0] == TEMPORALIO:
                found.add(TEMPORALIO)
            elif node.module.startswith("workflows.") and not _is_workflow_door(node.module):
                found.add(node.module)
            elif node.module == "workflows":
                found.update(
                    f"workflows.{n.name}"
                    for n in node.names
                    if not _is_workflow_door(f"workflows.{n.name}")
                )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in TABLES:
            owner_module = _dotted(node.value, aliases)
            if owner_module == TABLES[node.attr]:
                found.add(node.attr)
    return found


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The schemas module an expression names (`db`, `schemas.replica`), if it names one."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        dotted = f"{node.value.id}.{node.attr}"
        return dotted if aliases.get(dotted) == dotted else None
    return None


def violations_of(module: str, source: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for used in uses(source):
        if used in TABLES:
            if module not in OWNERS[used]:
                found.add((module, used))
        elif module.startswith(TEMPORAL_FREE):
            found.add((module, TEMPORALIO if used == TEMPORALIO else used))
    return found


@functools.cache
def scan() -> frozenset[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in product_modules():
        module = path.relative_to(ROOT).as_posix()
        found |= violations_of(module, path.read_text(encoding="utf-8"))
    return frozenset(found)


# --- the rules -------------------------------------------------------------------------------


def test_every_table_has_a_declared_owner() -> None:
    assert set(OWNERS) == set(TABLES)


def test_no_module_uses_a_table_it_does_not_own_or_reaches_temporal_around_the_door() -> None:
    new = sorted(scan() - PENDING_MIGRATION)
    assert not new, (
        "these modules use a table they do not own (or reach Temporal without a workflow "
        f"client); go through the owner in OWNERS instead: {new}"
    )


def test_pending_pairs_still_violate() -> None:
    """PENDING_MIGRATION only shrinks: a migrated pair must be deleted from it."""
    migrated = sorted(PENDING_MIGRATION - scan())
    assert not migrated, f"migrated: delete these from PENDING_MIGRATION: {migrated}"


# --- the scanner itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("web/x.py", "from schemas.dialler_db import call_tasks", {("web/x.py", "call_tasks")}),
        (
            "activities/x.py",
            "from schemas import dialler_db as db\nq = db.call_tasks.c.user_id",
            {("activities/x.py", "call_tasks")},
        ),
        (
            "cli/x.py",
            "import schemas.replica\nq = schemas.replica.users",
            {("cli/x.py", "users")},
        ),
        (
            "demo/x.py",
            "from schemas import replica as r\ndef f():\n    return r.claim_requirements",
            {("demo/x.py", "claim_requirements")},
        ),
        ("adapters/replica_reader.py", "from schemas.replica import users", set()),
        ("adapters/x.py", "from schemas import replica\nm = replica.metadata", set()),
        ("adapters/x.py", "users = 1\nclass A:\n    users = 2\nA.users", set()),
        ("services/x.py", "from temporalio.client import Client", {("services/x.py", TEMPORALIO)}),
        ("web/x.py", "import temporalio.service", {("web/x.py", TEMPORALIO)}),
        (
            "web/x.py",
            "from workflows.outreach import OutreachWorkflow",
            {("web/x.py", "workflows.outreach")},
        ),
        ("web/x.py", "from workflows.outreach_client import OutreachClient", set()),
        ("workers/x.py", "from temporalio.client import Client", set()),
    ],
)
def test_the_scan_finds_each_form_of_use(
    module: str, source: str, expected: set[tuple[str, str]]
) -> None:
    assert violations_of(module, source) == expected
