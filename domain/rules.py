"""The dialler's tunable rules: one TOML file, validated into typed, frozen models.

`parse_rules(text)` is the only way in from a file. Every mistake an operations manager can
make (a typo in a key, a word where a number belongs, a window that closes before it opens)
raises `RulesError` whose message names the key path, e.g.
`scoring.lenders.Santander: Input should be a valid number`.

The model defaults equal `config/dialler_rules.toml`, so `DiallerRules()` is the shipped
behaviour (a test keeps the two in step). Reading the file is the caller's job: this module
does no I/O.

Compliance floors are enforced here rather than trusted to the file: calling windows may be
narrowed but never widened past the DMA hours (08:00-21:00 weekdays, 09:00-21:00 weekends),
the abandoned-call lock can be lengthened but never shortened below Ofcom's 72 hours,
recordings are kept at least 12 months (CMCOB 2.3), a TPS/CTPS screening is redone at least
every 28 days (PECR 21), and the unsigned queue, whose calls are marketing, is never listed as
service contact (PECR 21A). The rules page and `dialler scoring rules-save` save nothing
these refuse, so a saved version can always be put in force.
"""

from __future__ import annotations

import math
import tomllib
from datetime import date, time, timedelta
from itertools import pairwise
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.dispositions import Disposition
from domain.learned_rates import REGIONS
from schemas.enums import Queue
from schemas.outreach import Stage

# Strict: "15" (a string) is a mistake in a rules file, not a number; inf/nan are rejected.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
Count = Annotated[int, Field(strict=True, ge=1)]

DMA_WEEKDAY_EARLIEST = time(8, 0)
DMA_WEEKEND_EARLIEST = time(9, 0)
DMA_LATEST = time(21, 0)
OFCOM_ABANDONED_LOCK_HOURS = 72
MAX_CALLBACK_GRACE = timedelta(days=1)
MAX_PREFERRED_AGENT_HOLD = timedelta(hours=1)
# The TPS register changes daily; the ICO expects numbers screened at least every 28 days.
MAX_TPS_SCREENING_AGE = timedelta(days=28)
# The shipped file is about 9,000 characters: a text this long is a paste gone wrong.
MAX_RULES_CHARS = 100_000

_DURATION_UNITS = ("days", "hours", "minutes")


class RulesError(ValueError):
    """The rules file is malformed; `problems` lists one `key.path: message` per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid dialler rules: " + "; ".join(problems))


def _duration(value: Any) -> Any:
    """`{ hours = 4 }`, `{ days = 14 }`, `{ minutes = 30 }` (units may be combined)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, dict) or not value:
        raise ValueError('expected a duration table such as { hours = 4 } or "none"')
    unknown = sorted(set(value) - set(_DURATION_UNITS))
    if unknown:
        raise ValueError(f"unknown duration unit {unknown[0]!r}; use days, hours or minutes")
    for unit, amount in value.items():
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ValueError(f"{unit} must be a number")
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{unit} must be a finite number >= 0")
    return timedelta(**{unit: float(amount) for unit, amount in value.items()})


def _optional_duration(value: Any) -> Any:
    # TOML has no null, so "no cooldown" is spelled "none".
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    return _duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(_optional_duration)]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- scoring -------------------------------------------------------------------------------


class QueueBase(_Rules):
    """Starting score per queue: the seed ranks unsigned and callbacks above outstanding."""

    callback: Number = 100.0
    unsigned: Number = 80.0
    outstanding: Number = 50.0


class AgeBand(_Rules):
    min_age: Annotated[int, Field(strict=True, ge=0, le=130)]
    points: Number


class PerDay(_Rules):
    """Points per whole day, capped; non-negative so that "longer/older" never scores lower."""

    points_per_day: NonNegative
    cap: NonNegative


class ClaimValue(_Rules):
    points_per_1000: NonNegative = 1.0  # per £1,000 of estimated value across open claims
    cap: NonNegative = 15.0


class FailedAttempts(_Rules):
    penalty_per_attempt: NonNegative = 3.0  # subtracted per consecutive failed attempt
    cap: NonNegative = 15.0


class CallbackTiming(_Rules):
    due_bonus: NonNegative = 10.0
    points_per_hour_overdue: NonNegative = 1.0
    cap: NonNegative = 25.0


class Calendar(_Rules):
    """Seasonal adjustments (domain.scoring): the last days of a month, and the working days
    either side of a bank holiday. Off (0 points) until an evaluation shows they help: a
    guessed factor is worse than none."""

    # the month's last this-many days count as its end (1: the last day only)
    month_end_days: Annotated[int, Field(strict=True, ge=1, le=15)] = 3
    month_end_points: NonNegative = 0.0
    bank_holiday_points: NonNegative = 0.0


def _default_age_bands() -> list[AgeBand]:
    return [
        AgeBand(min_age=0, points=0.0),
        AgeBand(min_age=50, points=4.0),
        AgeBand(min_age=65, points=8.0),
        AgeBand(min_age=75, points=12.0),
    ]


def _default_lenders() -> dict[str, float]:
    return {
        "Santander": 15.0,
        "Lloyds": 15.0,
        "Barclays": 15.0,
        "Halifax": 8.0,
        "HSBC": 8.0,
        "NatWest": 8.0,
    }


class ScoringRules(_Rules):
    base: QueueBase = QueueBase()
    lenders: dict[str, Number] = Field(default_factory=_default_lenders)
    default_lender_boost: Number = 0.0
    age_bands: list[AgeBand] = Field(default_factory=_default_age_bands)
    claim_age: PerDay = PerDay(points_per_day=0.1, cap=20.0)
    last_contact: PerDay = PerDay(points_per_day=1.0, cap=14.0)
    claim_value: ClaimValue = ClaimValue()
    failed_attempts: FailedAttempts = FailedAttempts()
    callback: CallbackTiming = CallbackTiming()
    conversion_weight: NonNegative = 20.0
    # points per unit of response rate by which a call beats a text (negative when a text
    # does better and the claimant may be texted): the best-channel factor
    channel_weight: NonNegative = 10.0
    # points per unit of the claimant's contact rate gained by calling at this hour
    hour_weight: NonNegative = 10.0
    # region -> points for claimants a specialised regional team works; only ever raises
    regions: dict[str, NonNegative] = Field(default_factory=dict)
    calendar: Calendar = Calendar()
    # the claimant's previous successful agent (a person) is offered them first for this
    # long after they become callable, then anyone (domain.agent_preference); 0: off
    preferred_agent_hold: Duration = timedelta(minutes=10)
    vulnerability_adjustment: Number = 0.0

    @field_validator("lenders")
    @classmethod
    def _unique_lenders(cls, lenders: dict[str, float]) -> dict[str, float]:
        # Lenders are matched case-insensitively, so "Lloyds" and "LLOYDS" would collide.
        seen: set[str] = set()
        for name in lenders:
            key = lender_key(name)
            if not key:
                raise ValueError("a lender name is empty")
            if key in seen:
                raise ValueError(f"lender {name!r} is listed twice (names ignore case)")
            seen.add(key)
        return lenders

    @field_validator("regions")
    @classmethod
    def _unique_regions(cls, regions: dict[str, float]) -> dict[str, float]:
        # A misspelt region would silently match no one: only the postcode regions.
        known = {lender_key(region) for region in REGIONS}
        seen: set[str] = set()
        for name in regions:
            key = lender_key(name)
            if key not in known:
                raise ValueError(f"unknown region {name!r}; use one of {', '.join(REGIONS)}")
            if key in seen:
                raise ValueError(f"region {name!r} is listed twice (names ignore case)")
            seen.add(key)
        return regions

    @field_validator("preferred_agent_hold")
    @classmethod
    def _hold_within_an_hour(cls, hold: timedelta) -> timedelta:
        if hold > MAX_PREFERRED_AGENT_HOLD:
            raise ValueError("at most 1 hour: other agents must not wait long for a claimant")
        return hold

    @field_validator("age_bands")
    @classmethod
    def _bands_rise_with_age(cls, bands: list[AgeBand]) -> list[AgeBand]:
        if not bands or bands[0].min_age != 0:
            raise ValueError("the first age band must start at min_age = 0")
        for lower, upper in pairwise(bands):
            if upper.min_age <= lower.min_age:
                raise ValueError("age bands must be listed in increasing min_age")
            if upper.points < lower.points:
                raise ValueError(
                    f"band {upper.min_age}+ scores less than band {lower.min_age}+: "
                    "older claimants must never score lower"
                )
        return bands

    def lender_boost(self, lender: str) -> tuple[float, bool]:
        """(boost, listed in the matrix)."""
        wanted = lender_key(lender)
        for name, boost in self.lenders.items():
            if lender_key(name) == wanted:
                return boost, True
        return self.default_lender_boost, False

    def region_boost(self, region: str) -> tuple[float, bool]:
        """(points, listed): a region's specialised-team points, matched ignoring case."""
        wanted = lender_key(region)
        for name, points in self.regions.items():
            if lender_key(name) == wanted:
                return points, True
        return 0.0, False


def lender_key(name: str) -> str:
    return " ".join(name.split()).casefold()


# --- contact policy ------------------------------------------------------------------------


class Caps(_Rules):
    daily: Count = 3
    rolling_7d: Count = 10

    @model_validator(mode="after")
    def _daily_within_weekly(self) -> Self:
        if self.daily > self.rolling_7d:
            raise ValueError("daily cap is above the rolling 7-day cap, so it could never bind")
        return self


def _default_cooldowns() -> dict[Disposition, timedelta | None]:
    return {
        Disposition.NO_ANSWER: timedelta(hours=4),
        Disposition.BUSY: timedelta(hours=1),
        Disposition.VOICEMAIL_LEFT: timedelta(hours=24),
        Disposition.WRONG_NUMBER: None,
        Disposition.CALLBACK_REQUESTED: None,
        Disposition.PROMISED_TO_SIGN: timedelta(hours=48),
        Disposition.PROMISED_DOCUMENTS: timedelta(hours=72),
        Disposition.MAGIC_LINK_SENT: timedelta(hours=24),
        Disposition.NOT_INTERESTED: timedelta(days=14),
        Disposition.DO_NOT_CALL: None,
        Disposition.DECEASED: None,
        Disposition.COMPLETED: timedelta(hours=24),
    }


class ContactRules(_Rules):
    claimant_caps: Caps = Caps()
    number_caps: Caps = Caps()
    cooldowns: dict[Disposition, OptionalDuration] = Field(default_factory=_default_cooldowns)
    abandoned_call_lock_hours: Annotated[
        int, Field(strict=True, ge=OFCOM_ABANDONED_LOCK_HOURS, le=24 * 365)
    ] = OFCOM_ABANDONED_LOCK_HOURS
    max_consecutive_failed_attempts: Count = 6
    failed_attempts_pause: Duration = timedelta(days=7)
    # A personal callback is held for its owner this long after it is due, then any
    # callback agent may take it (see domain.callback_routing).
    personal_callback_grace: Duration = timedelta(minutes=15)

    @field_validator("personal_callback_grace")
    @classmethod
    def _grace_within_a_day(cls, grace: timedelta) -> timedelta:
        if grace > MAX_CALLBACK_GRACE:
            raise ValueError("at most 1 day: a claimant waiting longer for their agent is let down")
        return grace

    @field_validator("cooldowns")
    @classmethod
    def _every_disposition_listed(
        cls, cooldowns: dict[Disposition, timedelta | None]
    ) -> dict[Disposition, timedelta | None]:
        # A forgotten line must not silently mean "redial at once": list every outcome.
        missing = [d.value for d in Disposition if d not in cooldowns]
        if missing:
            raise ValueError(
                f'missing cooldown for {", ".join(missing)} (write "none" for no cooldown)'
            )
        return cooldowns

    @property
    def abandoned_call_lock(self) -> timedelta:
        return timedelta(hours=self.abandoned_call_lock_hours)

    def cooldown(self, disposition: Disposition) -> timedelta | None:
        return self.cooldowns.get(disposition)


# --- calling windows -----------------------------------------------------------------------

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _default_bank_holidays() -> list[date]:
    """England & Wales, from gov.uk. Extend the TOML file every year."""
    days = {
        2025: ["01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26"],
        2026: ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"],
        2027: ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"],
        2028: ["01-03", "04-14", "04-17", "05-01", "05-29", "08-28", "12-25", "12-26"],
    }
    return [date.fromisoformat(f"{year}-{md}") for year, mds in days.items() for md in mds]


class CallingWindows(_Rules):
    timezone: str = "Europe/London"
    weekday_open: time = time(8, 0)
    weekday_close: time = time(21, 0)
    weekend_open: time = time(9, 0)
    weekend_close: time = time(21, 0)
    bank_holidays: list[date] = Field(default_factory=_default_bank_holidays)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @field_validator("weekday_open", "weekday_close", "weekend_open", "weekend_close")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a local wall-clock time without a UTC offset")
        return value

    @field_validator("bank_holidays")
    @classmethod
    def _holidays(cls, days: list[date]) -> list[date]:
        seen: set[date] = set()
        for day in days:
            if day in seen:
                raise ValueError(f"{day} is listed twice")
            if day.weekday() >= 5:
                # England & Wales move a weekend holiday to a weekday: this is a typo.
                raise ValueError(f"{day} is a {_WEEKDAYS[day.weekday()]}; list the substitute day")
            seen.add(day)
        return sorted(days)

    @model_validator(mode="after")
    def _within_dma_hours(self) -> Self:
        for kind, opens, closes, earliest in (
            ("weekday", self.weekday_open, self.weekday_close, DMA_WEEKDAY_EARLIEST),
            ("weekend", self.weekend_open, self.weekend_close, DMA_WEEKEND_EARLIEST),
        ):
            if opens >= closes:
                raise ValueError(f"{kind}_open {opens:%H:%M} must be before {kind}_close")
            if opens < earliest:
                raise ValueError(f"{kind}_open may not be before {earliest:%H:%M} (DMA hours)")
            if closes > DMA_LATEST:
                raise ValueError(f"{kind}_close may not be after {DMA_LATEST:%H:%M} (DMA hours)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_bank_holiday(self, day: date) -> bool:
        return day in self.bank_holidays

    def covers_year(self, year: int) -> bool:
        """Whether any bank holiday is listed for `year`: workers should warn when not."""
        return any(day.year == year for day in self.bank_holidays)


# --- the whole file ------------------------------------------------------------------------

DEFAULT_STAGE_PRIORITY = (Stage.CALLBACK, Stage.UNSIGNED, Stage.OUTSTANDING)


# --- compliance ----------------------------------------------------------------------------

MIN_RECORDING_RETENTION_MONTHS = 12


class ComplianceRules(_Rules):
    """Consent, TPS screening, recording retention and conversion attribution
    (docs/compliance.md says which law each one follows)."""

    # Queues whose calls are service contact about an existing claim, not marketing: they
    # need no live-call consent (PECR 21A); a TPS-listed number still does. Empty, the
    # default, is strict: every call needs consent.
    service_contact_queues: list[Queue] = Field(default_factory=list)
    # A TPS/CTPS screening older than this is redone before the number is offered.
    tps_screening_max_age: Duration = timedelta(days=28)
    # Call recordings and transcripts are deleted this many months after the call.
    recording_retention_months: Annotated[
        int, Field(strict=True, ge=MIN_RECORDING_RETENTION_MONTHS, le=120)
    ] = 24
    # A signature or completed requirement is credited to the last contact this close before it.
    attribution_window: Duration = timedelta(days=14)

    @field_validator("service_contact_queues")
    @classmethod
    def _each_queue_once(cls, queues: list[Queue]) -> list[Queue]:
        if len(set(queues)) != len(queues):
            raise ValueError("list each queue at most once")
        if Queue.UNSIGNED in queues:
            # No signed authority yet: the call promotes the service (docs/compliance.md).
            raise ValueError(
                "unsigned may not be listed: asking for a signature is marketing, "
                "which needs live-call consent (PECR 21A)"
            )
        return queues

    @field_validator("tps_screening_max_age", "attribution_window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("tps_screening_max_age")
    @classmethod
    def _screened_often_enough(cls, value: timedelta) -> timedelta:
        if value > MAX_TPS_SCREENING_AGE:
            raise ValueError(
                f"at most {MAX_TPS_SCREENING_AGE.days} days: numbers must be screened "
                "against the TPS at least that often (PECR 21)"
            )
        return value

    def is_service_contact(self, queue: Queue | None) -> bool:
        return queue is not None and queue in self.service_contact_queues


# --- AI agents (issue 13; domain.ai_routing) ------------------------------------------------


AiChannelName = Literal["voice", "sms"]


def _both_channels() -> list[AiChannelName]:
    return ["voice", "sms"]


class AiQueuePolicy(_Rules):
    """Whether the AI may make a queue's contacts, how many of them, and by which channels."""

    enabled: bool = False
    # Share of the queue's attempts offered to the AI (0.5: every other claimant, by a hash
    # of the claimant and their attempt count, so the split is stable and explainable).
    share: Annotated[float, Field(strict=False, ge=0, le=1, allow_inf_nan=False)] = 1.0
    # AI contacts started in this queue in any hour, at most.
    cap_per_hour: Annotated[int, Field(strict=True, ge=0, le=100_000)] = 60
    # In order of preference. "voice" needs automated-call consent (PECR regulation 19),
    # "sms" SMS consent; a claimant with neither is a person's.
    channels: list[AiChannelName] = Field(default_factory=lambda: _both_channels())

    @field_validator("channels")
    @classmethod
    def _each_channel_once(cls, channels: list[AiChannelName]) -> list[AiChannelName]:
        if len(set(channels)) != len(channels):
            raise ValueError("list each channel at most once")
        return channels


def _default_ai_queues() -> dict[Queue, AiQueuePolicy]:
    # A callback is a promise a person made: people keep it unless operations decide.
    return {
        Queue.UNSIGNED: AiQueuePolicy(enabled=True),
        Queue.OUTSTANDING: AiQueuePolicy(enabled=True),
        Queue.CALLBACK: AiQueuePolicy(enabled=False),
    }


class AiRules(_Rules):
    queues: dict[Queue, AiQueuePolicy] = Field(default_factory=_default_ai_queues)
    # Points added to the task of a claimant the AI handed to a person.
    handoff_boost: NonNegative = 25.0
    # A conversation ends (handed to a person) after this many claimant turns...
    max_turns: Annotated[int, Field(strict=True, ge=1, le=50)] = 12
    # ...or this long after a call connects.
    call_time_limit: Duration = timedelta(minutes=8)
    # An SMS conversation waits this long for each reply before it ends.
    sms_reply_window: Duration = timedelta(hours=2)
    # An answering machine: "hang_up", or "message" (a neutral service message, no details).
    answering_machine: Literal["hang_up", "message"] = "hang_up"

    @field_validator("call_time_limit", "sms_reply_window")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0) or value > timedelta(days=1):
            raise ValueError("must be longer than zero and at most 1 day")
        return value

    def policy(self, queue: Queue) -> AiQueuePolicy:
        return self.queues.get(queue, AiQueuePolicy())


class DiallerRules(_Rules):
    stage_priority: list[Stage] = Field(default_factory=lambda: list(DEFAULT_STAGE_PRIORITY))
    scoring: ScoringRules = ScoringRules()
    contact: ContactRules = ContactRules()
    calling_windows: CallingWindows = CallingWindows()
    compliance: ComplianceRules = ComplianceRules()
    ai: AiRules = AiRules()

    @field_validator("stage_priority")
    @classmethod
    def _permutation(cls, stages: list[Stage]) -> list[Stage]:
        if sorted(stages) != sorted(DEFAULT_STAGE_PRIORITY):
            expected = ", ".join(s.value for s in DEFAULT_STAGE_PRIORITY)
            raise ValueError(f"must list each of {expected} exactly once")
        return stages


def _location(loc: tuple[int | str, ...]) -> str:
    # pydantic appends "[key]" when a dict key (not its value) is invalid: the key says it all.
    parts = [str(part) for part in loc if part != "[key]"]
    return ".".join(parts) or "(top level)"


def _message(error: Any) -> str:
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_rules(text: str) -> DiallerRules:
    if len(text) > MAX_RULES_CHARS:
        raise RulesError([f"the text is {len(text):,} characters; at most {MAX_RULES_CHARS:,}"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError([f"not valid TOML: {exc}"]) from exc
    try:
        return DiallerRules.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_location(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise RulesError(problems) from exc
