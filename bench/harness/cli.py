"""What every benchmark script does around its measurement: parse its arguments (with
`--no-record` for smoke runs), run, print, record, and leave with `os._exit`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from bench.harness.record import DOCS, REPO, Figure, RunRecord, Table, append_run
from bench.harness.record import regenerate_docs as _regenerate_docs


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with `--no-record`."""
    lines = (doc or "").strip().splitlines()
    made = argparse.ArgumentParser(
        description=lines[0] if lines else None, formatter_class=argparse.RawTextHelpFormatter
    )
    made.add_argument(
        "--no-record",
        action="store_true",
        help="print only (smoke runs on a busy machine): nothing added to bench/runs or docs",
    )
    return made


def params(args: argparse.Namespace) -> dict[str, Any]:
    """The run's arguments for its record (without --no-record and hidden flags)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in ("no_record", "worker")}


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> NoReturn:
    """Run `main`, print any crash, and leave with `os._exit(rc)`: scripts that start
    Temporal's Rust core can crash at interpreter exit (SDK issue 300)."""
    rc = 1
    try:
        rc = asyncio.run(_with_stack_dumps(main))
    except SystemExit as exit:  # argparse's --help and usage errors
        rc = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(rc)


async def _with_stack_dumps(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """`kill -USR1 <pid>` prints every asyncio task's stack: where a stuck run waits.
    `kill <pid>` (SIGTERM) cancels the run, so it still stops its Temporal server and child
    processes and drops its scratch databases on the way out."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            print(f"task {task.get_name()}:", file=sys.stderr)
            awaiting: Any = task.get_coro()
            while awaiting is not None and hasattr(awaiting, "cr_frame"):
                frame = awaiting.cr_frame
                if frame is not None:
                    print(f"  {frame.f_code.co_filename}:{frame.f_lineno}", file=sys.stderr)
                awaiting = awaiting.cr_await
        sys.stderr.flush()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump)
    running = asyncio.current_task()
    if running is not None:
        loop.add_signal_handler(signal.SIGTERM, running.cancel)
    return await main()


def print_tables(tables: Sequence[Table]) -> None:
    for table in tables:
        print("\n".join(table.markdown()), flush=True)


def finish(record: RunRecord, *, no_record: bool) -> None:
    """Print the run's tables, notes and headline figures; unless `no_record`, append the
    record to bench/runs/<benchmark>.jsonl and regenerate the docs/benchmarks.md table."""
    print_tables(record.tables)
    print("\n".join(record.details), flush=True)
    print("\n".join(f"- {note}" for note in record.notes), flush=True)
    headline = [[f.name, f.value, f.goal, f.verdict] for f in record.figures]
    print_tables([Table("Headline figures", ["figure", "value", "goal", "met?"], headline)])
    if no_record:
        say("--no-record: not recorded")
        return
    path = append_run(record)
    _regenerate_docs()
    say(f"recorded in {path.relative_to(REPO)}; table in {DOCS.relative_to(REPO)} regenerated")


def verdict(met: bool, at_scale: bool = True) -> str:
    """'met', 'missed', or (met by a run smaller than the goal's) 'met below goal scale'."""
    if not met:
        return "missed"
    return "met" if at_scale else "met below goal scale"


__all__ = ["Figure", "RunRecord", "Table", "finish", "params", "parser", "run", "say", "verdict"]
