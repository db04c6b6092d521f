"""Helpers shared by the CLI commands."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

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


def exit_after_temporal(code: int = 0) -> NoReturn:
    """End a command that used a Temporal client. The SDK's native threads can crash the
    interpreter while it finalises (temporalio/sdk-python issue 300), so skip finalisation
    once everything has been printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
