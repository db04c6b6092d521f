"""`dialler dev ring-back USER_ID`: a claimant rings the dialler's number, on the local stack.

Without Twilio there is no number to ring, so this plays Twilio's part (`SimulatedInbound`):
it sends the inbound-call webhook, signed as the simulated provider signs every webhook, to
an app built here against the same databases, Redis and Temporal as the running stack. The
call is routed as a real one (the agent who last called them, else their queue's, else a
message and a shared callback), and the agent's open console pops the claimant's context:
the agent answers, declines, lets it ring out or hangs up there.
"""

from __future__ import annotations

import asyncio
import os

import click

from adapters.replica_reader import ReplicaReader
from cli.common import exit_after_temporal, settings_or_exit
from config.settings import DEVELOPMENT_ENVIRONMENTS, Environment, Settings
from web import create_app
from web.inbound_voice import SimulatedInbound
from web.services import EXTENSION_KEY, WebServices
from web.voice import SimulationError

MAX_ID = 2**63 - 1


@click.command("ring-back")
@click.argument("user_id", type=click.IntRange(1, MAX_ID))
@click.option(
    "--from-number",
    metavar="NUMBER",
    help="Ring from this number instead of the claimant's number on record.",
)
def ring_back(user_id: int, from_number: str | None) -> None:
    """Simulate claimant USER_ID ringing the dialler back (local stack, no Twilio)."""
    os.environ.setdefault("ENVIRONMENT", Environment.DEVELOPMENT.value)
    settings = settings_or_exit()
    if settings.environment not in DEVELOPMENT_ENVIRONMENTS:
        raise click.ClickException(
            f"ENVIRONMENT={settings.environment.value}: ring-back is for the local stack only."
        )
    if settings.twilio_enabled:
        raise click.ClickException(
            "Twilio is configured: ring the Twilio number itself. The simulator plays "
            "Twilio's part only when TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are empty."
        )
    exit_after_temporal(asyncio.run(_ring_back(settings, user_id, from_number)))


async def _ring_back(settings: Settings, user_id: int, from_number: str | None) -> int:
    app = create_app(settings)
    async with app.test_app():
        deps = app.extensions[EXTENSION_KEY]
        assert isinstance(deps, WebServices)
        number = from_number or await ReplicaReader(deps.replica_db).phone_number(user_id)
        if not number:
            click.echo(f"Claimant {user_id} has no phone number on record: use --from-number.")
            return 1
        try:
            ring = await SimulatedInbound(app, settings).ring(number)
        except SimulationError as problem:
            click.echo(f"The simulated call failed: {problem}", err=True)
            return 1
    if ring.plan.client is not None:
        click.echo(
            f"Ringing {ring.plan.client} (the caller heard the recording notice). "
            "Answer, decline or let it ring out in their console."
        )
        return 0
    said = " ".join(ring.plan.said)
    click.echo(f"No agent was rung. The caller heard: {said}")
    return 0
