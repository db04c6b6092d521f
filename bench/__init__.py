"""Benchmarks of the targets in DESIGN.md section 5, each a short script on `bench.harness`.

Each is runnable as `.venv/bin/python -m bench.<name> [options]`: it starts its own Temporal
dev server, scratch databases (`bench_*`) and the product's processes, prints its figures,
appends one record to `bench/runs/<name>.jsonl` and regenerates the table in
`docs/benchmarks.md` (`--no-record` prints only: use it for smoke runs on a busy machine),
cleans up, and ends with `os._exit(rc)` (DESIGN.md section 6). Nothing here asserts a time.
"""
