"""The machine a benchmark ran on, the code it measured, and the load it saw per phase.

The machine has 2 cores and other engineers run tests on it at the same time, so every
measured phase records the load average and where the CPU went (this process, the Temporal
server, PostgreSQL, MariaDB, each child process, everything else) next to its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness.cli import say
from bench.harness.record import REPO, Table
from bench.harness.stack import Databases, venv_binary

_TICK = os.sysconf("SC_CLK_TCK")
# The MariaDB server the benchmark uses (noted by `machine_info` from its pid file): other
# engineers run MariaDB servers of their own here, which should not count as ours.
_MARIADB_PID: list[int] = []
CODE_DIRS = ("activities", "adapters", "domain", "schemas", "services", "web", "workers",
             "workflows")  # fmt: skip


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (our own fixed argv)
            argv, capture_output=True, text=True, timeout=10, check=False, cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def code_version() -> str:
    """The commit measured, with '+ local changes' and a fingerprint of the product code when
    the work tree differs from it (the tree changes under long runs in a shared checkout)."""
    commit = _command("git", "rev-parse", "--short=12", "HEAD")
    if _command("git", "status", "--porcelain", "--", *CODE_DIRS) in ("?", ""):
        return commit
    digest = hashlib.sha256()
    for directory in CODE_DIRS:
        for path in sorted((REPO / directory).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return f"{commit} + local changes {digest.hexdigest()[:12]}"


def _machine_basics() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": _command("nproc"),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal CLI": _command(venv_binary("temporal"), "--version").removeprefix(
            "temporal version "
        ),
    }


async def machine_info(dbs: Databases | None = None) -> dict[str, str]:
    """nproc, CPU model, memory, versions; with `dbs`, the database servers' versions."""
    info = _machine_basics()
    if dbs is not None:
        async with dbs.dialler.connect() as conn:
            pg = str(await conn.scalar(text("SHOW server_version")))
        async with dbs.replica.connect() as conn:
            my = str(await conn.scalar(text("SELECT VERSION()")))
            pool = await conn.scalar(text("SELECT @@innodb_buffer_pool_size"))
            pid_file = str(await conn.scalar(text("SELECT @@pid_file")))
        _note_mariadb_pid(pid_file)
        info["PostgreSQL"] = pg.split()[0]
        info["MariaDB"] = f"{my} (innodb_buffer_pool_size {int(pool or 0) // 2**20} MiB)"
    return info


def _note_mariadb_pid(pid_file: str) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        _MARIADB_PID[:] = [int(Path(pid_file).read_text().split()[0])]


def other_runs(own: str) -> set[str]:
    """Other benchmark and test runs on the machine now (their command lines, shortened);
    `own` is this benchmark's module, left out."""
    found: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (os.getpid(), os.getppid()):
            continue
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            words = [w.decode(errors="replace") for w in argv if w]
            if own in words:
                continue
            for i, word in enumerate(words):
                if word == "-m" and i + 1 < len(words) and words[i + 1].startswith("bench."):
                    found.add(words[i + 1])
                elif word.endswith("pytest"):
                    rest = [w for w in words[i + 1 :] if not w.startswith("-")][:1]
                    found.add("pytest " + " ".join(rest) if rest else "pytest")
    return found


# --- CPU accounting ---------------------------------------------------------------------------


def _proc_stat(pid: str) -> tuple[str, list[str]] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process; 0 if it is gone."""
    found = _proc_stat(str(pid))
    return 0.0 if found is None else (int(found[1][11]) + int(found[1][12])) / _TICK


def own_threads() -> dict[str, float]:
    """CPU seconds of this process's threads, grouped: the asyncio loop (main thread), the
    workflow activation threads (`temporal_workflow_*`), Temporal core's native threads,
    other Python threads. Threads that have exited are not counted."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    main = threading.main_thread().native_id
    groups = {"loop": 0.0, "workflow threads": 0.0, "core": 0.0, "other threads": 0.0}
    for entry in os.listdir("/proc/self/task"):
        found = _proc_stat(f"self/task/{entry}")
        if found is None:
            continue
        seconds = (int(found[1][11]) + int(found[1][12])) / _TICK
        name = names.get(int(entry))
        if int(entry) == main:
            groups["loop"] += seconds
        elif name is None:
            groups["core"] += seconds
        elif name.startswith("temporal_workflow_"):
            groups["workflow threads"] += seconds
        else:
            groups["other threads"] += seconds
    return groups


@dataclass
class CpuSnapshot:
    wall: float
    busy: float  # all cores, seconds
    groups: dict[str, float]  # seconds per process group
    threads: dict[str, float]  # seconds per thread group of this process


def cpu_snapshot(temporal_pid: int | None, children: Mapping[str, int]) -> CpuSnapshot:
    """CPU seconds so far: this process, each child process, the Temporal server, PostgreSQL
    (live backends plus those reaped by the postmaster), MariaDB, and the machine's total."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    jiffies = [int(x) for x in fields]
    busy = (sum(jiffies[:8]) - jiffies[3] - jiffies[4]) / _TICK  # minus idle and iowait
    own = os.times()
    groups = {name: process_cpu(pid) for name, pid in children.items()}
    groups |= {"bench": own.user + own.system, "temporal": 0.0, "postgres": 0.0, "mariadb": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        found = _proc_stat(entry)
        if found is None:
            continue
        comm, rest = found
        # after the command: utime is the 12th field, stime 13th, cutime 14th, cstime 15th
        own_ticks, reaped = int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])
        if temporal_pid is not None and int(entry) == temporal_pid:
            groups["temporal"] += (own_ticks + reaped) / _TICK
        elif comm.startswith("postgres"):
            groups["postgres"] += (own_ticks + reaped) / _TICK
        elif comm in ("mariadbd", "mysqld") and (not _MARIADB_PID or int(entry) in _MARIADB_PID):
            groups["mariadb"] += own_ticks / _TICK
    return CpuSnapshot(time.monotonic(), busy, groups, own_threads())


@dataclass
class PhaseLoad:
    name: str
    seconds: float
    load_start: float
    load_end: float
    load_max: float
    cores: dict[str, float]  # average cores busy per group (children first) during the phase
    threads: dict[str, float] = field(default_factory=dict)  # of this process

    def cpu_seconds(self, group: str) -> float:
        return self.cores.get(group, 0.0) * self.seconds

    def split(self) -> str:
        return " / ".join(f"{v:.2f}" for v in self.threads.values())

    def line(self) -> str:
        shares = ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items())
        return (
            f"{self.name}: {self.seconds:.1f}s, loadavg(1m) {self.load_start:.2f}→"
            f"{self.load_end:.2f} (max {self.load_max:.2f}); cores busy: {shares}; "
            f"bench {' / '.join(self.threads)}: {self.split()}"
        )


class Phase:
    """`async with Phase("name", temporal_pid, {"web": pid}) as p:` … then `p.load` holds the
    phase's load: the 1-minute load average at the start, end and its maximum (sampled every
    second), and the average cores each process group kept busy ('other' is the rest of the
    machine, other engineers' runs included)."""

    def __init__(
        self, name: str, temporal_pid: int | None = None, children: Mapping[str, int] | None = None
    ) -> None:
        self.name = name
        self._pid = temporal_pid
        self._children = dict(children or {})
        self._samples: list[float] = []
        self._sampler: asyncio.Task[None] | None = None
        self._start: CpuSnapshot | None = None
        self._load: PhaseLoad | None = None

    @property
    def load(self) -> PhaseLoad:
        if self._load is None:
            raise RuntimeError(f"phase {self.name} has not ended")
        return self._load

    async def _sample(self) -> None:
        while True:
            self._samples.append(os.getloadavg()[0])
            await asyncio.sleep(1)

    async def __aenter__(self) -> Phase:
        self._start = cpu_snapshot(self._pid, self._children)
        self._samples = [os.getloadavg()[0]]
        self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._sampler is not None and self._start is not None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        end = cpu_snapshot(self._pid, self._children)
        wall = max(end.wall - self._start.wall, 1e-9)
        cores = {k: (end.groups[k] - self._start.groups[k]) / wall for k in end.groups}
        total = (end.busy - self._start.busy) / wall
        cores["other"] = max(total - sum(cores.values()), 0.0)
        cores["total"] = total
        threads = {k: (v - self._start.threads.get(k, 0.0)) / wall for k, v in end.threads.items()}
        load_end = os.getloadavg()[0]
        samples = [*self._samples, load_end]
        self._load = PhaseLoad(self.name, wall, samples[0], load_end, max(samples), cores, threads)
        say(self._load.line())


def load_table(phases: Sequence[PhaseLoad]) -> Table:
    children = list(dict.fromkeys(g for p in phases for g in p.cores if g not in _FIXED))
    groups = [*children, *_FIXED]
    return Table(
        "Load seen (1-min load average; average cores busy per process group; the bench "
        "process split into asyncio loop / workflow threads / Temporal core / other threads)",
        ["phase", "seconds", "loadavg start→end (max)", *groups, "bench split"],
        [
            [p.name, f"{p.seconds:.1f}", f"{p.load_start:.2f}→{p.load_end:.2f} ({p.load_max:.2f})",
             *(f"{p.cores.get(g, 0.0):.2f}" for g in groups), p.split()]
            for p in phases
        ],
    )  # fmt: skip


_FIXED = ("bench", "temporal", "postgres", "mariadb", "other", "total")


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- PostgreSQL connections per process -------------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def postgres_ports(pids: Mapping[str, int], pg_port: int) -> dict[int, str]:
    """Local port → process name, for each TCP connection to PostgreSQL the processes hold
    (pg_stat_activity.client_port names the same port)."""
    owner = {inode: name for name, pid in pids.items() for inode in _socket_inodes(pid)}
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, remote, inode = parts[1], parts[2], parts[9]
                if inode in owner and int(remote.rsplit(":", 1)[1], 16) == pg_port:
                    ports[int(local.rsplit(":", 1)[1], 16)] = owner[inode]
    return ports


@dataclass
class PoolSamples:
    """pg_stat_activity sampled over a phase, per process: connections open, running a
    statement ('active'), inside a transaction between statements, waiting on a lock."""

    open: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    active: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    in_transaction: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    lock_waits: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def rows(self) -> list[list[str]]:
        def stat(values: list[int]) -> str:
            return f"{sum(values) / len(values):.1f} (max {max(values)})" if values else "0"

        return [
            [name, *(stat(kind[name]) for kind in
                     (self.open, self.active, self.in_transaction, self.lock_waits))]
            for name in sorted(self.open)
        ]  # fmt: skip


_ACTIVITY = text(
    "SELECT client_port, state, wait_event_type FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def sample_pools(
    engine: AsyncEngine,
    pids: Mapping[str, int],
    pg_port: int,
    samples: PoolSamples,
    stop: asyncio.Event,
    every: float,
) -> None:
    """Sample the processes' connections to the engine's database until `stop` is set."""
    while not stop.is_set():
        ports = postgres_ports(pids, pg_port)
        async with engine.connect() as conn:
            rows = list(await conn.execute(_ACTIVITY))
        found: dict[str, Counter[str]] = {name: Counter() for name in pids}
        for port, state, wait in rows:
            name = ports.get(int(port or 0))
            if name is not None:
                found[name].update(["open", str(state), *(["lock"] if wait == "Lock" else [])])
        for name, seen in found.items():
            samples.open[name].append(seen["open"])
            samples.active[name].append(seen["active"])
            samples.in_transaction[name].append(seen["idle in transaction"])
            samples.lock_waits[name].append(seen["lock"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
