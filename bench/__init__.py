"""Benchmarks of the targets in DESIGN.md section 5.

Each module is runnable as `.venv/bin/python -m bench.<name> [--users N]`: it starts its own
Temporal dev server and scratch databases (`bench_*`), prints its figures, appends them to
`docs/benchmarks.md` with the machine and the load it saw, cleans up, and ends with
`os._exit(rc)` (DESIGN.md section 6). Nothing here asserts a time.
"""
