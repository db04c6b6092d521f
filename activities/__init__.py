"""Temporal activities: the only code that does I/O for workflows."""
