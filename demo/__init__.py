"""Realistic, deterministic UK demo data for local development, tests and benchmarks."""
