"""`dialler web`: serve the web app with Hypercorn."""

from __future__ import annotations

import asyncio
import signal

import click
from hypercorn.asyncio import serve
from hypercorn.config import Config

from cli.common import exit_after_temporal, settings_or_exit
from web import create_app


@click.command()
@click.option("--host", default=None, help="Bind address (default: WEB_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: WEB_PORT).")
def web(host: str | None, port: int | None) -> None:
    """Serve the agent console, supervisor views, JSON API and webhooks."""
    settings = settings_or_exit()
    config = Config()
    config.bind = [f"{host or settings.web_host}:{port or settings.web_port}"]
    config.accesslog = None
    config.graceful_timeout = 5

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(create_app(settings), config, shutdown_trigger=stop.wait)

    asyncio.run(run())
    exit_after_temporal()
