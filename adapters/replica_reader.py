"""The main app's tables (`schemas.replica`): the one module that reads them, and the one that
writes them where the dialler may.

`ReplicaReader` is every read the dialler makes of the replica: a claimant's facts, contact
details and outstanding requirements, context-cache batches, CDC look-ups and the catch-up
scan. The statements of the hot path (a claimant's facts, read for every change and run
start) are built once at import: building them per call was a large share of the outreach
worker's CPU.

`LocalReplicaWriter` writes the local replica of development and tests, which has no main
app to own it: the demo seed's bulk load and `dialler sync test`'s marker change. In
production the replica belongs to the main app and the dialler never writes it (the callers
refuse to run there).

Queue membership (the seed's three queue queries) is written as SQL text in
`adapters.queue_queries`, next to the reconcile plan that uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Row, Select, Table, bindparam, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.enums import RequirementStatus
from schemas.learned_rates import ClaimantAttributes
from schemas.replica import claim_requirements, claims, consents, lenders, users

_PENDING = RequirementStatus.PENDING.value
AnyRow = Row[*tuple[Any, ...]]  # a result row of any width

# --- the hot path's statements, built once -------------------------------------------------

USER = select(users).where(users.c.id == bindparam("user_id"))
# A claimant's claims with their lenders and requirements, one row per requirement (or one
# per claim without any), in claim then requirement order.
CLAIMS_WITH_REQUIREMENTS = (
    select(
        claims.c.id,
        claims.c.status,
        claims.c.created_at,
        claims.c.estimated_value,
        lenders.c.name.label("lender"),
        claim_requirements.c.id.label("requirement_id"),
        claim_requirements.c.type.label("requirement_type"),
        claim_requirements.c.status.label("requirement_status"),
    )
    .join(lenders, lenders.c.id == claims.c.lender_id)
    .outerjoin(claim_requirements, claim_requirements.c.claim_id == claims.c.id)
    .where(claims.c.user_id == bindparam("user_id"))
    .order_by(claims.c.id, claim_requirements.c.id)
)


# A claimant's consents (grants, each maybe withdrawn), oldest first.
CONSENTS = (
    select(
        consents.c.id,
        consents.c.user_id,
        consents.c.channel,
        consents.c.source,
        consents.c.wording,
        consents.c.evidence_ref,
        consents.c.given_at,
        consents.c.withdrawn_at,
    )
    .where(consents.c.user_id.in_(bindparam("user_ids", expanding=True)))
    .order_by(consents.c.user_id, consents.c.given_at, consents.c.id)
)


@dataclass(frozen=True, slots=True)
class ClaimantRows:
    """A claimant's `users` row (None: not in the replica), CLAIMS_WITH_REQUIREMENTS and
    CONSENTS."""

    user: AnyRow | None
    claims: Sequence[AnyRow]
    consents: Sequence[AnyRow] = ()


@dataclass(frozen=True, slots=True)
class ContactDetails:
    phone_number: str | None
    email: str | None
    first_name: str


@dataclass(frozen=True, slots=True)
class ClaimantName:
    user_id: int
    first_name: str
    last_name: str
    phone_number: str | None


@dataclass(frozen=True, slots=True)
class ContextRows:
    """The replica's part of many claimants' contexts: `users` rows; claims with their
    lender's name (`lender`), by claim id; requirements by id."""

    users: Sequence[AnyRow]
    claims: Sequence[AnyRow]
    requirements: Sequence[AnyRow]


@dataclass(frozen=True, slots=True)
class ChangedClaimants:
    """Claimants (with at least one claim) whose rows changed since a watermark."""

    user_ids: set[int]
    scanned_from: datetime
    new_watermark: datetime  # the replica's clock: where the next scan starts
    capped: bool  # a scan hit its limit: more changed rows remain after new_watermark


class ReplicaReader:
    def __init__(self, replica_db: AsyncEngine) -> None:
        self._replica = replica_db

    # --- one claimant ----------------------------------------------------------------------

    async def claimant_with_claims(self, user_id: int) -> ClaimantRows:
        async with self._replica.connect() as conn:
            user = (await conn.execute(USER, {"user_id": user_id})).one_or_none()
            claim_rows = (await conn.execute(CLAIMS_WITH_REQUIREMENTS, {"user_id": user_id})).all()
            consent_rows = (await conn.execute(CONSENTS, {"user_ids": [user_id]})).all()
        return ClaimantRows(user, claim_rows, consent_rows)

    async def consents(self, user_ids: Sequence[int]) -> dict[int, list[AnyRow]]:
        """The main app's consent rows of these claimants (user id -> rows, oldest first)."""
        found: dict[int, list[AnyRow]] = {}
        if not user_ids:
            return found
        async with self._replica.connect() as conn:
            for row in await conn.execute(CONSENTS, {"user_ids": sorted(set(user_ids))}):
                found.setdefault(int(row.user_id), []).append(row)
        return found

    async def phone_number(self, user_id: int) -> str | None:
        async with self._replica.connect() as conn:
            number = await conn.scalar(select(users.c.phone_number).where(users.c.id == user_id))
        return str(number) if number else None

    async def contact_details(self, user_id: int) -> ContactDetails | None:
        """Number, address and first name (None: not in the replica), read at send time so
        that no workflow history holds them."""
        async with self._replica.connect() as conn:
            row = (
                await conn.execute(
                    select(users.c.phone_number, users.c.email, users.c.first_name).where(
                        users.c.id == user_id
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return ContactDetails(row.phone_number, row.email, row.first_name)

    # --- many claimants --------------------------------------------------------------------

    async def claimant_names(self, user_ids: Sequence[int]) -> dict[int, ClaimantName]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        columns = users.c
        async with self._replica.connect() as conn:
            rows = await conn.execute(
                select(
                    columns.id, columns.first_name, columns.last_name, columns.phone_number
                ).where(columns.id.in_(ids))
            )
            return {
                int(r.id): ClaimantName(int(r.id), r.first_name, r.last_name, r.phone_number)
                for r in rows
            }

    async def user_ids_with_number(self, spellings: Sequence[str]) -> list[int]:
        """Claimants whose number is any of these spellings, by id."""
        if not spellings:
            return []
        async with self._replica.connect() as conn:
            rows = await conn.execute(
                select(users.c.id).where(users.c.phone_number.in_(spellings)).order_by(users.c.id)
            )
            return [int(r[0]) for r in rows]

    async def user_ids_by_number(
        self, spellings: Sequence[str], batch: int = 1_000
    ) -> dict[str, list[int]]:
        """Claimants whose number is any of these spellings: the spelling the replica holds
        -> their ids (many numbers at once, `batch` spellings a query)."""
        wanted = sorted(set(spellings))
        found: dict[str, list[int]] = {}
        async with self._replica.connect() as conn:
            for start in range(0, len(wanted), batch):
                rows = await conn.execute(
                    select(users.c.id, users.c.phone_number)
                    .where(users.c.phone_number.in_(wanted[start : start + batch]))
                    .order_by(users.c.id)
                )
                for user_id, number in rows:
                    found.setdefault(str(number), []).append(int(user_id))
        return found

    async def user_ids_by_email(
        self, emails: Sequence[str], batch: int = 1_000
    ) -> dict[str, list[int]]:
        """Claimants whose address is one of `emails` (lower-case): address, trimmed and
        lower-cased, -> their ids. The replica's collation compares case-insensitively."""
        wanted = sorted(set(emails))
        found: dict[str, list[int]] = {}
        async with self._replica.connect() as conn:
            for start in range(0, len(wanted), batch):
                rows = await conn.execute(
                    select(users.c.id, users.c.email)
                    .where(users.c.email.in_(wanted[start : start + batch]))
                    .order_by(users.c.id)
                )
                for user_id, email in rows:
                    found.setdefault(str(email).strip().lower(), []).append(int(user_id))
        return found

    async def phone_numbers(
        self, user_ids: Sequence[int], batch: int = 5_000
    ) -> dict[int, str | None]:
        """The numbers of these claimants (those in the replica), as the replica spells
        them; read `batch` ids at a time."""
        ids = sorted(set(user_ids))
        found: dict[int, str | None] = {}
        async with self._replica.connect() as conn:
            for start in range(0, len(ids), batch):
                rows = await conn.execute(
                    select(users.c.id, users.c.phone_number).where(
                        users.c.id.in_(ids[start : start + batch])
                    )
                )
                found.update({int(r.id): r.phone_number or None for r in rows})
        return found

    async def signature_files(self, user_ids: Sequence[int]) -> dict[int, int | None]:
        """current_signature_file_id of these claimants (those in the replica)."""
        async with self._replica.connect() as conn:
            rows = await conn.execute(
                select(users.c.id, users.c.current_signature_file_id).where(
                    users.c.id.in_(list(user_ids))
                )
            )
            return {int(user_id): signature for user_id, signature in rows}

    async def context_rows(self, user_ids: Sequence[int]) -> ContextRows:
        """What the context cache builds contexts from, for claimants in `user_ids`."""
        ids = sorted(set(user_ids))
        async with self._replica.connect() as conn:
            user_rows = (await conn.execute(select(users).where(users.c.id.in_(ids)))).all()
            claim_rows = (
                await conn.execute(
                    select(
                        claims.c.id,
                        claims.c.user_id,
                        claims.c.status,
                        claims.c.created_at,
                        claims.c.estimated_value,
                        lenders.c.name.label("lender"),
                    )
                    .join(lenders, lenders.c.id == claims.c.lender_id)
                    .where(claims.c.user_id.in_(ids))
                    .order_by(claims.c.id)
                )
            ).all()
            requirement_rows = (
                await conn.execute(
                    select(
                        claim_requirements.c.id,
                        claim_requirements.c.claim_id,
                        claim_requirements.c.type,
                        claim_requirements.c.status,
                    )
                    .join(claims, claims.c.id == claim_requirements.c.claim_id)
                    .where(claims.c.user_id.in_(ids))
                    .order_by(claim_requirements.c.id)
                )
            ).all()
        return ContextRows(user_rows, claim_rows, requirement_rows)

    # --- CDC look-ups and the catch-up scan ----------------------------------------------------

    async def claim_owners(self, claim_ids: Sequence[int]) -> dict[int, int]:
        """claim id -> user id, for the claims the replica has."""
        async with self._replica.connect() as conn:
            rows = await conn.execute(
                select(claims.c.id, claims.c.user_id).where(claims.c.id.in_(list(claim_ids)))
            )
            return {int(claim_id): int(user_id) for claim_id, user_id in rows}

    async def lender_names(self) -> dict[int, str]:
        async with self._replica.connect() as conn:
            rows = await conn.execute(select(lenders.c.id, lenders.c.name))
            return {int(i): str(name) for i, name in rows}

    async def claim_lenders(
        self, user_ids: Sequence[int], batch: int = 1_000
    ) -> dict[int, dict[int, str]]:
        """These claimants' claims and their lenders' names: user id -> {claim id: lender}
        (reports: the funnel by lender)."""
        ids = sorted(set(user_ids))
        found: dict[int, dict[int, str]] = {}
        async with self._replica.connect() as conn:
            for start in range(0, len(ids), batch):
                rows = await conn.execute(
                    select(claims.c.user_id, claims.c.id, lenders.c.name)
                    .join(lenders, lenders.c.id == claims.c.lender_id)
                    .where(claims.c.user_id.in_(ids[start : start + batch]))
                )
                for user_id, claim_id, name in rows:
                    found.setdefault(int(user_id), {})[int(claim_id)] = str(name)
        return found

    async def claimant_attributes(
        self, user_ids: Sequence[int], batch: int = 5_000
    ) -> dict[int, ClaimantAttributes]:
        """What segments these claimants' learned rates (issue 14): postcode, birth date and
        the lenders of their claims (each once), for those in the replica; `batch` ids a
        query. The nightly job reads every claimant it attempted (tens of thousands), so
        each claimant is one row, their lenders' ids concatenated by the database (a row per
        claim cost 60 % more, in the driver's row decoding)."""
        ids = sorted(set(user_ids))
        found: dict[int, ClaimantAttributes] = {}
        lender_ids = func.group_concat(claims.c.lender_id.distinct())
        async with self._replica.connect() as conn:
            names = {
                int(i): str(name)
                for i, name in await conn.execute(select(lenders.c.id, lenders.c.name))
            }
            for start in range(0, len(ids), batch):
                rows = await conn.execute(
                    select(users.c.id, users.c.postcode, users.c.date_of_birth, lender_ids)
                    .select_from(users.outerjoin(claims, claims.c.user_id == users.c.id))
                    .where(users.c.id.in_(ids[start : start + batch]))
                    .group_by(users.c.id)
                )
                for user_id, postcode, born, lent in rows:
                    ids_of = str(lent).split(",") if lent else []
                    found[int(user_id)] = ClaimantAttributes(
                        postcode,
                        born,
                        tuple(sorted(names[int(i)] for i in ids_of if int(i) in names)),
                    )
        return found

    async def changed_claimants(
        self,
        watermark: datetime | None,
        *,
        overlap: timedelta,
        first_window: timedelta,
        limit: int,
    ) -> ChangedClaimants:
        """Claimants whose users, claims or requirements rows changed since `watermark` less
        `overlap` (rows committed late with an earlier updated_at), by the replica's own
        clock; with no watermark, over the last `first_window`. Each of the three scans reads
        at most `limit` rows."""
        async with self._replica.connect() as conn:
            now = (await conn.execute(text("SELECT NOW()"))).scalar_one()
            since = watermark - overlap if watermark else now - first_window
            has_claim = select(claims.c.id).where(claims.c.user_id == users.c.id).exists()
            scans: list[Select[int, datetime]] = [
                select(users.c.id, users.c.updated_at)
                .where(users.c.updated_at >= since, has_claim)
                .order_by(users.c.updated_at)
                .limit(limit),
                select(claims.c.user_id, claims.c.updated_at)
                .where(claims.c.updated_at >= since)
                .order_by(claims.c.updated_at)
                .limit(limit),
                select(claims.c.user_id, claim_requirements.c.updated_at)
                .join(claims, claims.c.id == claim_requirements.c.claim_id)
                .where(claim_requirements.c.updated_at >= since)
                .order_by(claim_requirements.c.updated_at)
                .limit(limit),
            ]
            user_ids: set[int] = set()
            new_watermark = now
            capped = False
            for scan in scans:
                rows = (await conn.execute(scan)).all()
                user_ids.update(int(row[0]) for row in rows)
                if len(rows) >= limit:  # more to come: stop the watermark where this scan did
                    capped = True
                    new_watermark = min(new_watermark, rows[-1][1])
        return ChangedClaimants(user_ids, since, new_watermark, capped)


# --- the local replica's writer (development and tests only) ---------------------------------

# Parents first for inserting; reversed for truncating.
REPLICA_TABLES = (lenders, users, claims, claim_requirements, consents)
BATCH_ROWS = 5_000

SeedRow = Mapping[str, Any]


def batches(rows: Sequence[SeedRow], size: int = BATCH_ROWS) -> Iterator[Sequence[SeedRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _sql_literals(escape_str: Callable[[str], str]) -> dict[type, Callable[[Any], str]]:
    """MySQL literals for the value types of seed rows; any other type is a KeyError."""

    def temporal(value: date | clock_time) -> str:
        return f"'{value.isoformat()}'"

    def stamp(value: datetime) -> str:
        if value.tzinfo is not None:
            raise ValueError("replica DATETIME values must be naive UTC")
        return f"'{value.isoformat(' ')}'"

    return {
        type(None): lambda _: "NULL",
        bool: lambda value: "1" if value else "0",
        int: str,
        Decimal: str,
        str: escape_str,  # quotes and escapes
        date: temporal,
        clock_time: temporal,
        datetime: stamp,
    }


def _insert_sql(
    table: Table, rows: Sequence[SeedRow], literals: dict[type, Callable[[Any], str]]
) -> str:
    columns = list(rows[0])
    unknown = set(columns) - set(table.columns.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    values = itemgetter(*columns)
    tuples = ("(" + ",".join([literals[type(v)](v) for v in values(row)]) + ")" for row in rows)
    names = ", ".join(f"`{name}`" for name in columns)
    # Identifiers come from the table definition (checked above), values from `literals`.
    return f"INSERT INTO `{table.name}` ({names}) VALUES " + ",".join(tuples)  # noqa: S608


class LocalReplicaWriter:
    """Writes to the local replica (MariaDB/MySQL) of development and tests."""

    def __init__(self, replica_db: AsyncEngine) -> None:
        self._replica = replica_db

    async def is_empty(self) -> bool:
        """True when none of the replica tables has a row."""
        async with self._replica.connect() as conn:
            for table in REPLICA_TABLES:
                found = await conn.execute(select(literal(1)).select_from(table).limit(1))
                if found.first() is not None:
                    return False
        return True

    async def bulk_load(
        self, rows_by_table: Mapping[str, Sequence[SeedRow]], *, replace: bool
    ) -> dict[str, int]:
        """Insert rows (table name -> rows) as multi-row INSERTs of BATCH_ROWS rows in one
        transaction, with foreign-key and unique checks off for the session: the caller's
        ids must be consistent by construction. With `replace`, every replica table is
        emptied first. Returns the rows inserted per table.

        The VALUES lists are rendered here rather than by the driver: pymysql's per-value
        escaping was about 70% of the load time (seed scale: ~19 s through SQLAlchemy
        `insert()`, ~8.5 s this way). Only the types the demo generator produces are
        accepted, and strings are still escaped by the driver connection, which knows the
        server's quoting mode."""
        counts: dict[str, int] = {}
        async with self._replica.connect() as conn:
            await conn.exec_driver_sql("SET SESSION foreign_key_checks = 0, unique_checks = 0")
            try:
                if replace:
                    # TRUNCATE (not DELETE): instant, resets AUTO_INCREMENT; allowed on
                    # referenced tables because foreign_key_checks is off for this session.
                    for table in reversed(REPLICA_TABLES):
                        await conn.exec_driver_sql(f"TRUNCATE TABLE `{table.name}`")
                driver = (await conn.get_raw_connection()).driver_connection
                if driver is None:
                    raise RuntimeError("the replica connection has no driver connection")
                literals = _sql_literals(driver.escape)
                async with driver.cursor() as cursor:
                    for table in REPLICA_TABLES:
                        rows = rows_by_table.get(table.name, [])
                        for batch in batches(rows):
                            # No parameters: the cursor sends the statement as it is.
                            await cursor.execute(_insert_sql(table, batch, literals))
                        counts[table.name] = len(rows)
                await conn.commit()
            except BaseException:
                # Never hand a session with the checks switched off back to the pool.
                await conn.invalidate()
                raise
            await conn.exec_driver_sql("SET SESSION foreign_key_checks = 1, unique_checks = 1")
        return counts

    async def set_signature_file(self, user_id: int, signature_file_id: int | None) -> None:
        """A claimant's current_signature_file_id: the marker change of `dialler sync test`."""
        async with self._replica.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(current_signature_file_id=signature_file_id)
            )
