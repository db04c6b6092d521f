"""`dialler db`: migrations of the dialler's PostgreSQL database."""

from __future__ import annotations

import asyncio

import click

from adapters.databases import redacted
from adapters.provisioning import current_revision, downgrade, ensure_postgres_database, migrate
from cli.common import settings_or_exit


@click.group()
def db() -> None:
    """Migrate the dialler database (PostgreSQL at DATABASE_URL)."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Create the database if missing and migrate it up to REVISION (default: head)."""
    settings = settings_or_exit()

    async def run() -> None:
        if await ensure_postgres_database(settings.async_database_url):
            click.echo(f"created database {redacted(settings.async_database_url)}")
        await migrate(settings.async_database_url, revision)
        click.echo(f"at revision {await current_revision(settings.async_database_url)}")

    asyncio.run(run())


@db.command(name="downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Migrate down to REVISION ('base' empties the database)."""
    settings = settings_or_exit()
    asyncio.run(downgrade(settings.async_database_url, revision))
    click.echo(f"downgraded to {revision}")


@db.command()
def current() -> None:
    """Print the current migration revision."""
    settings = settings_or_exit()
    click.echo(asyncio.run(current_revision(settings.async_database_url)) or "(empty database)")
