"""The rules file: the shipped file parses to the built-in defaults, and every mistake is
reported with the key path an operations manager can find in the file."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from domain.dispositions import Disposition
from domain.rules import DiallerRules, RulesError, parse_rules
from schemas.outreach import Stage

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = ROOT / "config" / "dialler_rules.toml"


def _error(text: str) -> str:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    return str(caught.value)


def test_default_file_parses_to_the_built_in_defaults() -> None:
    rules = parse_rules(DEFAULT_FILE.read_text(encoding="utf-8"))
    assert rules == DiallerRules()
    assert rules.stage_priority == [Stage.CALLBACK, Stage.UNSIGNED, Stage.OUTSTANDING]
    assert rules.contact.abandoned_call_lock == timedelta(hours=72)
    assert rules.contact.cooldown(Disposition.NO_ANSWER) == timedelta(hours=4)
    assert rules.contact.cooldown(Disposition.NOT_INTERESTED) == timedelta(days=14)
    assert rules.contact.cooldown(Disposition.WRONG_NUMBER) is None
    assert rules.calling_windows.weekday_open == time(8, 0)
    assert rules.calling_windows.weekend_open == time(9, 0)
    assert rules.calling_windows.timezone == "Europe/London"


def test_default_file_boosts_the_high_value_lenders() -> None:
    scoring = parse_rules(DEFAULT_FILE.read_text(encoding="utf-8")).scoring
    for lender in ("Santander", "Lloyds", "Barclays", "SANTANDER", " lloyds "):
        boost, listed = scoring.lender_boost(lender)
        assert listed
        assert boost > scoring.default_lender_boost
    assert scoring.lender_boost("Acme Loans") == (scoring.default_lender_boost, False)


@pytest.mark.parametrize(
    "year, days",
    [
        (2025, ["01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26"]),
        (2026, ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"]),
        (2027, ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"]),
        (2028, ["01-03", "04-14", "04-17", "05-01", "05-29", "08-28", "12-25", "12-26"]),
    ],
)
def test_default_file_lists_england_and_wales_bank_holidays(year: int, days: list[str]) -> None:
    windows = parse_rules(DEFAULT_FILE.read_text(encoding="utf-8")).calling_windows
    listed = [d for d in windows.bank_holidays if d.year == year]
    assert listed == [date.fromisoformat(f"{year}-{md}") for md in days]
    assert windows.covers_year(year)
    assert not windows.covers_year(2031)


def test_an_empty_file_means_the_defaults() -> None:
    assert parse_rules("") == DiallerRules()


def test_a_word_where_a_number_belongs_names_the_key() -> None:
    message = _error('[scoring.lenders]\nSantander = "high"\n')
    assert "scoring.lenders.Santander: Input should be a valid number" in message


def test_a_quoted_number_is_a_mistake() -> None:
    assert "scoring.base.unsigned" in _error('[scoring.base]\nunsigned = "80"\n')


def test_unknown_keys_are_rejected() -> None:
    assert "scoring.conversion_wieght: Extra inputs are not permitted" in _error(
        "[scoring]\nconversion_wieght = 20\n"
    )
    assert "contact.cooldowns.no_anwser" in _error('[contact.cooldowns]\nno_anwser = "none"\n')
    assert "callingwindows" in _error("[callingwindows]\n")


def test_invalid_toml_says_where() -> None:
    assert "not valid TOML" in _error("[scoring\n")


@pytest.mark.parametrize(
    "priority",
    [
        '["callback", "callback", "outstanding"]',
        '["callback", "unsigned"]',
        '["callback", "unsigned", "outstanding", "done"]',
        '["callback", "unsigned", "done"]',
    ],
)
def test_stage_priority_must_be_a_permutation(priority: str) -> None:
    message = _error(f"stage_priority = {priority}\n")
    assert message.startswith("invalid dialler rules: stage_priority")


def test_stage_priority_can_be_reordered() -> None:
    rules = parse_rules('stage_priority = ["unsigned", "callback", "outstanding"]\n')
    assert rules.stage_priority == [Stage.UNSIGNED, Stage.CALLBACK, Stage.OUTSTANDING]


def test_unknown_stage_names_the_position() -> None:
    assert "stage_priority.1" in _error('stage_priority = ["callback", "later", "outstanding"]')


def test_window_must_open_before_it_closes() -> None:
    message = _error('[calling_windows]\nweekday_open = "12:00"\nweekday_close = "11:00"\n')
    assert "calling_windows: weekday_open 12:00 must be before weekday_close" in message


@pytest.mark.parametrize(
    "line, words",
    [
        ('weekday_open = "07:30"', "weekday_open may not be before 08:00"),
        ('weekend_open = "08:30"', "weekend_open may not be before 09:00"),
        ('weekend_close = "21:30"', "weekend_close may not be after 21:00"),
    ],
)
def test_windows_may_not_widen_past_dma_hours(line: str, words: str) -> None:
    assert words in _error(f"[calling_windows]\n{line}\n")


def test_windows_may_be_narrowed_and_toml_times_work() -> None:
    rules = parse_rules("[calling_windows]\nweekday_open = 09:30:00\nweekday_close = 20:00:00\n")
    assert rules.calling_windows.weekday_open == time(9, 30)
    assert rules.calling_windows.weekday_close == time(20, 0)


def test_unknown_timezone_is_rejected() -> None:
    assert "calling_windows.timezone" in _error('[calling_windows]\ntimezone = "Europe/Lundun"\n')


def test_bank_holiday_on_a_weekend_or_twice_is_a_typo() -> None:
    assert "2026-12-26 is a Sat" in _error("[calling_windows]\nbank_holidays = [2026-12-26]\n")
    assert "listed twice" in _error("[calling_windows]\nbank_holidays = [2026-12-25, 2026-12-25]\n")


def test_caps_must_be_at_least_one_and_daily_within_weekly() -> None:
    assert "contact.claimant_caps.daily" in _error("[contact.claimant_caps]\ndaily = 0\n")
    assert "contact.number_caps.rolling_7d" in _error("[contact.number_caps]\nrolling_7d = -1\n")
    assert "contact.number_caps: daily cap is above the rolling 7-day cap" in _error(
        "[contact.number_caps]\ndaily = 5\nrolling_7d = 4\n"
    )


def test_weights_must_be_finite() -> None:
    assert "scoring.conversion_weight: Input should be a finite number" in _error(
        "[scoring]\nconversion_weight = nan\n"
    )
    assert "scoring.lenders.Barclays" in _error("[scoring.lenders]\nBarclays = inf\n")


def test_per_day_points_may_not_be_negative() -> None:
    assert "scoring.last_contact.points_per_day" in _error(
        "[scoring.last_contact]\npoints_per_day = -1\ncap = 10\n"
    )


def test_age_bands_must_start_at_zero_and_never_fall_with_age() -> None:
    assert "scoring.age_bands: the first age band must start at min_age = 0" in _error(
        "[[scoring.age_bands]]\nmin_age = 18\npoints = 0\n"
    )
    falling = (
        "[[scoring.age_bands]]\nmin_age = 0\npoints = 5\n"
        "[[scoring.age_bands]]\nmin_age = 60\npoints = 1\n"
    )
    assert "older claimants must never score lower" in _error(falling)


def test_lenders_are_unique_ignoring_case() -> None:
    assert "listed twice" in _error('[scoring.lenders]\nLloyds = 1\n"LLOYDS" = 2\n')


def test_cooldowns_take_minutes_hours_days_or_none() -> None:
    table = {d.value: '"none"' for d in Disposition}
    table["busy"] = "{ minutes = 30 }"
    table["no_answer"] = "{ hours = 2, minutes = 30 }"
    table["not_interested"] = "{ days = 30 }"
    body = "\n".join(f"{key} = {value}" for key, value in table.items())
    contact = parse_rules(f"[contact.cooldowns]\n{body}\n").contact
    assert contact.cooldown(Disposition.BUSY) == timedelta(minutes=30)
    assert contact.cooldown(Disposition.NO_ANSWER) == timedelta(hours=2, minutes=30)
    assert contact.cooldown(Disposition.NOT_INTERESTED) == timedelta(days=30)
    assert contact.cooldown(Disposition.VOICEMAIL_LEFT) is None


def test_every_outcome_needs_a_cooldown_line() -> None:
    message = _error("[contact.cooldowns]\nno_answer = { hours = 4 }\n")
    assert "contact.cooldowns: missing cooldown for busy" in message


@pytest.mark.parametrize(
    "value, words",
    [
        ("{ weeks = 1 }", "unknown duration unit 'weeks'"),
        ("{ hours = -1 }", "hours must be a finite number >= 0"),
        ('{ hours = "4" }', "hours must be a number"),
        ("4", "expected a duration table"),
    ],
)
def test_bad_durations_are_explained(value: str, words: str) -> None:
    message = _error(f"[contact]\nfailed_attempts_pause = {value}\n")
    assert "contact.failed_attempts_pause" in message
    assert words in message


def test_abandoned_lock_may_not_go_below_72_hours() -> None:
    assert "contact.abandoned_call_lock_hours" in _error(
        "[contact]\nabandoned_call_lock_hours = 24\n"
    )
    rules = parse_rules("[contact]\nabandoned_call_lock_hours = 96\n")
    assert rules.contact.abandoned_call_lock == timedelta(hours=96)


def test_all_problems_are_listed_at_once() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(
            "[scoring]\nconversion_weight = 'x'\n[contact]\nmax_consecutive_failed_attempts = 0\n"
        )
    assert len(caught.value.problems) == 2
