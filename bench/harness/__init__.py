"""The shared benchmark harness: each `bench/<name>.py` is a short script on it.

- `cli`: argument parsing (`--no-record`), `run(main)` with `os._exit`, `say`;
- `stack`: the processes a benchmark starts (Temporal dev server, the web app and workers as
  child processes, scratch databases);
- `seed`: demo data, the seed's queues, bringing claimants under workflows by name;
- `worker`: the outreach worker as a benchmark runs it (`python -m bench.harness.worker`);
- `agents`: simulated agents over HTTP (tokens, sign-in, claim → outcome loops);
- `exactly_once`: after the agents, no claimant claimed twice, and the database agrees;
- `temporal`: Temporal-side evidence (histories, activity counts, core metrics);
- `machine`: the machine, its load and where the CPU went, per phase;
- `stats`: percentiles and latency rows;
- `record`: the run record (`bench/runs/<name>.jsonl`) and the `docs/benchmarks.md` table.
"""
