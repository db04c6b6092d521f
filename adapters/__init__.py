"""Adapters for external systems. Built by processes at start and passed in; never global."""
