"""`dialler agents add|list|disable|token` through click's CliRunner, against scratch
databases: a person added with a password from standard input signs in with it; an AI agent
gets a token printed once, alone on standard output, kept only as its hash, which works
until revoked; disabling ends sessions and stops tokens; the operator is audited by name;
bad input and unknown accounts exit 2 having changed nothing."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from adapters import agent_store, api_tokens
from adapters.passwords import verify_password
from cli.main import main
from schemas import dialler_db as db
from tests.conftest import REDIS_URL
from tests.workflows.conftest import scratch_databases

PASSWORD = "quiet orange harbour 12"
T = TypeVar("T")


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[dict[str, str]]:
    async with scratch_databases("agentscli") as (dialler, replica):
        yield {
            "DATABASE_URL": dialler.url.render_as_string(hide_password=False),
            "REPLICA_DATABASE_URL": replica.url.render_as_string(hide_password=False),
            "REDIS_URL": REDIS_URL,
            "TEMPORAL_ADDRESS": "127.0.0.1:1",  # never connected
        }


@pytest.fixture
def dialler(env: dict[str, str]) -> Database:
    return Database(env["DATABASE_URL"])


class Database:
    """Runs checks against the scratch dialler DB between commands (the tests are
    synchronous: each command runs its own event loop, as from a shell)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def run(self, check: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def go() -> T:
            engine = create_async_engine(self.url)
            try:
                async with engine.begin() as conn:
                    return await check(conn)
            finally:
                await engine.dispose()

        return asyncio.run(go())


def agents(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["agents", *args],
        env=env,
        input=stdin,
        catch_exceptions=False,
    )


def audit_of(database: Database, action: str) -> list[tuple[str, str | None, str | None]]:
    async def read(conn: AsyncConnection) -> list[tuple[str, str | None, str | None]]:
        rows = await conn.execute(
            select(db.audit_log.c.actor_type, db.audit_log.c.actor_id, db.audit_log.c.subject_id)
            .where(db.audit_log.c.action == action)
            .order_by(db.audit_log.c.id)
        )
        return [(r.actor_type, r.actor_id, r.subject_id) for r in rows]

    return database.run(read)


def count_agents(database: Database) -> int:
    return database.run(agent_store.count_agents)


def test_add_a_person_list_and_disable(env: dict[str, str], dialler: Database) -> None:
    added = agents(
        env,
        "add", "Rhys.Morgan@Example.co.uk", "--name", "Rhys Morgan", "--role", "agent",
        "--queue", "outstanding", "--password-stdin", "--by", "ops-jo",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Added agent" in added.stdout and "rhys.morgan@example.co.uk" in added.stdout
    email = "rhys.morgan@example.co.uk"
    found = dialler.run(lambda conn: agent_store.credentials(conn, email))
    record = dialler.run(lambda conn: agent_store.staff_by_email(conn, email))
    assert found is not None and found.password_hash is not None and record is not None
    assert verify_password(found.password_hash, PASSWORD)  # exactly as typed, newline dropped
    assert (record.role, record.queue, record.is_ai) == ("agent", "outstanding", False)
    assert audit_of(dialler, "agent_created") == [("operator", "ops-jo", str(record.id))]

    listed = agents(env, "list")
    assert listed.exit_code == 0
    line = next(x for x in listed.stdout.splitlines() if email in x)
    assert "outstanding" in line and "person" in line and "never" in line

    async def open_session(conn: AsyncConnection) -> None:  # as signing in makes
        await conn.execute(
            insert(db.agent_sessions).values(
                agent_id=record.id,
                token_hash="a" * 64,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )

    dialler.run(open_session)
    disabled = agents(env, "disable", "RHYS.MORGAN@example.co.uk", "--by", "ops-jo")
    assert disabled.exit_code == 0, disabled.output
    assert f"Disabled account {record.id}" in disabled.stdout
    assert "Sessions ended: 1." in disabled.stdout
    assert dialler.run(lambda conn: agent_store.credentials(conn, email)) is None
    assert "rhys.morgan" not in agents(env, "list").stdout
    assert "disabled" in agents(env, "list", "--all").stdout
    again = agents(env, "disable", str(record.id), "--by", "ops-jo")
    assert again.exit_code == 0 and "already disabled" in again.stdout
    assert len(audit_of(dialler, "agent_disabled")) == 1


def test_an_ai_agents_token_is_printed_once_and_works_until_revoked(
    env: dict[str, str], dialler: Database
) -> None:
    added = agents(
        env, "add", "voice.bot@agents.rmc", "--name", "AI voice", "--ai", "--queue", "unsigned"
    )
    assert added.exit_code == 0, added.output
    assert "Issue it a token" in added.stdout
    robot = dialler.run(lambda conn: agent_store.staff_by_email(conn, "voice.bot@agents.rmc"))
    assert robot is not None and robot.is_ai

    issued = agents(env, "token", "voice.bot@agents.rmc", "--label", "voice worker", "--by", "ci")
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    assert api_tokens.looks_like_token(token)  # alone on stdout: TOKEN=$(dialler agents token ...)
    assert "shown only now" in issued.stderr and token not in issued.stderr
    live = dialler.run(lambda conn: api_tokens.live_token(conn, token, datetime.now(UTC)))
    [record] = dialler.run(lambda conn: api_tokens.tokens_of(conn, robot.id))

    async def stored_rows(conn: AsyncConnection) -> list[tuple[object, ...]]:
        return [tuple(row) for row in await conn.execute(select(db.api_tokens))]

    stored = dialler.run(stored_rows)
    assert live is not None and live.agent.id == robot.id
    assert record.issued_by is None and record.label == "voice worker"
    assert hashlib.sha256(token.encode()).hexdigest() in [str(v) for row in stored for v in row]
    assert all(token not in str(value) for row in stored for value in row)

    listing = agents(env, "token", str(robot.id))
    assert f"{record.id:>6}  {token[:12]}...  voice worker" in listing.stdout
    assert "live" in listing.stdout and token not in listing.stdout

    revoked = agents(env, "token", str(robot.id), "--revoke", str(record.id), "--by", "ci")
    assert revoked.exit_code == 0, revoked.output
    assert dialler.run(lambda conn: api_tokens.live_token(conn, token, datetime.now(UTC))) is None
    assert "revoked" in agents(env, "token", str(robot.id)).stdout
    assert audit_of(dialler, "api_token_revoked") == [("operator", "ci", str(robot.id))]


def test_bad_input_unknown_accounts_and_refusals_exit_2(
    env: dict[str, str], dialler: Database
) -> None:
    before = count_agents(dialler)
    for args, stdin, message in (
        (["add", "not-an-email", "--name", "X", "--queue", "unsigned", "--password-stdin"],
         PASSWORD, "email: Enter an email address like"),
        (["add", "weak@agents.rmc", "--name", "Weak", "--queue", "unsigned", "--password-stdin"],
         "short\n", "password: A password is at least 12 characters."),
        (["add", "noqueue@agents.rmc", "--name", "No queue", "--password-stdin"],
         PASSWORD, "queue: An agent works one queue: choose it."),
        (["add", "nul@agents.rmc", "--name", "Nul\x00", "--queue", "unsigned", "--ai"],
         None, "display name: May not hold control characters"),
        (["add", "big@agents.rmc", "--name", "N" * 500, "--queue", "unsigned", "--ai"],
         None, "display name: A display name is at most 120 characters."),
        (["disable", "nobody@agents.rmc"], None, "No account with that email address or id."),
        (["disable", "9" * 30], None, "No account with that email address or id."),
        (["token", "nobody@agents.rmc", "--label", "x"], None, "No account"),
    ):  # fmt: skip
        result = agents(env, *args, stdin=stdin)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert count_agents(dialler) == before

    person = agents(
        env, "add", "person.token@agents.rmc", "--name", "P", "--queue", "callback",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert person.exit_code == 0
    refused = agents(env, "token", "person.token@agents.rmc", "--label", "mine")
    assert refused.exit_code == 2 and "People sign in with their password" in refused.stderr
    duplicate = agents(
        env, "add", "PERSON.TOKEN@agents.rmc", "--name", "P2", "--queue", "callback",
        "--password-stdin", stdin=PASSWORD,
    )  # fmt: skip
    assert duplicate.exit_code == 2
    assert "email: An account with this email address already exists." in duplicate.stderr
    assert count_agents(dialler) == before + 1  # the one person, nothing else
    both = agents(env, "token", "person.token@agents.rmc", "--label", "x", "--revoke", "1")
    assert both.exit_code == 2  # a usage error
