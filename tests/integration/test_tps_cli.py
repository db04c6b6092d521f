"""`dialler compliance tps-import` and `tps-status` through click's CliRunner, against
scratch databases: exit codes, rejected lines listed by line number (capped, all written to
--rejects), idempotent re-import, an empty --replace refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tests.workflows.conftest import scratch_databases


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[dict[str, str]]:
    async with scratch_databases("tpscli") as (dialler, replica):
        yield {
            "DATABASE_URL": dialler.url.render_as_string(hide_password=False),
            "REPLICA_DATABASE_URL": replica.url.render_as_string(hide_password=False),
            "TEMPORAL_ADDRESS": "127.0.0.1:1",  # nobody has a task: never connected
        }


def dialler(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["compliance", *args], env=env, catch_exceptions=False)


def write(path: Path, lines: list[str]) -> str:
    path.write_bytes(("\n".join(lines) + "\n").encode())
    return str(path)


def test_import_status_reimport_and_bad_lines(env: dict[str, str], tmp_path: Path) -> None:
    assert "No TPS or CTPS list imported" in dialler(env, "tps-status").output

    good = write(tmp_path / "tps.txt", ["07700900001", "+44 7700 900002", "0044 7700 900003"])
    first = dialler(env, "tps-import", good, "--list", "tps")
    assert first.exit_code == 0, first.output
    assert "TPS: 3 lines read, 3 numbers, 0 lines rejected." in first.output
    assert "TPS list: 3 numbers added (version" in first.output

    again = dialler(env, "tps-import", good, "--list", "tps", "--replace")
    assert again.exit_code == 0, again.output
    assert "Nothing changed: the TPS list in force already holds exactly these numbers" in (
        again.output
    )

    bad = write(
        tmp_path / "bad.txt",
        ["07700900004", "07700 9OOOO5", "07700900006", "\x00", *(["oops"] * 120)],
    )
    rejects = tmp_path / "rejects.tsv"
    result = dialler(env, "tps-import", bad, "--list", "tps", "--rejects", str(rejects))
    assert result.exit_code == 3, result.output  # imported, with rejected lines
    assert "TPS: 124 lines read, 2 numbers, 122 lines rejected." in result.output
    assert "Rejected lines (the first 100 of 122):" in result.output
    assert "  line 2: not a phone number (unexpected characters): '07700 9OOOO5'" in result.output
    assert "  line 4: contains a NUL byte" in result.output
    assert "line 124:" not in result.output  # capped on screen...
    written = rejects.read_text().splitlines()
    assert len(written) == 122 and written[-1].startswith("124\t")  # ...all in the file
    assert "TPS list: 2 numbers added" in result.output and "5 in force" in result.output

    status = dialler(env, "tps-status")
    assert status.exit_code == 0
    assert "TPS in force: 5 numbers" in status.output
    assert "CTPS: no list imported" in status.output
    assert status.output.count("add ") == 2


def test_an_empty_replace_is_refused_and_bad_arguments_are_usage_errors(
    env: dict[str, str], tmp_path: Path
) -> None:
    listed = write(tmp_path / "ctps.txt", ["07700800001", "07700800002"])
    assert dialler(env, "tps-import", listed, "--list", "ctps", "--replace").exit_code == 0
    empty = write(tmp_path / "empty.txt", ["", "not a number"])

    refused = dialler(env, "tps-import", empty, "--list", "ctps", "--replace")
    assert refused.exit_code == 1
    assert "would empty the list" in refused.output and "--allow-empty" in refused.output
    assert "CTPS in force: 2 numbers" in dialler(env, "tps-status").output

    emptied = dialler(env, "tps-import", empty, "--list", "ctps", "--replace", "--allow-empty")
    assert emptied.exit_code == 3, emptied.output  # emptied, and line 2 was rejected
    assert "CTPS list replaced" in emptied.output and "2 removed" in emptied.output
    assert "CTPS in force: 0 numbers" in dialler(env, "tps-status").output

    assert dialler(env, "tps-import", listed).exit_code == 2  # --list is required
    assert dialler(env, "tps-import", listed, "--list", "dnc").exit_code == 2
    assert dialler(env, "tps-import", str(tmp_path / "missing.txt"), "--list", "tps").exit_code == 2
