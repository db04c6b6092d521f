"""Deterministic, realistic UK demo data for the claims replica and the dialler's callbacks.

Pure: no I/O and no clock reads (`now` is passed in), and every random choice comes from one
`random.Random(seed)`, so the same `users` and `seed` always give identical rows.

Each claimant is first given a *kind* (unsigned, outstanding, ...) with exact counts, and
claims and requirements are then drawn to match it. Fixing the counts rather than drawing
each kind independently keeps the proportions the product relies on (measured with the
seed's queue queries) inside their ranges at any scale, including the small test sizes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from schemas.enums import CallbackStatus, ClaimStatus, RequirementStatus, UserStatus

Row = dict[str, Any]
T = TypeVar("T")

# Demo callbacks carry this prefix in `notes` so `--replace` can delete them and nothing else.
DEMO_CALLBACK_MARKER = "[demo]"

HISTORY_DAYS = 548  # about 18 months of created_at/updated_at

# --- reference data -------------------------------------------------------------------------

FIRST_NAMES = (
    "James", "John", "David", "Michael", "Paul", "Andrew", "Mark", "Richard", "Peter", "Robert",
    "Stephen", "Christopher", "Daniel", "Thomas", "Matthew", "William", "George", "Oliver",
    "Harry", "Jack", "Charlie", "Samuel", "Joseph", "Benjamin", "Adam", "Ryan", "Liam", "Craig",
    "Gary", "Kevin", "Ian", "Simon", "Neil", "Stuart", "Gareth", "Dylan", "Rhys", "Callum",
    "Jamie", "Lewis", "Alan", "Graham", "Keith", "Trevor", "Colin", "Barry", "Mohammed", "Arjun",
    "Kieran", "Declan", "Sarah", "Emma", "Claire", "Rachel", "Laura", "Helen", "Karen", "Susan",
    "Julie", "Nicola", "Lisa", "Michelle", "Joanne", "Louise", "Amanda", "Rebecca", "Charlotte",
    "Sophie", "Emily", "Olivia", "Amelia", "Jessica", "Hannah", "Lucy", "Chloe", "Megan", "Katie",
    "Gemma", "Kirsty", "Lauren", "Margaret", "Patricia", "Elizabeth", "Jean", "Linda", "Carol",
    "Janet", "Pauline", "Sandra", "Deborah", "Alison", "Fiona", "Siobhan", "Aisling", "Bethan",
    "Cerys", "Priya", "Aisha", "Fatima", "Zara",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards",
    "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner",
    "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker",
    "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker",
    "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter",
    "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards",
    "Khan", "Marshall", "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson",
    "Foster", "Chapman", "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain",
    "Campbell", "Matthews", "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd",
    "Butler", "Russell", "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey",
    "Graham", "Pearson", "Ahmed", "Fletcher", "Walsh", "Kaur", "Gibson", "Howard", "Andrews",
    "Stewart", "Elliott", "Reynolds", "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day",
    "Brooks", "West", "Lawrence", "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson",
    "Ball", "Burton", "O'Brien", "Watts", "Rose", "Booth", "Perry", "Ryan", "Grant", "Wells",
    "Armstrong", "Francis", "Rees", "Hayes", "Hart", "Hudson", "Newman", "Barrett", "Webster",
    "Hunter", "Gregory", "Carr", "Lowe", "Page", "Marsh", "Riley", "Dunn", "Woods", "Parsons",
    "Berry", "Stone", "Reid", "Holland", "Hawkins", "Harding", "Porter", "Robertson", "Newton",
    "Reed", "Kennedy", "Williamson", "Bird", "Gardner", "Shah", "Dean", "Lane", "Bates",
    "Henderson", "Parry", "Burgess", "Bishop", "Walton", "Burns", "Nicholson", "Shepherd",
    "Ross", "Cross", "Freeman", "Warren", "Hamilton", "Byrne", "Sutton", "McDonald", "Yates",
    "Hodgson", "Robson", "Curtis", "Hopkins", "O'Connor", "Harper", "Coleman", "Watkins", "Moss",
    "McCarthy", "Chambers", "O'Neill", "Griffin", "Sharp", "Hardy", "Wheeler", "Potter",
    "Osborne", "Johnston", "Gordon", "Doyle", "Wallace", "Hutchinson", "Rowe", "Burke",
    "Pritchard", "Gilbert", "Higgins", "Stevenson", "Hammond", "Arnold", "Buckley", "Hewitt",
    "Nelson", "Slater", "Sullivan", "Whitehead", "Lambert", "Akhtar", "Lynch", "Goodwin",
    "Thomson", "Cunningham", "Quinn", "Baxter", "Greenwood", "Jennings", "Gallagher", "Davidson",
    "Ferguson", "Hargreaves", "Whittaker", "Metcalfe", "Doherty", "MacDonald", "Fraser",
    "Llewellyn", "Pugh", "Jones-Evans", "Smith-Wright",
)  # fmt: skip

# Real outward codes across England, Wales, Scotland and Northern Ireland.
OUTWARD_CODES = (
    "E1", "E14", "E17", "N1", "N7", "N17", "NW1", "NW10", "SE1", "SE15", "SE18", "SW1A", "SW2",
    "SW11", "SW19", "W2", "W5", "W12", "WC1N", "EC1V", "CR0", "BR1", "HA0", "IG1", "RM7", "UB3",
    "EN1", "KT1", "TW3", "SM1", "DA1", "M1", "M4", "M14", "M20", "M40", "SK4", "OL1", "BL1",
    "WN1", "WA1", "L1", "L4", "L8", "L15", "CH41", "LS1", "LS6", "LS9", "LS11", "BD1", "BD7",
    "HX1", "HD1", "WF1", "HG1", "YO1", "YO24", "S1", "S6", "S10", "DN1", "DN4", "HU1", "HU5",
    "NE1", "NE4", "NE6", "SR1", "DH1", "TS1", "DL1", "B1", "B15", "B23", "B29", "CV1", "CV6",
    "WV1", "WS1", "DY1", "WR1", "NG1", "NG7", "DE1", "DE22", "LE1", "LE4", "LN1", "BS1", "BS5",
    "BA1", "GL1", "SN1", "CF10", "CF24", "SA1", "NP20", "LL11", "G1", "G12", "G31", "EH1", "EH6",
    "AB10", "DD1", "KY1", "FK1", "PA1", "IV1", "ML3", "BT1", "BT9", "BT14", "SO14", "PO1", "BN1",
    "BN3", "RG1", "OX1", "OX4", "MK9", "LU1", "SL1", "CM1", "CB1", "NR1", "IP1", "CT1", "ME4",
    "GU1", "RH1", "PL1", "EX1", "TR1", "TQ1", "BH1", "SP1", "PR1", "BB1", "FY1", "LA1", "CA1",
    "CH1", "CW1", "ST1", "TF1", "SY1",
)  # fmt: skip
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the inward code never uses C, I, K, M, O or V

# (name, relative frequency): motor finance dominates the current claims book.
LENDERS = (
    ("Black Horse", 10), ("Close Brothers", 8), ("MotoNovo", 8), ("Santander", 8),
    ("Lloyds", 6), ("Barclays", 6), ("Moneybarn", 5), ("Volkswagen Financial Services", 5),
    ("Halifax", 4), ("Vanquis", 4), ("Blue Motor Finance", 4), ("Oodle", 4),
    ("BMW Financial Services", 4), ("Ford Credit", 4), ("HSBC", 3), ("NatWest", 3),
    ("Creation", 3), ("Toyota Financial Services", 3), ("Startline Motor Finance", 3),
    ("Advantage Finance", 3), ("Mercedes-Benz Financial Services", 3), ("Nationwide", 2),
    ("First Response Finance", 2), ("Alphera", 2), ("Hyundai Capital", 2),
    ("Stellantis Financial Services", 2), ("Marsh Finance", 1),
)  # fmt: skip

REQUIREMENT_TYPES = (
    "bank_statements", "photo_id", "proof_of_address", "finance_agreement", "signed_loa",
    "vehicle_details", "credit_report", "payslips", "dsar_form", "income_expenditure",
)  # fmt: skip

EMAIL_DOMAINS = (
    ("gmail.com", 30), ("hotmail.co.uk", 18), ("outlook.com", 10), ("yahoo.co.uk", 10),
    ("btinternet.com", 7), ("icloud.com", 7), ("live.co.uk", 5), ("sky.com", 4),
    ("aol.com", 3), ("virginmedia.com", 3), ("talktalk.net", 3),
)  # fmt: skip

PREFERRED_WINDOWS = (
    (time(9), time(12)), (time(12), time(14)), (time(17), time(20)), (time(10), time(16)),
    (time(18), time(21)), (time(8, 30), time(10)),
)  # fmt: skip

CALLBACK_NOTES = (
    "Asked to be called back after work", "Driving, call back later", "At the school run",
    "Wants to find the finance agreement first", "Call back on Friday please",
    "Partner deals with the paperwork, call when both home", "In a meeting",
)  # fmt: skip

# UK mobile ranges 071-075 and 077-079 (076 is pagers); see _phone for the drama range.
_MOBILE_DIGITS = "12345789"

_RS = RequirementStatus
_CLAIM_COUNTS = ((1, 16), (2, 26), (3, 25), (4, 16), (5, 10), (6, 7))  # mean 2.99
_REQS_PER_CLAIM = ((0, 26), (1, 35), (2, 24), (3, 10), (4, 5))  # mean 1.33
_CLAIM_STATUSES = (
    (ClaimStatus.NEW, 25),
    (ClaimStatus.IN_PROGRESS, 40),
    (ClaimStatus.SUBMITTED, 20),
    (ClaimStatus.COMPLETE, 15),
)
# Requirements of an open claim that may still be chased, of one whose documents are all in,
# and of a complete claim.
_OPEN_REQ = (
    (_RS.PENDING, 45),
    (_RS.RECEIVED, 20),
    (_RS.APPROVED, 25),
    (_RS.REJECTED, 5),
    (_RS.WAIVED, 5),
)
_SETTLED_REQ = ((_RS.RECEIVED, 30), (_RS.APPROVED, 50), (_RS.REJECTED, 5), (_RS.WAIVED, 15))
_DONE_REQ = ((_RS.APPROVED, 80), (_RS.WAIVED, 20))


class _Kind(Enum):
    UNSIGNED = "unsigned"  # active claimant without a signature: the unsigned queue
    OUTSTANDING = "outstanding"  # active, signed, at least one PENDING requirement
    SIGNED_CLEAR = "signed_clear"  # active, signed, nothing pending (waiting on the lender)
    ALL_COMPLETE = "all_complete"  # every claim complete: not an active claimant
    INACTIVE = "inactive"  # status 'inactive'
    DISABLED = "disabled"  # is_enabled false


_ACTIVE_KINDS = frozenset({_Kind.UNSIGNED, _Kind.OUTSTANDING, _Kind.SIGNED_CLEAR})
# Shares of all users, then of active claimants (the queue proportions in the seed readme).
_SHARE_OF_USERS = {_Kind.DISABLED: 0.03, _Kind.INACTIVE: 0.03, _Kind.ALL_COMPLETE: 0.07}
_SHARE_OF_ACTIVE = {_Kind.UNSIGNED: 0.175, _Kind.OUTSTANDING: 0.65}
_CALLBACK_SHARE = 0.015
_CALLBACK_DUE_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class DemoData:
    """Row dicts ready for INSERT: replica tables with explicit ids, and dialler callbacks.

    Replica timestamps are naive UTC (MySQL DATETIME); callback timestamps are aware UTC.
    """

    seed: int
    now: datetime
    lenders: list[Row]
    users: list[Row]
    claims: list[Row]
    claim_requirements: list[Row]
    callbacks: list[Row]
    consents: list[Row]

    def counts(self) -> dict[str, int]:
        return {
            "lenders": len(self.lenders),
            "users": len(self.users),
            "claims": len(self.claims),
            "claim_requirements": len(self.claim_requirements),
            "callbacks": len(self.callbacks),
            "consents": len(self.consents),
        }


def generate(users: int, seed: int = 2026, *, now: datetime) -> DemoData:
    """Demo data for `users` claimants (~3 claims and ~4 requirements each)."""
    if users < 1:
        raise ValueError("users must be at least 1")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _Generator(random.Random(seed), now.astimezone(UTC)).run(users, seed)


def _urn(pairs: Iterable[tuple[T, int]]) -> tuple[T, ...]:
    """Each value repeated by its weight: `urn[int(random() * len(urn))]` is a weighted draw.

    Several times faster than `Random.choices`, which matters at 400k rows.
    """
    return tuple(value for value, weight in pairs for _ in range(weight))


def _slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalpha())


_SLUGS = {name: _slug(name) for name in FIRST_NAMES + LAST_NAMES}  # for email addresses
_LENDER_URN = _urn((i, weight) for i, (_, weight) in enumerate(LENDERS, start=1))
_DOMAIN_URN = _urn(EMAIL_DOMAINS)
_CLAIM_COUNT_URN = _urn(_CLAIM_COUNTS)
_REQS_URN = _urn(_REQS_PER_CLAIM)
_CLAIM_STATUS_URN = _urn(_CLAIM_STATUSES)
_OPEN_URN = _urn(_OPEN_REQ)
_SETTLED_URN = _urn(_SETTLED_REQ)
_DONE_URN = _urn(_DONE_REQ)
_DAY = 86_400


class _Generator:
    """One generation run. Methods draw from `rng` in a fixed order: keep it that way.

    Replica timestamps are handled as whole seconds since `start` and turned into datetimes
    only when a row is built: datetime arithmetic was the largest cost at seed scale.
    """

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now = now
        clock = now.replace(tzinfo=None, microsecond=0)  # naive UTC for the replica
        self.start = clock - timedelta(days=HISTORY_DAYS)
        self.end = HISTORY_DAYS * _DAY  # `clock` in seconds since `start`
        self.today = clock.date()
        self.phones: set[str] = set()
        self.emails: set[str] = set()
        self.users: list[Row] = []
        self.claims: list[Row] = []
        self.requirements: list[Row] = []
        self.next_signature_file_id = 700_000 + rng.randrange(100_000)

    def run(self, users: int, seed: int) -> DemoData:
        lenders = self._lenders()
        kinds = self._kinds(users)
        for user_id, kind in enumerate(kinds, start=1):
            self._claimant(user_id, kind)
        active = [uid for uid, kind in enumerate(kinds, start=1) if kind in _ACTIVE_KINDS]
        return DemoData(
            seed=seed,
            now=self.now,
            lenders=lenders,
            users=self.users,
            claims=self.claims,
            claim_requirements=self.requirements,
            callbacks=self._callbacks(users, active),
            # its own generator: the other tables stay as they were before consents existed
            consents=_consents(random.Random(seed * 7_919 + 11), self.users),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.rng.random() * len(seq))]

    def _stamps(self, since: int, within: int) -> tuple[int, int]:
        """(created, updated) in seconds: created within `within` of `since`, never future."""
        random_ = self.rng.random
        created = since + int(random_() * (min(self.end, since + within) - since))
        return created, created + int(random_() * (self.end - created))

    def _at(self, seconds: int) -> datetime:
        return self.start + timedelta(seconds=seconds)

    def _lenders(self) -> list[Row]:
        created = self.start - timedelta(days=120)
        return [
            {"id": i, "name": name, "created_at": created, "updated_at": created}
            for i, (name, _) in enumerate(LENDERS, start=1)
        ]

    def _kinds(self, users: int) -> list[_Kind]:
        counts = {kind: round(users * share) for kind, share in _SHARE_OF_USERS.items()}
        active = users - sum(counts.values())
        counts |= {kind: round(active * share) for kind, share in _SHARE_OF_ACTIVE.items()}
        counts[_Kind.SIGNED_CLEAR] = users - sum(counts.values())
        kinds = [kind for kind in _Kind for _ in range(counts.get(kind, 0))]
        self.rng.shuffle(kinds)
        return kinds

    def _phone(self) -> str:
        while True:
            digit = self._pick(_MOBILE_DIGITS)
            number = f"+447{digit}{self.rng.randrange(100_000_000):08d}"
            # 07700 900000-900999 is Ofcom's drama range: never a real customer's number.
            if number not in self.phones and not number.startswith("+447700900"):
                self.phones.add(number)
                return number

    def _email(self, user_id: int, first: str, last: str, born: date) -> str | None:
        if self.rng.random() < 0.02:
            return None  # some claimants never gave one
        f, la = _SLUGS[first], _SLUGS[last]
        pattern = self.rng.randrange(5)
        if pattern == 0:
            local = f"{f}.{la}"
        elif pattern == 1:
            local = f"{f}{la}"
        elif pattern == 2:
            local = f"{f[0]}.{la}"
        elif pattern == 3:
            local = f"{f}.{la}{born.year % 100:02d}"
        else:
            local = f"{f}{la}{self.rng.randrange(1, 100)}"
        domain = self._pick(_DOMAIN_URN)
        email = f"{local}@{domain}"
        if email in self.emails:
            email = f"{local}{user_id}@{domain}"
        self.emails.add(email)
        return email

    def _date_of_birth(self) -> date:
        # Triangular 18-90 peaking at 55: ~80% of claimants are 35-75. The clamp keeps whole
        # years of age within 18-89 whatever the leap days.
        years = min(max(self.rng.triangular(18, 90, 55), 18.01), 89.99)
        return self.today - timedelta(days=int(years * 365.2425))

    def _postcode(self) -> str:
        pick = self._pick
        inward = f"{self.rng.randrange(10)}{pick(INWARD_LETTERS)}{pick(INWARD_LETTERS)}"
        return f"{pick(OUTWARD_CODES)} {inward}"

    # --- one claimant -----------------------------------------------------------------------

    def _claimant(self, user_id: int, kind: _Kind) -> None:
        signed = kind is not _Kind.UNSIGNED
        if kind is _Kind.INACTIVE or kind is _Kind.DISABLED:
            signed = self.rng.random() < (0.5 if kind is _Kind.INACTIVE else 0.7)
        created, updated = self._stamps(0, self.end)
        self.users.append(self._user_row(user_id, kind, signed, created, updated))
        # Inactive claimants who signed have nothing pending: the seed's outstanding query
        # does not filter on status, so a pending requirement would put them in the queue.
        may_pend = kind in (_Kind.UNSIGNED, _Kind.OUTSTANDING, _Kind.DISABLED) or (
            kind is _Kind.INACTIVE and not signed
        )
        open_reqs, open_claims = self._claims(user_id, kind, signed, may_pend, created)
        if kind is _Kind.OUTSTANDING:
            self._ensure_pending(open_reqs, open_claims)

    def _user_row(self, user_id: int, kind: _Kind, signed: bool, created: int, updated: int) -> Row:
        rng = self.rng
        first, last = self._pick(FIRST_NAMES), self._pick(LAST_NAMES)
        born = self._date_of_birth()
        window = self._pick(PREFERRED_WINDOWS) if rng.random() < 0.10 else (None, None)
        signature = None
        if signed:
            self.next_signature_file_id += 1 + rng.randrange(4)
            signature = self.next_signature_file_id
        return {
            "id": user_id,
            "first_name": first,
            "last_name": last,
            "email": self._email(user_id, first, last, born),
            "phone_number": self._phone(),
            "date_of_birth": born,
            "postcode": self._postcode(),
            "current_signature_file_id": signature,
            "is_enabled": kind is not _Kind.DISABLED,
            "status": self._user_status(kind),
            "is_vulnerable": rng.random() < 0.03,
            "preferred_call_start": window[0],
            "preferred_call_end": window[1],
            "created_at": self._at(created),
            "updated_at": self._at(updated),
        }

    def _user_status(self, kind: _Kind) -> str:
        roll = self.rng.random()
        if kind is _Kind.INACTIVE or (kind is _Kind.DISABLED and roll < 0.6):
            return UserStatus.INACTIVE.value
        pending_share = 0.3 if kind is _Kind.UNSIGNED else 0.03
        return (UserStatus.PENDING if roll > 1 - pending_share else UserStatus.ACTIVE).value

    def _claim_statuses(self, kind: _Kind) -> list[ClaimStatus]:
        n = self._pick(_CLAIM_COUNT_URN)
        if kind is _Kind.ALL_COMPLETE:
            return [ClaimStatus.COMPLETE] * n
        statuses = [self._pick(_CLAIM_STATUS_URN) for _ in range(n)]
        if kind in _ACTIVE_KINDS and all(s is ClaimStatus.COMPLETE for s in statuses):
            statuses[0] = ClaimStatus.IN_PROGRESS  # an active claimant has an open claim
        return statuses

    def _claims(
        self, user_id: int, kind: _Kind, signed: bool, may_pend: bool, since: int
    ) -> tuple[list[Row], list[Row]]:
        """Append the claimant's claims and requirements; return the open ones."""
        rng = self.rng
        open_reqs: list[Row] = []
        open_claims: list[Row] = []
        for status in self._claim_statuses(kind):
            created, updated = self._stamps(since, 60 * _DAY)
            value = None
            if status is not ClaimStatus.NEW or rng.random() < 0.5:
                pounds = min(max(rng.lognormvariate(7.5, 0.55), 150.0), 25_000.0)  # median £1.8k
                value = Decimal(f"{pounds:.2f}")
            claim = {
                "id": len(self.claims) + 1,
                "user_id": user_id,
                "lender_id": self._pick(_LENDER_URN),
                "status": status.value,
                "estimated_value": value,
                "created_at": self._at(created),
                "updated_at": self._at(updated),
            }
            self.claims.append(claim)
            reqs = self._requirements(claim, created, status, signed, may_pend)
            if status is not ClaimStatus.COMPLETE:
                open_claims.append(claim)
                open_reqs.extend(reqs)
        return open_reqs, open_claims

    def _requirements(
        self, claim: Row, since: int, status: ClaimStatus, signed: bool, may_pend: bool
    ) -> list[Row]:
        n = self._pick(_REQS_URN)
        if not n:
            return []
        rows = []
        for rtype in self.rng.sample(REQUIREMENT_TYPES, n):
            if status is ClaimStatus.COMPLETE:
                req_status = self._pick(_DONE_URN)
            elif rtype == "signed_loa":
                # The letter of authority is the signature: pending exactly when unsigned.
                pending = not signed and may_pend
                req_status = _RS.PENDING if pending else _RS.APPROVED
            else:
                req_status = self._pick(_OPEN_URN if may_pend else _SETTLED_URN)
            rows.append(self._requirement_row(claim["id"], since, rtype, req_status))
        return rows

    def _requirement_row(self, claim_id: int, since: int, rtype: str, status: _RS) -> Row:
        created, updated = self._stamps(since, 21 * _DAY)
        row = {
            "id": len(self.requirements) + 1,
            "claim_id": claim_id,
            "type": rtype,
            "status": status.value,
            "created_at": self._at(created),
            "updated_at": self._at(updated),
        }
        self.requirements.append(row)
        return row

    def _ensure_pending(self, open_reqs: list[Row], open_claims: list[Row]) -> None:
        pending = _RS.PENDING.value
        if any(r["status"] == pending for r in open_reqs):
            return
        candidates = [r for r in open_reqs if r["type"] != "signed_loa"]
        if candidates:
            self._pick(candidates)["status"] = pending
            return
        claim = self._pick(open_claims)
        taken = {r["type"] for r in open_reqs if r["claim_id"] == claim["id"]}
        free = [t for t in REQUIREMENT_TYPES if t not in taken and t != "signed_loa"]
        since = int((claim["created_at"] - self.start).total_seconds())
        self._requirement_row(claim["id"], since, self._pick(free), _RS.PENDING)

    # --- dialler callbacks ------------------------------------------------------------------

    def _callbacks(self, users: int, active: list[int]) -> list[Row]:
        rng = self.rng
        count = min(len(active), max(1, round(users * _CALLBACK_SHARE)))
        rows = []
        for user_id in sorted(rng.sample(active, count)):
            if rng.random() < _CALLBACK_DUE_SHARE:
                when = self.now - timedelta(minutes=rng.randint(5, 3 * 24 * 60))
            else:
                when = self.now + timedelta(minutes=rng.randint(30, 7 * 24 * 60))
            # Agents book on the quarter hour; rounding down keeps due ones due, future ones
            # (30+ minutes ahead) in the future.
            when = when.replace(minute=when.minute - when.minute % 15, second=0, microsecond=0)
            booked = min(when, self.now) - timedelta(minutes=rng.randint(10, 2 * 24 * 60))
            rows.append(
                {
                    "user_id": user_id,
                    "owner_agent_id": None,
                    "scheduled_for": when,
                    "status": CallbackStatus.PENDING.value,
                    "notes": f"{DEMO_CALLBACK_MARKER} {self._pick(CALLBACK_NOTES)}",
                    "created_by": None,
                    "created_at": booked,
                }
            )
        return rows


# --- consent (PECR 21A, 19, 22): who may be called, by whom, and texted ------------------

# Share of claimants with each consent; about 1 in 25 grants was later withdrawn. Without
# live-call consent a claimant is not offered to agents (docs/compliance.md).
_CONSENT_SHARES = (
    ("live_call", 0.85),
    ("automated_call", 0.45),
    ("sms", 0.75),
    ("email", 0.65),
)
_CONSENT_SOURCES = ("web_form", "signup", "phone", "paper")
_CONSENT_WORDING = {
    "live_call": "I agree that RMC may phone me about my claims.",
    "automated_call": "I agree to automated calls (a recorded or AI voice) about my claims.",
    "sms": "I agree that RMC may text me about my claims.",
    "email": "I agree that RMC may email me about my claims.",
}
_WITHDRAWN_SHARE = 0.04


def _consents(rng: random.Random, users: Sequence[Row]) -> list[Row]:
    rows: list[Row] = []
    for user in users:
        given_at = user["created_at"]
        for channel, share in _CONSENT_SHARES:
            if rng.random() >= share:
                continue
            withdrawn_at = None
            if rng.random() < _WITHDRAWN_SHARE:
                withdrawn_at = given_at + timedelta(days=1 + rng.randrange(60))
            rows.append(
                {
                    "id": len(rows) + 1,
                    "user_id": user["id"],
                    "channel": channel,
                    "source": _CONSENT_SOURCES[rng.randrange(len(_CONSENT_SOURCES))],
                    "wording": _CONSENT_WORDING[channel],
                    "evidence_ref": f"consent-{user['id']}-{channel}",
                    "given_at": given_at,
                    "withdrawn_at": withdrawn_at,
                    "created_at": given_at,
                    "updated_at": withdrawn_at or given_at,
                }
            )
    return rows
