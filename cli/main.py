"""The `dialler` command: one entry point for operators and developers."""

from __future__ import annotations

import click

from cli.agents import agents
from cli.ai import ai
from cli.compliance import compliance
from cli.db import db
from cli.dev import dev
from cli.health import health
from cli.queue import queue
from cli.report import report
from cli.scoring import scoring
from cli.seed import seed
from cli.sync import sync
from cli.web import web
from cli.worker import worker


@click.group()
def main() -> None:
    """RMC Dialler: outbound calling for stuck claims."""


for command in (compliance, db, dev, health, queue, report, scoring, seed, sync, web, worker):
    main.add_command(command)
main.add_command(agents)
main.add_command(ai)


if __name__ == "__main__":
    main()
