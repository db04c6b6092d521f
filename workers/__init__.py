"""Processes: they read config, build clients and run (workers, schedules, the dev stack)."""
