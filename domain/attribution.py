"""Attribution rules (issue 11): which change events are conversions, and which contact and
which magic link a conversion is credited to. Pure: contacts, link uses and the clock are
passed in.

- A conversion is a signature added (`SIGNATURE_ADDED`) or a requirement completed
  (`REQUIREMENT_CHANGED` to RECEIVED or APPROVED). Each subject converts once: a claimant's
  signature ("signature:<user id>") and each requirement ("requirement:<requirement id>";
  RECEIVED then APPROVED is one conversion). So a row change restated without a before image
  (DMS without before images restates every field) or a signature removed and added again
  is not counted twice.
- It is credited to the claimant's LAST contact at or before it and no longer than the
  attribution window (`compliance.attribution_window`, default 14 days) before it: a call
  placed (any call row, answered or not: a voicemail can prompt a signature), an outbound
  SMS, or an AI activity. Ties at the same instant go to the call, then SMS, then AI, then
  the higher id. No contact in the window: the conversion is kept, credited to nobody.
- Separately, it is credited to the last magic link the claimant USED within the same
  window before it, if any (a link opened but not used is not credited).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.dispositions import Disposition
from schemas.attribution import ContactKind, ConversionKind
from schemas.enums import RequirementStatus
from schemas.outreach import ChangeEvent, ChangeKind

# A call recorded by hand has no telephony data: it reached the claimant when its outcome
# says someone spoke with them.
SPOKE_DISPOSITIONS = frozenset(
    d.value
    for d in (
        Disposition.CALLBACK_REQUESTED,
        Disposition.PROMISED_TO_SIGN,
        Disposition.PROMISED_DOCUMENTS,
        Disposition.MAGIC_LINK_SENT,
        Disposition.NOT_INTERESTED,
        Disposition.DO_NOT_CALL,
        Disposition.COMPLETED,
    )
)
UK = ZoneInfo("Europe/London")
COMPLETED_REQUIREMENT = frozenset({RequirementStatus.RECEIVED, RequirementStatus.APPROVED})
_KIND_ORDER = {ContactKind.CALL: 0, ContactKind.SMS: 1, ContactKind.AI: 2}


@dataclass(frozen=True)
class Conversion:
    """A change event that converts, before attribution."""

    event_id: str
    user_id: int
    kind: ConversionKind
    subject_key: str
    occurred_at: datetime
    claim_id: int | None = None
    requirement_id: int | None = None


@dataclass(frozen=True)
class Contact:
    user_id: int
    kind: ContactKind
    ref: str
    at: datetime
    agent_id: int | None = None
    queue: str | None = None


@dataclass(frozen=True)
class LinkUse:
    link_id: int
    user_id: int
    used_at: datetime


@dataclass(frozen=True)
class Attribution:
    conversion: Conversion
    contact: Contact | None
    link_id: int | None


def conversion_of(event: ChangeEvent) -> Conversion | None:
    """The conversion a change event is, or None."""
    if event.kind is ChangeKind.SIGNATURE_ADDED:
        return Conversion(
            event_id=event.event_id,
            user_id=event.user_id,
            kind=ConversionKind.SIGNED,
            subject_key=f"signature:{event.user_id}",
            occurred_at=event.occurred_at,
        )
    if (
        event.kind is ChangeKind.REQUIREMENT_CHANGED
        and event.requirement_id is not None
        and event.requirement_status in COMPLETED_REQUIREMENT
    ):
        return Conversion(
            event_id=event.event_id,
            user_id=event.user_id,
            kind=ConversionKind.DOCUMENTS,
            subject_key=f"requirement:{event.requirement_id}",
            occurred_at=event.occurred_at,
            claim_id=event.claim_id,
            requirement_id=event.requirement_id,
        )
    return None


def conversions_in(events: Iterable[ChangeEvent]) -> list[Conversion]:
    """The conversions among events, each event id once."""
    found: dict[str, Conversion] = {}
    for event in events:
        conversion = conversion_of(event)
        if conversion is not None:
            found.setdefault(conversion.event_id, conversion)
    return list(found.values())


@dataclass(frozen=True)
class LookBack:
    """What to read to attribute a batch: these claimants' contacts and link uses in
    [since, until]."""

    user_ids: list[int]
    since: datetime
    until: datetime


def look_back(conversions: Sequence[Conversion], window: timedelta) -> LookBack:
    if not conversions:
        raise ValueError("nothing to attribute")
    return LookBack(
        user_ids=sorted({c.user_id for c in conversions}),
        since=min(c.occurred_at for c in conversions) - window,
        until=max(c.occurred_at for c in conversions),
    )


def _in_window(at: datetime, conversion: Conversion, window: timedelta) -> bool:
    return conversion.occurred_at - window <= at <= conversion.occurred_at


def _contact_order(contact: Contact) -> tuple[datetime, int, int, str]:
    ref_number = int(contact.ref) if contact.ref.isdigit() else -1
    return (contact.at, -_KIND_ORDER[contact.kind], ref_number, contact.ref)


def attribute(
    conversion: Conversion,
    contacts: Iterable[Contact],
    link_uses: Iterable[LinkUse],
    window: timedelta,
) -> Attribution:
    """The last contact and the last used link of the claimant within the window."""
    if window <= timedelta(0):
        raise ValueError("the attribution window must be longer than zero")
    eligible = [
        c
        for c in contacts
        if c.user_id == conversion.user_id and _in_window(c.at, conversion, window)
    ]
    uses = [
        u
        for u in link_uses
        if u.user_id == conversion.user_id and _in_window(u.used_at, conversion, window)
    ]
    contact = max(eligible, key=_contact_order, default=None)
    link = max(uses, key=lambda u: (u.used_at, u.link_id), default=None)
    return Attribution(conversion, contact, None if link is None else link.link_id)


def attribute_all(
    conversions: Sequence[Conversion],
    contacts: Sequence[Contact],
    link_uses: Sequence[LinkUse],
    window: timedelta,
) -> list[Attribution]:
    return [attribute(c, contacts, link_uses, window) for c in conversions]


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the 31st becomes the month's
    last day): the retention cut-off of attribution rows."""
    if months < 0:
        raise ValueError("months must not be negative")
    total = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def report_period(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """A report's days, both included, as [start, end) in UK time (midnight to midnight, so
    a day across a clock change is 23 or 25 hours)."""
    if last_day < first_day:
        raise ValueError(f"--to ({last_day}) is before --from ({first_day})")
    start = datetime.combine(first_day, time.min, UK)
    end = datetime.combine(last_day + timedelta(days=1), time.min, UK)
    return start, end
