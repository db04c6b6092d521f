"""`dialler worker`: run the Temporal workers."""

from __future__ import annotations

import asyncio

import click

from adapters.rules_file import RulesFileError
from cli.common import exit_after_temporal, settings_or_exit
from workers.ai_agent import AiAgentMissing, run_ai_worker
from workers.outreach import run_outreach_worker


@click.group()
def worker() -> None:
    """Run a Temporal worker process."""


@worker.command()
def outreach() -> None:
    """Outreach and reconcile workflows with their activities; provisions the schedules."""
    settings = settings_or_exit()
    try:
        asyncio.run(run_outreach_worker(settings))
    except RulesFileError as error:
        raise click.ClickException(str(error)) from None
    exit_after_temporal()


@worker.command()
def ai() -> None:
    """The AI agent: automated calls and SMS conversations, inbound text triage (needs
    OPENAI_MODEL and an AI agent, `dialler agents add --ai`)."""
    settings = settings_or_exit()
    try:
        asyncio.run(run_ai_worker(settings))
    except (RulesFileError, AiAgentMissing) as error:
        raise click.ClickException(str(error)) from None
    exit_after_temporal()
