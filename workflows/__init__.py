"""Temporal workflows: thin deterministic scripts over the domain rules."""
