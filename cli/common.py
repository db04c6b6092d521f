"""Helpers shared by the CLI commands."""

from __future__ import annotations

import click

from config.logging import configure_logging
from config.settings import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    """Load settings; on a bad setting print its one-line explanation and exit 2."""
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    configure_logging(settings.log_level)
    return settings
