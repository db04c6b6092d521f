"""A MariaDB of our own with the binlog on, for local development, tests and benchmarks.

The machine's MariaDB (port 3306) runs without the binlog and is left alone. `dialler dev`
runs this one as a managed process (data under DEV_STATE_DIR/mariadb, port
LOCAL_REPLICA_PORT); the tests and `bench/cdc_freshness.py` start one in a temporary
directory on a free port. It is configured as DESIGN.md section 3 asks for the binlog
reader: row-based binlog with full images and metadata, a server id, GTIDs (MariaDB always
has them). Durability is relaxed (`innodb_flush_log_at_trx_commit=2`): local data only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomysql

MARIADBD_PATHS = ("/usr/sbin/mariadbd", "/usr/libexec/mariadbd", "/usr/sbin/mysqld")


class LocalMariaDBError(RuntimeError):
    """The MariaDB server binaries are missing, or the server did not start."""


def _binary(candidates: tuple[str, ...], name: str) -> str:
    for candidate in (*candidates, shutil.which(name) or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LocalMariaDBError(
        f"{name} not found: install the MariaDB server package (Debian: mariadb-server)"
    )


def mariadbd_binary() -> str:
    return _binary(MARIADBD_PATHS, "mariadbd")


def install_db_binary() -> str:
    paths = ("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
    return _binary(paths, "mariadb-install-db")


def initialised(datadir: Path) -> bool:
    return (datadir / "mysql").is_dir()


async def initialise(datadir: Path) -> bool:
    """Create the system tables in `datadir` unless already there; True when created.
    root@localhost and root@127.0.0.1 have no password (local only, bound to 127.0.0.1)."""
    if initialised(datadir):
        return False
    await asyncio.to_thread(datadir.mkdir, parents=True, exist_ok=True)
    argv = [
        install_db_binary(),
        "--no-defaults",  # the machine's my.cnf (user=mysql, its datadir) is not ours
        f"--datadir={datadir}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        *(["--user=root"] if os.geteuid() == 0 else []),
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        shutil.rmtree(datadir / "mysql", ignore_errors=True)
        raise LocalMariaDBError(
            f"mariadb-install-db failed ({process.returncode}): {output.decode()[-500:]}"
        )
    return True


def server_argv(datadir: Path, port: int) -> list[str]:
    """mariadbd with the binlog as the CDC reader needs it, bound to 127.0.0.1 only."""
    return [
        mariadbd_binary(),
        "--no-defaults",
        # mariadbd refuses to run as root unless told to (tests and CI run as root)
        *(["--user=root"] if os.geteuid() == 0 else []),
        f"--datadir={datadir}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={datadir / 'mysqld.sock'}",
        f"--pid-file={datadir / 'mysqld.pid'}",
        f"--log-bin={datadir / 'binlog'}",
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--binlog-row-metadata=FULL",
        "--server-id=1",
        "--binlog-expire-logs-seconds=604800",
        "--skip-name-resolve",
        "--innodb-flush-log-at-trx-commit=2",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
    ]


async def answers(port: int, host: str = "127.0.0.1") -> bool:
    """True once the server accepts a connection as root and runs a query."""
    try:
        conn = await asyncio.wait_for(
            aiomysql.connect(host=host, port=port, user="root", password="", connect_timeout=2),
            timeout=3,
        )
    except (OSError, TimeoutError, aiomysql.Error):
        return False
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT @@log_bin")
            row = await cur.fetchone()
        return bool(row and row[0])
    finally:
        conn.close()


async def create_reader(port: int, user: str, password: str, host: str = "127.0.0.1") -> None:
    """A user with exactly what the binlog reader needs (REPLICATION SLAVE, BINLOG MONITOR)
    plus SELECT for its lookups (claim owners, lender names)."""
    conn = await aiomysql.connect(host=host, port=port, user="root", password="", autocommit=True)
    grantee = "%s@'127.0.0.1'"
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                f"CREATE USER IF NOT EXISTS {grantee} IDENTIFIED BY %s", (user, password)
            )
            await cur.execute(
                f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {grantee}", (user,)
            )
            await cur.execute(f"GRANT SELECT ON *.* TO {grantee}", (user,))
    finally:
        conn.close()


@dataclass
class RunningMariaDB:
    port: int
    datadir: Path
    pid: int

    def url(self, database: str, user: str = "root", password: str = "") -> str:
        credentials = f"{user}:{password}" if password else user
        return f"mysql+aiomysql://{credentials}@127.0.0.1:{self.port}/{database}"


@contextlib.asynccontextmanager
async def temporary_mariadb(port: int, ready_within: float = 60) -> AsyncIterator[RunningMariaDB]:
    """A throwaway server in a temporary directory (tests, benchmarks); removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dialler-mariadb-"))
    datadir = root / "data"
    log = (root / "mariadbd.log").open("wb")
    process: asyncio.subprocess.Process | None = None
    try:
        await initialise(datadir)
        process = await asyncio.create_subprocess_exec(
            *server_argv(datadir, port), stdout=log, stderr=log
        )
        deadline = asyncio.get_running_loop().time() + ready_within
        while not await answers(port):
            if process.returncode is not None:
                raise LocalMariaDBError(
                    f"mariadbd exited with {process.returncode}: "
                    f"{(root / 'mariadbd.log').read_text()[-800:]}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise LocalMariaDBError(f"mariadbd not ready on port {port}")
            await asyncio.sleep(0.2)
        yield RunningMariaDB(port=port, datadir=datadir, pid=process.pid)
    finally:
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
