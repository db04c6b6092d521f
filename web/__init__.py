"""The Quart web app: agent console, supervisor views, JSON API, webhooks."""

from web.app import create_app

__all__ = ["create_app"]
