"""The compliance limits a rules edit may not cross (`domain.rules.parse_rules`), and the
draft checks of the rules page and `dialler scoring rules-save` (`services.rules_editing`):
every limit is refused with its key, the shipped file passes, and a draft lists all its
problems at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.rules import MAX_RULES_CHARS, RulesError, parse_rules
from services.rules_editing import DraftRefused, check_draft, check_note

SHIPPED = (Path(__file__).resolve().parents[2] / "config" / "dialler_rules.toml").read_text(
    encoding="utf-8"
)


def _refused(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    return caught.value.problems


@pytest.mark.parametrize(
    ("edit", "key", "words"),
    [
        # DMA hours: the windows may be narrowed, never widened
        ('[calling_windows]\nweekday_open = "07:30"', "calling_windows", "DMA hours"),
        ('[calling_windows]\nweekend_open = "08:30"', "calling_windows", "DMA hours"),
        ('[calling_windows]\nweekday_close = "21:30"', "calling_windows", "DMA hours"),
        # Ofcom: 72 hours at least after an abandoned call
        ("[contact]\nabandoned_call_lock_hours = 71", "contact.abandoned_call_lock_hours", "72"),
        # CMCOB 2.3: recordings kept 12 months at least
        (
            "[compliance]\nrecording_retention_months = 11",
            "compliance.recording_retention_months",
            "12",
        ),
        # PECR 21: a TPS screening is redone at least every 28 days
        (
            "[compliance]\ntps_screening_max_age = { days = 29 }",
            "compliance.tps_screening_max_age",
            "at most 28 days",
        ),
        # PECR 21A: asking for a signature is marketing, never service contact
        (
            '[compliance]\nservice_contact_queues = ["outstanding", "unsigned"]',
            "compliance.service_contact_queues",
            "PECR 21A",
        ),
        # caps and failed attempts: at least one call, a daily cap within the weekly one
        ("[contact.claimant_caps]\ndaily = 0", "contact.claimant_caps.daily", ""),
        ("[contact.number_caps]\ndaily = 11\nrolling_7d = 10", "contact.number_caps", "daily"),
        ("[contact]\nmax_consecutive_failed_attempts = 0", "contact.max_consecutive", ""),
    ],
)
def test_each_compliance_limit_is_refused_naming_its_key(edit: str, key: str, words: str) -> None:
    problems = _refused(edit)
    assert any(p.startswith(key) and words in p for p in problems), problems


@pytest.mark.parametrize(
    "edit",
    [
        '[calling_windows]\nweekday_open = "09:00"\nweekday_close = "20:00"',
        "[contact]\nabandoned_call_lock_hours = 96",
        "[compliance]\nrecording_retention_months = 12",
        "[compliance]\ntps_screening_max_age = { days = 28 }",
        "[compliance]\ntps_screening_max_age = { days = 7 }",
        '[compliance]\nservice_contact_queues = ["outstanding", "callback"]',
    ],
)
def test_the_limits_themselves_and_anything_stricter_are_accepted(edit: str) -> None:
    parse_rules(edit)


def test_the_shipped_file_is_within_every_limit() -> None:
    assert check_draft(SHIPPED) == parse_rules(SHIPPED)


def test_a_text_past_the_size_limit_is_refused_before_it_is_parsed() -> None:
    huge = "# " + "x" * MAX_RULES_CHARS + "\n"
    assert _refused(huge) == [f"the text is {len(huge):,} characters; at most {MAX_RULES_CHARS:,}"]


def test_a_draft_lists_every_problem_at_once() -> None:
    draft = SHIPPED.replace("abandoned_call_lock_hours = 72", "abandoned_call_lock_hours = 24")
    draft = draft.replace('weekend_open = "09:00"', 'weekend_open = "07:00"')
    with pytest.raises(DraftRefused) as caught:
        check_draft(draft)
    problems = caught.value.problems["text"]
    assert len(problems) == 2
    assert any("abandoned_call_lock_hours" in p for p in problems)
    assert any("weekend_open" in p for p in problems)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   \n\n", "empty"),
        ('[scoring]\nconversion_weight = "2\x000"\n', "not valid TOML"),
        ("[scoring\n", "not valid TOML"),
        ("x" * (MAX_RULES_CHARS + 1), "at most 100,000"),
    ],
)
def test_drafts_that_are_not_rules_are_refused(text: str, words: str) -> None:
    with pytest.raises(DraftRefused) as caught:
        check_draft(text)
    assert words in caught.value.problems["text"][0]


@pytest.mark.parametrize(
    ("note", "words"),
    [("", "say why"), ("  ", "say why"), ("x" * 301, "300"), ("two\nlines", "one line")],
)
def test_a_note_is_required_short_and_on_one_line(note: str, words: str) -> None:
    with pytest.raises(DraftRefused) as caught:
        check_note(note)
    assert words in caught.value.problems["note"][0]
    assert check_note("  lenders rebalanced  ") == "lenders rebalanced"
