"""`dialler dev`: run the whole product locally."""

from __future__ import annotations

import asyncio
import os

import click

from cli.common import settings_or_exit
from cli.dev_ring_back import ring_back
from config.settings import DEVELOPMENT_ENVIRONMENTS, Environment
from workers.devstack import DevStack


@click.group(invoke_without_command=True)
@click.option(
    "--seed-users",
    default=5000,
    show_default=True,
    help="Claimants to generate when the local replica is empty.",
)
@click.pass_context
def dev(context: click.Context, seed_users: int) -> None:
    """Temporal dev server, databases, demo data, workers and the web app, in one command
    (with a subcommand: a tool for the running stack, e.g. ring-back)."""
    if context.invoked_subcommand is not None:
        return
    # The local stack is development unless the caller says otherwise; the processes it
    # starts inherit this.
    os.environ.setdefault("ENVIRONMENT", Environment.DEVELOPMENT.value)
    settings = settings_or_exit()
    environment = settings.environment.value
    if settings.environment in DEVELOPMENT_ENVIRONMENTS:
        click.echo(
            f"Running in {environment} mode (ENVIRONMENT={environment}): development default "
            "secrets, simulated Twilio and the local email outbox are allowed. Never deploy this."
        )
    else:
        click.echo(f"Running with ENVIRONMENT={environment}: real secrets and credentials.")
    raise SystemExit(asyncio.run(DevStack(settings, seed_users).run()))


dev.add_command(ring_back)
