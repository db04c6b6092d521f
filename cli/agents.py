"""`dialler agents`: provision staff without the web app (the first admin of a deployment,
AI agents and their API tokens from a deploy script). The same service as the supervisor's
agent pages (`services.staff`): the same rules and the same audit, the operator at the
command line acting as an admin, named in the audit by `--by` (default: the login name).

Exit codes: 0 done; 1 done, but the account's short-lived bearer tokens could not be revoked
(Redis away: run it again); 2 nothing done (bad input, no such account, refused).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

import click

from adapters.databases import dialler_engine
from adapters.redis_client import connect_redis
from cli.common import settings_or_exit
from config.settings import Settings
from domain.staff_rules import InvalidStaffInput
from schemas.enums import AgentRole, Queue
from services.agent_states import LABELS
from services.staff import Access, Acting, StaffNotFound, StaffRefused, StaffService
from web.auth.tokens import TokenRevocations

EXIT_BEARER_NOT_REVOKED = 1
EXIT_NOTHING_DONE = 2

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[StaffService], Awaitable[T]]) -> T:
    """Run `work` with a service on its own engine and Redis client; bad input, an unknown
    account or a refusal end the command (exit 2) with the reason."""

    async def run() -> T:
        engine = dialler_engine(settings, pool_size=1)
        redis = connect_redis(settings.redis_url, max_connections=2)
        try:
            return await work(StaffService(engine, TokenRevocations(redis)))
        finally:
            await redis.aclose()
            await engine.dispose()

    try:
        return asyncio.run(run())
    except InvalidStaffInput as error:
        for field, message in error.fields.items():
            click.echo(f"Error: {field.replace('_', ' ')}: {message}", err=True)
    except (StaffNotFound, StaffRefused) as error:
        click.echo(f"Error: {error}", err=True)
    sys.exit(EXIT_NOTHING_DONE)


def _operator(by: str | None) -> Acting:
    if by and by.strip():
        return Acting.operator(by.strip())
    try:
        return Acting.operator(getpass.getuser())
    except (KeyError, OSError):
        raise click.UsageError("say who you are with --by NAME") from None


def _ended(access: Access | None) -> NoReturn:
    if access is not None:
        click.echo(f"Sessions ended: {access.sessions_ended}.")
        if not access.bearer_tokens_revoked:
            click.echo(
                "Warning: Redis is unavailable: the account's short-lived bearer tokens (JWTs) "
                "were not revoked (they expire within the hour). Run the command again.",
                err=True,
            )
            sys.exit(EXIT_BEARER_NOT_REVOKED)
    sys.exit(0)


_BY = click.option("--by", help="Who you are, for the audit (default: your login name).")


@click.group()
def agents() -> None:
    """People and AI agents: add, list, disable, API tokens."""


@agents.command()
@click.argument("email")
@click.option("--name", "display_name", required=True, help="The name shown to supervisors.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in AgentRole]),
    default=AgentRole.AGENT.value,
    show_default=True,
)
@click.option(
    "--queue",
    type=click.Choice([q.value for q in Queue]),
    help="The queue an agent works (required for agents).",
)
@click.option("--ai", "is_ai", is_flag=True, help="An AI agent: no password, API tokens instead.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (else it is prompted for).",
)
@_BY
def add(
    email: str,
    display_name: str,
    role: str,
    queue: str | None,
    is_ai: bool,
    password_stdin: bool,
    by: str | None,
) -> None:
    """Add a person (with a password) or an AI agent (--ai)."""
    settings = settings_or_exit()
    acting = _operator(by)
    password: str | None = None
    if not is_ai:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def create(service: StaffService) -> None:
        record = await service.create(
            acting,
            email=email,
            display_name=display_name,
            role=role,
            queue=queue or "",
            is_ai=is_ai,
            password=password,
        )
        kind = "AI agent" if record.is_ai else record.role
        click.echo(f"Added {kind} {record.id}: {record.email} ({record.queue or 'no queue'}).")
        if record.is_ai:
            click.echo(f"Issue it a token: dialler agents token {record.id} --label LABEL")

    _run(settings, create)


@agents.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include disabled accounts.")
def list_agents(show_all: bool) -> None:
    """Every account: id, email, name, role, queue, person or AI, state, last sign-in."""
    settings = settings_or_exit()

    async def listing(service: StaffService) -> None:
        header = f"{'id':>6}  {'email':<36} {'name':<24} {'role':<10} {'queue':<11} kind   "
        click.echo(header + f"{'state':<10} last sign-in")
        number, shown = 1, 0
        while True:
            page = await service.page(number, per_page=200)
            for row in page.items:
                r = row.record
                if not (r.is_active or show_all):
                    continue
                shown += 1
                state = "disabled" if not r.is_active else LABELS[row.status.state]
                last = f"{r.last_login_at:%Y-%m-%d %H:%M}Z" if r.last_login_at else "never"
                click.echo(
                    f"{r.id:>6}  {r.email:<36} {r.display_name[:24]:<24} {r.role:<10} "
                    f"{r.queue or '-':<11} {'AI' if r.is_ai else 'person':<6} {state:<10} {last}"
                )
            if not page.has_more:
                break
            number += 1
        click.echo(f"{shown} account{'s' if shown != 1 else ''}.")

    _run(settings, listing)


@agents.command()
@click.argument("email_or_id")
@_BY
def disable(email_or_id: str, by: str | None) -> None:
    """Disable an account: its sessions and bearer tokens end, its API tokens stop working."""
    settings = settings_or_exit()
    acting = _operator(by)

    async def run(service: StaffService) -> Access | None:
        record = await service.find(email_or_id)
        access = await service.set_active(acting, record.id, False)
        if access is None:
            click.echo(f"Account {record.id} ({record.email}) was already disabled.")
        else:
            click.echo(f"Disabled account {record.id} ({record.email}).")
        return access

    _ended(_run(settings, run))


@agents.command()
@click.argument("email_or_id")
@click.option("--label", help="What the new token is for (e.g. the AI voice worker).")
@click.option("--expires-days", type=int, help="Days until it expires (default: until revoked).")
@click.option("--revoke", "revoke_id", type=int, help="Revoke this token id instead.")
@_BY
def token(
    email_or_id: str,
    label: str | None,
    expires_days: int | None,
    revoke_id: int | None,
    by: str | None,
) -> None:
    """Issue an API token to an AI agent (printed once, alone on standard output), or
    revoke one with --revoke ID; without either, list the account's tokens."""
    settings = settings_or_exit()
    acting = _operator(by)
    if revoke_id is not None and label is not None:
        raise click.UsageError("either --label (issue) or --revoke ID, not both")

    async def run(service: StaffService) -> None:
        record = await service.find(email_or_id)
        if revoke_id is not None:
            revoked = await service.revoke_token(acting, record.id, revoke_id)
            click.echo(f"Revoked token {revoked.id} ({revoked.label}, {revoked.prefix}...).")
            return
        if label is None:
            now = datetime.now(UTC)
            for t in await service.tokens(record.id):
                state = "revoked" if t.revoked_at else "live" if t.live(now) else "expired"
                click.echo(f"{t.id:>6}  {t.prefix}...  {t.label:<30} {state}")
            return
        issued = await service.issue_token(
            acting,
            record.id,
            label=label,
            expires_days="" if expires_days is None else str(expires_days),
        )
        click.echo(
            f"Token {issued.record.id} for {record.email} ({issued.record.label}); "
            "it is shown only now:",
            err=True,
        )
        click.echo(issued.token)

    _run(settings, run)
