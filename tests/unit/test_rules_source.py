"""The rules in force for a long-running process (`adapters.rules_source.RulesSource`): a new
version is picked up after the check interval or at once when announced; a version that does
not parse, or whose text was altered, never replaces the rules in force; a database away
keeps them. The store of versions is a stand-in here (the workflow and web tests use the
real table); time is a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from adapters.rules_source import FILE_VERSION, RulesSource, as_source
from adapters.rules_versions import RulesVersion, sha256_of
from domain.rules import DiallerRules, parse_rules

FILE_RULES = DiallerRules()
CONVERSION_30 = "[scoring]\nconversion_weight = 30\n"
CONVERSION_45 = "[scoring]\nconversion_weight = 45\n"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Versions:
    """An in-memory `rules_versions`, counting the reads and able to fail them."""

    texts: dict[int, str] = field(default_factory=dict)
    tampered: set[int] = field(default_factory=set)
    newest_reads: int = 0
    version_reads: int = 0
    down: bool = False
    gate: asyncio.Event | None = None  # when set, a read waits for it

    def save(self, text: str) -> int:
        version = max(self.texts, default=0) + 1
        self.texts[version] = text
        return version

    async def newest_id(self) -> int | None:
        self.newest_reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise OSError("connection refused")
        return max(self.texts, default=None)

    async def version(self, version_id: int) -> RulesVersion | None:
        self.version_reads += 1
        text = self.texts.get(version_id)
        if text is None:
            return None
        checksum = sha256_of(text + "x" if version_id in self.tampered else text)
        return RulesVersion(
            id=version_id,
            sha256=checksum,
            saved_by=None,
            saved_by_name=None,
            note="test",
            created_at=datetime(2026, 12, 1, tzinfo=UTC),
            text=text,
        )


def _source(versions: Versions, clock: Clock) -> RulesSource:
    return RulesSource(versions, FILE_RULES, check_every=5.0, clock=clock)


async def test_with_no_version_saved_the_file_is_in_force() -> None:
    source = _source(Versions(), Clock())
    in_force = await source.in_force()
    assert in_force.version == FILE_VERSION
    assert in_force.rules == FILE_RULES


async def test_a_new_version_is_picked_up_after_the_check_interval_and_not_before() -> None:
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    assert (await source.current()).scoring.conversion_weight == 20
    versions.save(CONVERSION_30)
    clock.now += 4.9
    assert (await source.current()).scoring.conversion_weight == 20  # not checked yet
    assert versions.newest_reads == 1
    clock.now += 0.1
    assert (await source.current()).scoring.conversion_weight == 30
    assert (await source.in_force()).version == 1
    assert source.cached().scoring.conversion_weight == 30


async def test_an_announcement_makes_the_next_read_check_at_once() -> None:
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    await source.current()
    versions.save(CONVERSION_30)
    source.mark_stale()
    assert (await source.current()).scoring.conversion_weight == 30
    assert versions.newest_reads == 2


async def test_newest_checks_whatever_the_interval() -> None:
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    await source.current()
    versions.save(CONVERSION_45)
    assert (await source.newest()).rules.scoring.conversion_weight == 45


async def test_an_unchanged_version_is_not_read_again() -> None:
    versions, clock = Versions(), Clock()
    versions.save(CONVERSION_30)
    source = _source(versions, clock)
    await source.newest()
    await source.newest()
    await source.newest()
    assert versions.newest_reads == 3
    assert versions.version_reads == 1  # parsed once


async def test_a_bad_stored_version_keeps_the_rules_in_force_and_is_reported() -> None:
    versions, clock = Versions(), Clock()
    versions.save(CONVERSION_30)
    source = _source(versions, clock)
    assert (await source.newest()).version == 1
    bad = versions.save('[scoring]\nconversion_weight = "lots"\n')
    in_force = await source.newest()
    assert in_force.version == 1
    assert in_force.rules.scoring.conversion_weight == 30
    assert source.rejected is not None and source.rejected.version == bad
    assert any("scoring.conversion_weight" in p for p in source.rejected.problems)
    reads = versions.version_reads
    await source.newest()
    assert versions.version_reads == reads  # a rejected version is not parsed again
    # the next good version goes in force and clears the report
    versions.save(CONVERSION_45)
    assert (await source.newest()).rules.scoring.conversion_weight == 45
    assert source.rejected is None


async def test_a_version_that_breaks_a_compliance_limit_is_never_put_in_force() -> None:
    """Saved before a stricter check was added, say: the process keeps what it had."""
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    versions.save("[compliance]\ntps_screening_max_age = { days = 90 }\n")
    in_force = await source.newest()
    assert in_force.version == FILE_VERSION
    assert source.rejected is not None
    assert "compliance.tps_screening_max_age" in source.rejected.problems[0]


async def test_a_version_whose_text_does_not_match_its_checksum_is_refused() -> None:
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    versions.tampered.add(versions.save(CONVERSION_30))
    assert (await source.newest()).version == FILE_VERSION
    assert source.rejected is not None
    assert source.rejected.problems == ["the text does not match its sha256"]


async def test_the_database_away_keeps_the_rules_in_force() -> None:
    versions, clock = Versions(), Clock()
    versions.save(CONVERSION_30)
    source = _source(versions, clock)
    await source.newest()
    versions.down = True
    versions.save(CONVERSION_45)
    in_force = await source.newest()
    assert in_force.version == 1
    versions.down = False
    clock.now += 5
    assert (await source.current()).scoring.conversion_weight == 45


async def test_callers_arriving_together_share_the_checks() -> None:
    """Forty activities reloading at once cost at most two reads, not forty: one check in
    flight, and one more started after them all."""
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    versions.gate = asyncio.Event()
    first = asyncio.ensure_future(source.newest())
    await asyncio.sleep(0)
    versions.save(CONVERSION_30)
    others = [asyncio.ensure_future(source.newest()) for _ in range(40)]
    await asyncio.sleep(0)
    versions.gate.set()
    results = await asyncio.gather(first, *others)
    assert versions.newest_reads == 2
    # every caller that asked after the save sees it
    assert all(r.rules.scoring.conversion_weight == 30 for r in results[1:])


async def test_a_recent_answer_is_shared_with_a_check_in_flight() -> None:
    versions, clock = Versions(), Clock()
    source = _source(versions, clock)
    versions.gate = asyncio.Event()
    readers = [asyncio.ensure_future(source.current()) for _ in range(10)]
    await asyncio.sleep(0)
    versions.gate.set()
    await asyncio.gather(*readers)
    assert versions.newest_reads == 1


@pytest.mark.parametrize("rules", [FILE_RULES, parse_rules(CONVERSION_45)])
async def test_fixed_rules_never_read_anything(rules: DiallerRules) -> None:
    source = as_source(rules)
    assert await source.current() == rules
    assert (await source.newest()).rules == rules
    assert as_source(source) is source
